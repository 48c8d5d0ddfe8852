"""A worker's first second under load: a fresh worker on new topics, then the same worker restarted.

    .venv/bin/python deploy/kafka/local_broker.py --dir /tmp/broker --port 39092 start
    .venv/bin/python bench/first_second.py --bootstrap 127.0.0.1:39092 --guarantee at_least_once --restarts 2

Each latency run of bench/run.py starts a worker on topics created just before it and sends at
once; its first second's actions came up to ~1 s late, which decided many runs' p99. This starts
a worker on new topics, waits for /readyz and sends `--rate` events/s of the latency workload for
`--seconds` through bench/run.py's latency harness (librdkafka); then stops the
worker cleanly and starts it again (same app id, same data dir, the same topics) `--restarts`
times, each time with the same load of new customers. Prints the worst latency of each 100 ms of
sending: a fresh worker on new topics against a restarted one (docs/benchmarks.md, 2026-12-07).
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (bench/run.py: its latency harness, topics and worker)


def worst_by_slice(answered: list[tuple[float, float]], slice_s: float = 0.1) -> list[int]:
    """The worst latency (ms) among the events sent in each `slice_s` of the sending."""
    first = min(at for at, _ in answered)
    worst: dict[int, float] = {}
    for at, latency in answered:
        index = int((at - first) / slice_s)
        worst[index] = max(worst.get(index, 0.0), latency * 1000)
    return [round(worst[i]) for i in sorted(worst)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--guarantee", choices=("at_least_once", "exactly_once"), default="at_least_once")
    parser.add_argument("--commit-interval", type=float, default=0.1)
    parser.add_argument("--rate", type=float, default=1087)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--partitioner", choices=tuple(run.LATENCY_PARTITIONERS), default="murmur2")
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
            figures = asyncio.run(run._librdkafka_harness(args.bootstrap, topics, f"{tag}s{start}", args.rate,
                                                          args.seconds, worker, args.partitioner))
        finally:
            worker.stop()
        label = "fresh worker, new topics" if start == 0 else f"restart {start}, same topics"
        print(f"{label}: worst ms of each 100 ms {worst_by_slice(figures['latencies'])[:args.show]}; "
              f"{len(figures['latencies'])} of {int(args.rate * args.seconds)} answered", flush=True)


if __name__ == "__main__":
    main()
