"""A worker's first second under load: a fresh worker on new topics, then the same worker restarted.

    .venv/bin/python deploy/kafka/local_broker.py --dir /tmp/broker --port 39092 start
    .venv/bin/python bench/first_second.py --bootstrap 127.0.0.1:39092 --guarantee at_least_once --restarts 2

Each latency run of bench/run.py starts a worker on topics created just before it and sends at
once; its first second's actions came up to ~1 s late, which decided many runs' p99. This starts
a worker on new topics, waits for /readyz and sends `--rate` events/s of the latency workload for
`--seconds` (produced and read back through librdkafka, as bench/run.py's harness); then stops the
worker cleanly and starts it again (same app id, same data dir, the same topics) `--restarts`
times, each time with the same load of new customers. Prints the worst latency of each 100 ms of
sending: a fresh worker on new topics against a restarted one (docs/benchmarks.md, 2026-12-07).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (bench/run.py: latency_topics, latency_event, apply_topics, WorkerRun)


def load(bootstrap: str, topics: dict[str, str], tag: str, rate: float, seconds: float) -> tuple[list[int], int]:
    """`rate` events/s for `seconds`; the worst latency (ms) of each 100 ms of sending, and how many were answered."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all", "socket.nagle.disable": True})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"first-second-{tag}",
                         "isolation.level": "read_committed", "fetch.wait.max.ms": 100,
                         "socket.nagle.disable": True, "enable.auto.commit": False})
    actions = topics["actions"]
    partitions = consumer.list_topics(actions, timeout=10).topics[actions].partitions
    consumer.assign([TopicPartition(actions, p, consumer.get_watermark_offsets(TopicPartition(actions, p), timeout=10)[1])
                     for p in partitions])  # from the end: only this load's actions
    producer.list_topics(topics["visits"], timeout=10)
    moments = [i / rate for i in range(int(rate * seconds))]
    sent: dict[str, float] = {}
    seen: list[tuple[str, float]] = []

    def read() -> None:
        until = time.perf_counter() + seconds + 30
        while len(seen) < len(moments) and time.perf_counter() < until:
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            customer = message.key().decode()
            if (at := sent.get(customer)) is not None:
                seen.append((customer, time.perf_counter() - at))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    started = time.perf_counter()
    for i, moment in enumerate(moments):
        while time.perf_counter() < started + moment:
            time.sleep(0.0005)
        customer, value = run.latency_event(tag, i)
        sent[customer] = time.perf_counter()
        producer.produce(topics["visits"], value, key=customer.encode())
        producer.poll(0)
    producer.flush(10)
    reader.join(seconds + 30)
    consumer.close()
    slices: dict[int, float] = {}
    for customer, latency in seen:
        i = int(customer.rsplit("-", 1)[1])
        slices[int(moments[i] * 10)] = max(slices.get(int(moments[i] * 10), 0.0), latency * 1000)
    return [round(slices[k]) for k in sorted(slices)], len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--guarantee", choices=("at_least_once", "exactly_once"), default="at_least_once")
    parser.add_argument("--commit-interval", type=float, default=0.1)
    parser.add_argument("--rate", type=float, default=1087)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--show", type=int, default=15, help="100 ms slices printed")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:6]
    topics = run.latency_topics(tag)
    env = {f"REMARKET_TOPIC_{role.upper()}": name for role, name in topics.items()}
    run.apply_topics(args.bootstrap, f"bench-first-{tag}", **env)
    workdir = Path(tempfile.mkdtemp(prefix="first-second-"))
    for start in range(args.restarts + 1):
        worker = run.WorkerRun(args.bootstrap, f"bench-first-{tag}", workdir,
                               REMARKET_PROCESSING_GUARANTEE=args.guarantee,
                               REMARKET_COMMIT_INTERVAL_SECONDS=str(args.commit_interval),
                               REMARKET_POLICY_FILE=str(run.ROOT / "bench" / "policy.latency.toml"), **env)
        try:
            worker.wait_ready(interval=0.02)
            worst, answered = load(args.bootstrap, topics, f"{tag}s{start}", args.rate, args.seconds)
        finally:
            worker.stop()
        label = "fresh worker, new topics" if start == 0 else f"restart {start}, same topics"
        print(f"{label}: worst ms of each 100 ms {worst[:args.show]}; "
              f"{answered} of {int(args.rate * args.seconds)} answered", flush=True)


if __name__ == "__main__":
    main()
