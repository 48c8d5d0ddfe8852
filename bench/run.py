"""remarket benchmark: all contenders, same broker, same data, one command.

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/run.py                      # full run (about 10-15 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick              # smoke run with small numbers
    .venv/bin/python bench/run.py --write-docs         # also rewrite the results in docs/benchmarks.md

Contenders, each one process consuming the same pre-produced topic (4 partitions):
  (a) raw aiokafka loop: consume -> orjson decode -> produce (the ceiling for a Python worker)
  (b) remarket worker, full pipeline (validation, dedup, state in RocksDB + changelog, actions),
      exactly-once on and off
  (c) Quix Streams running remarket's same per-record pipeline in its stateful apply
Then: event->action latency at half the rate the worker sustains on the latency workload (a new
customer's first paid order, answered at once: ~4x the cost of an average event; produced and its
action read back through librdkafka, `--latency-client`), restore time of N customers' state from the
changelog, bytes of state per customer, peak RSS.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from remarket.catalog import load_catalog
from remarket.devkit.broker import LocalBroker
from remarket.devkit.metrics import metric_sum
from remarket.devkit.workers import WorkerProcess, launch_worker
from remarket.domain.policy import Policy
from remarket.domain.state import CustomerState
from remarket.shell.pipeline import UNCHANGED, Pipeline, SourceRecord, owner_partition
from remarket.devkit.simulate import TrafficModel

ROOT = Path(__file__).resolve().parents[1]

CATALOG = ROOT / "bench" / "catalog.toml"
EVENTS_TOPIC = "bench.events"
PARTITIONS = 4
PY = sys.executable


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- data ----------------------------------------------------------------------------------
def generate_events(n: int, customers: int, seed: int = 11) -> list[tuple[bytes, bytes]]:
    """n live events over the last n milliseconds, by `customers` simulated customers."""
    model = TrafficModel(customers=customers, seed=seed, malformed_share=0.005)
    start = datetime.now(timezone.utc) - timedelta(milliseconds=n)
    out: list[tuple[bytes, bytes]] = []
    i = 0
    while len(out) < n:
        for ev in model.live(start + timedelta(milliseconds=i)):
            out.append((ev.key or b"", ev.value))
        i += 1
    return out[:n]


async def produce_all(bootstrap: str, topic: str, records, *, acks="all") -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=acks, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(topic, value, key=key or None) for key, value in records]
        await producer.flush()
        for fut in futures[-100:]:
            await fut
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def create_topics(bootstrap: str, topics: list[tuple[str, int, dict]]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(name, partitions, 1, topic_configs=config) for name, partitions, config in topics
               if name not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


# -- remarket worker -----------------------------------------------------------------------
def WorkerRun(bootstrap: str, app_id: str, workdir: Path, **env: str) -> WorkerProcess:
    """A bench worker: the bench catalog unless `env` names another."""
    return launch_worker(bootstrap, app_id, workdir, cwd=ROOT, **{"REMARKET_CATALOG_FILE": str(CATALOG), **env})


def events_done(worker: WorkerProcess) -> int:
    return int(metric_sum(worker.metrics(), "remarket_events_total"))


def run_worker_throughput(bootstrap: str, workdir: Path, n: int, guarantee: str, **env: str) -> dict:
    app_id = f"bench-{guarantee.replace('_', '')}-{uuid.uuid4().hex[:6]}"
    worker = WorkerRun(bootstrap, app_id, workdir, REMARKET_PROCESSING_GUARANTEE=guarantee, **env)
    try:
        worker.wait_ready()
        return drain_rate(worker, n)
    finally:
        worker.stop()


def drain_rate(worker: WorkerProcess, n: int) -> dict:
    """Events/s (wall and per CPU-second) between 5 % and 95 % of `n` events handled."""
    marks: list[tuple[float, int, float]] = []
    deadline = time.perf_counter() + 1800
    while time.perf_counter() < deadline:
        done = events_done(worker)
        marks.append((time.perf_counter(), done, worker.cpu_seconds()))
        if done >= n:
            break
        time.sleep(0.25)
    lo = next(m for m in marks if m[1] >= 0.05 * n)
    hi = next(m for m in marks if m[1] >= 0.95 * n)
    events = hi[1] - lo[1]
    advanced = int(metric_sum(worker.metrics(), "remarket_ticks_total", phase="handled"))
    return {"events": marks[-1][1], "rate": events / (hi[0] - lo[0]),
            "cpu_rate": events / max(1e-9, hi[2] - lo[2]), "peak_rss_mb": worker.peak_rss_mb(),
            "customers_advanced": advanced}


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall rate (its own CPU rate and RSS), and every run's rates."""
    ordered = sorted(runs, key=lambda r: r["rate"])
    middle = dict(ordered[(len(ordered) - 1) // 2])
    middle["cpu_rate"] = statistics.median(r["cpu_rate"] for r in runs)
    middle["runs"] = [round(r["rate"]) for r in runs]
    return middle


def run_contender(kind: str, bootstrap: str, n: int, *extra: str) -> dict:
    out = f"bench.out-{kind}-{uuid.uuid4().hex[:6]}"
    asyncio.run(create_topics(bootstrap, [(out, PARTITIONS, {})]))
    done = subprocess.run([PY, str(ROOT / "bench" / "contenders.py"), kind, "--bootstrap", bootstrap,
                           "--topic", EVENTS_TOPIC, "--out", out, "--events", str(n),
                           "--group", f"bench-{kind}-{uuid.uuid4().hex[:6]}", *extra],
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def apply_topics(bootstrap: str, app_id: str, **env: str) -> None:
    """`remarket topics apply` for the bench catalog (with `env`'s topic names)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("REMARKET_")}
    full.update({"REMARKET_KAFKA_BOOTSTRAP": bootstrap, "REMARKET_CATALOG_FILE": str(CATALOG),
                 "REMARKET_APP_ID": app_id, **env})
    subprocess.run([PY, "-m", "remarket.cli", "topics", "apply"], env=full, cwd=ROOT, check=True, capture_output=True)


# -- latency ------------------------------------------------------------------------------
LATENCY_RUNS = (("exactly_once", 2.8), ("exactly_once", 0.1), ("exactly_once", 0.05), ("at_least_once", 0.1),
                ("at_least_once", 2.8))
"""(guarantee, commit interval s): the default interval, then short ones. Under exactly-once an
action is visible when its transaction commits, so the interval bounds latency from below; under
at-least-once it is visible once sent, and a commit only pauses handling while it runs."""

def latency_event(tag: str, i: int) -> tuple[str, bytes]:
    """One event of the latency workload: a new customer's first paid order, answered at once by
    the new-customer campaign (bench/policy.latency.toml)."""
    customer = f"lat-{tag}-{i}"
    doc = {"event_id": f"{customer}-paid", "event_type": "order.paid", "customer_id": customer,
           "occurred_at": datetime.now(timezone.utc).isoformat(), "schema_version": 1,
           "order_id": f"o-{i}", "total": 20.0}
    return customer, orjson.dumps(doc)


def latency_topics(tag: str) -> dict[str, str]:
    return {"visits": f"bench.lat-{tag}.events", "actions": f"bench.lat-{tag}.actions",
            "holdout": f"bench.lat-{tag}.holdout", "profiles": f"bench.lat-{tag}.profiles",
            "ticks": f"bench.lat-{tag}.ticks", "rerouted": f"bench.lat-{tag}.rerouted",
            "dead_letter": f"bench.lat-{tag}.dlq"}


def latency_workload_rate(bootstrap: str, workdir: Path, n: int, guarantee: str) -> dict:
    """The rate the worker sustains on the latency workload itself: `n` of its events, produced
    beforehand, drained (every event costs ~4x an average event of the throughput traffic: a new
    state, a campaign decision and an action). Half of it is where latency is measured."""
    tag = uuid.uuid4().hex[:6]
    topics = latency_topics(tag)
    env = {f"REMARKET_TOPIC_{role.upper()}": name for role, name in topics.items()}
    apply_topics(bootstrap, f"bench-latrate-{tag}", **env)
    asyncio.run(produce_all(bootstrap, topics["visits"],
                            [(customer.encode(), value) for customer, value in (latency_event(tag, i) for i in range(n))]))
    worker = WorkerRun(bootstrap, f"bench-latrate-{tag}", workdir, REMARKET_PROCESSING_GUARANTEE=guarantee,
                       REMARKET_POLICY_FILE=str(ROOT / "bench" / "policy.latency.toml"), **env)
    try:
        worker.wait_ready()
        return {"workload": "latency", "guarantee": guarantee, **drain_rate(worker, n)}
    finally:
        worker.stop()


WARMUP_SECONDS = 5.0
"""A worker's first second under load was its slowest: its first commit's changelog records held
aiokafka's fetches for 100 ms (fixed in c7980b4), and under exactly-once the broker still takes
longest then to complete transactions (docs/benchmarks.md, 2026-12-08). Every run reports its p99
over all events and over those sent after this many seconds."""


def percentile_ms(ordered: list[float], p: float) -> float:
    """The `p` quantile (0..1) of latencies in seconds, sorted, in ms; nan when there are none."""
    return 1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")


def _p99_after(answered: list[tuple[float, float]], seconds: float) -> float:
    if not answered:
        return float("nan")
    return percentile_ms(sorted(latency for at, latency in answered if at - answered[0][0] >= seconds), 0.99)


LIVE_GROWTH_MS = 250
"""A live probe is kept up with when the events of its last third were answered (median) at most
this much later than those of its first third: a worker short by 1 % of the rate falls ~0.2 s
further behind over a 30 s probe."""


def kept_up(probe: dict) -> bool:
    return probe["missing"] == 0 and probe["last_third_p50_ms"] - probe["first_third_p50_ms"] <= LIVE_GROWTH_MS


def live_sustained_rate(bootstrap: str, workdir: Path, drained: float, seconds: float, client: str,
                        probes: int = 5, partitioner: str = "murmur2") -> dict:
    """The highest rate the worker keeps up with while the latency workload arrives live, exactly-once
    with 0.1 s commits (the sustainable throughput of the stream-processing benchmarks: the highest
    constant input rate at which latency does not keep growing). Bisection between half and all of
    the drained rate (`drained`), `probes` live runs of `seconds` each; below half, halving."""
    kept, behind, runs = 0.0, drained, []  # the highest rate kept up with so far, the lowest not
    rate = drained / 2
    for _ in range(probes):
        probe = asyncio.run(measure_latency(bootstrap, workdir, rate, seconds, "exactly_once", 0.1, client,
                                            partitioner))
        runs.append(probe)
        log(f"live probe at {rate:,.0f} ev/s: {'kept up' if kept_up(probe) else 'fell behind'} "
            f"(median latency {probe['first_third_p50_ms']:,.0f} → {probe['last_third_p50_ms']:,.0f} ms, "
            f"missing {probe['missing']}, worker {probe['worker_cores']:.2f} cores)")
        if kept_up(probe):
            kept = rate
        else:
            behind = rate
        rate = (kept + behind) / 2 if kept else behind / 2
    return {"rate": kept or float("nan"), "drained_rate": drained, "probe_seconds": seconds,
            "probes": [{key: round(r[key], 2) for key in ("rate", "first_third_p50_ms", "last_third_p50_ms",
                                                         "p99_ms", "missing", "worker_cores")} for r in runs]}


LATENCY_CLIENTS = ("librdkafka", "aiokafka")
"""The latency harness's Kafka client for its load generator and reader. librdkafka (confluent-kafka),
as storefronts produce, does its I/O in C threads: it leaves the 2-core machine to the broker and
the worker. The aiokafka harness, the only one before 2026-12-07, spent ~0.3 ms of Python per
event itself (docs/benchmarks.md): kept for comparison with the earlier figures."""


async def measure_latency(bootstrap: str, workdir: Path, rate: float, seconds: float,
                          guarantee: str, commit_interval: float, client: str = "librdkafka",
                          partitioner: str = "murmur2") -> dict:
    tag = uuid.uuid4().hex[:6]
    topics = latency_topics(tag)
    env = {f"REMARKET_TOPIC_{role.upper()}": name for role, name in topics.items()}
    apply_topics(bootstrap, f"bench-lat-{tag}", **env)  # the worker refuses to start without its inputs
    worker = WorkerRun(bootstrap, f"bench-lat-{tag}", workdir, REMARKET_PROCESSING_GUARANTEE=guarantee,
                       REMARKET_COMMIT_INTERVAL_SECONDS=str(commit_interval),
                       REMARKET_POLICY_FILE=str(ROOT / "bench" / "policy.latency.toml"), **env)
    try:
        await asyncio.to_thread(worker.wait_ready)
        harness = _librdkafka_harness if client == "librdkafka" else _aiokafka_harness
        cpu_started = time.process_time()
        figures = await harness(bootstrap, topics, tag, rate, seconds, worker, partitioner)
        figures["harness_cores"] = (time.process_time() - cpu_started) / figures.pop("sending_s")
        exposition = worker.metrics()  # a forwarded event counts twice: "rerouted", then its outcome
        rerouted = metric_sum(exposition, "remarket_events_total", outcome="rerouted")
        handled = metric_sum(exposition, "remarket_events_total") - rerouted
    finally:
        worker.stop()
    answered = sorted(figures.pop("latencies"))  # by the time each event was sent
    latencies = sorted(latency for _, latency in answered)
    total = int(rate * seconds)
    third, nan = max(1, len(answered) // 3), float("nan")
    return {"rate": rate, "events": total, "actions_seen": len(latencies), "missing": figures.pop("missing"),
            "p50_ms": percentile_ms(latencies, 0.50), "p95_ms": percentile_ms(latencies, 0.95),
            "p99_ms": percentile_ms(latencies, 0.99), "guarantee": guarantee,
            "p99_after_warmup_ms": _p99_after(answered, WARMUP_SECONDS),
            # a worker that does not keep up answers each event later than the one before
            "first_third_p50_ms": 1000 * statistics.median([latency for _, latency in answered[:third]] or [nan]),
            "last_third_p50_ms": 1000 * statistics.median([latency for _, latency in answered[-third:]] or [nan]),
            "commit_interval_s": commit_interval, "client": client, "partitioner": partitioner,
            "rerouted_share": rerouted / handled if handled else nan,
            # while events arrive: how busy the worker was, and its CPU per event (against the drain's)
            **figures}


async def _send_paced(tag: str, rate: float, total: int, sent: dict[str, float], send) -> float:
    """The latency events, each at its moment (`rate` a second) and stamped in `sent` as it goes
    out through `send(key, value)`; the seconds it took."""
    started = time.perf_counter()
    for i in range(total):
        if (delay := started + i / rate - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        customer, value = latency_event(tag, i)
        sent[customer] = time.perf_counter()
        await send(customer.encode(), value)
    return time.perf_counter() - started


async def _aiokafka_harness(bootstrap: str, topics: dict[str, str], tag: str, rate: float, seconds: float,
                            worker, partitioner: str = "murmur2") -> dict:
    """One event per send (linger 0, aiokafka's murmur2 partitioner), read back by a read_committed
    consumer, in this event loop."""
    if partitioner != "murmur2":
        raise ValueError("the aiokafka harness partitions as aiokafka does: murmur2")
    sent: dict[str, float] = {}
    latencies: list[tuple[float, float]] = []  # (sent at, seconds until its action was read)
    consumer = AIOKafkaConsumer(topics["actions"], bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await consumer.start()
    await producer.start()
    total = int(rate * seconds)

    async def read_actions(until: float) -> None:
        while time.perf_counter() < until and len(latencies) < total:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    customer = record.key.decode()  # one event per customer: its action answers it
                    if (at := sent.pop(customer, None)) is not None:
                        latencies.append((at, now - at))

    reader = asyncio.create_task(read_actions(time.perf_counter() + seconds + 60))

    async def send(key: bytes, value: bytes) -> None:
        await producer.send(topics["visits"], value, key=key)

    cpu_started = worker.cpu_seconds()
    sending = await _send_paced(tag, rate, total, sent, send)
    worker_cpu = worker.cpu_seconds() - cpu_started
    await reader
    await producer.stop()
    await consumer.stop()
    return {"latencies": latencies, "missing": len(sent), "sending_s": sending,
            "worker_cores": worker_cpu / sending, "worker_cpu_ms_per_event": 1000 * worker_cpu / total}


LATENCY_PARTITIONERS = {"murmur2": "murmur2_random", "crc32": "consistent_random"}
"""The harness producer's partitioner (librdkafka's names). murmur2, as Kafka's Java client, aiokafka
and faust, puts each event on its customer's partition; crc32, librdkafka's default, puts ~3 of 4
elsewhere, and the worker forwards those to its `rerouted` topic first (docs/senders.md): under
exactly-once a forwarded event is readable by the worker only once the transaction that forwarded
it commits, so its action waits for a second commit (docs/benchmarks.md, 2026-12-08)."""


async def _librdkafka_harness(bootstrap: str, topics: dict[str, str], tag: str, rate: float, seconds: float,
                              worker, partitioner: str = "murmur2") -> dict:
    """The same load and reading through confluent-kafka: each event produced on its own (linger 0,
    acks=all, idempotent off as a plain storefront client, `partitioner` of LATENCY_PARTITIONERS),
    the actions read back read_committed by a thread polling librdkafka's queue (each poll answers
    at its first message, and takes what else is queued); both stamp the same perf_counter."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    sent: dict[str, float] = {}
    latencies: list[tuple[float, float]] = []  # (sent at, seconds until its action was read)
    total = int(rate * seconds)
    # no Nagle delay on the harness's own sockets: what is measured is the worker's
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all",
                         "enable.idempotence": False, "socket.nagle.disable": True,
                         "partitioner": LATENCY_PARTITIONERS[partitioner]})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-lat-reader-{tag}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "fetch.wait.max.ms": 100, "socket.nagle.disable": True})
    partitions = consumer.list_topics(topics["actions"], timeout=10).topics[topics["actions"]].partitions
    # Connected, and the first offsets resolved, before the first event: librdkafka otherwise connects
    # to the partitions' leader and looks up OFFSET_BEGINNING once the first events are on their way,
    # and the harness's own start would be timed with the worker.
    consumer.assign([TopicPartition(topics["actions"], p, consumer.get_watermark_offsets(
        TopicPartition(topics["actions"], p), timeout=10)[0]) for p in partitions])
    producer.list_topics(topics["visits"], timeout=10)
    until = time.perf_counter() + seconds + 60

    def read_actions() -> None:
        while time.perf_counter() < until and len(latencies) < total:
            first = consumer.poll(0.2)  # consume(n, timeout) would wait the whole timeout for n
            if first is None:
                continue
            now = time.perf_counter()
            for message in [first, *consumer.consume(num_messages=1000, timeout=0)]:
                if message.error() is not None:
                    continue
                customer = message.key().decode()  # one event per customer: its action answers it
                if (at := sent.pop(customer, None)) is not None:
                    latencies.append((at, now - at))

    reader = asyncio.create_task(asyncio.to_thread(read_actions))
    failures: list[str] = []  # events the broker refused: the run is void

    def delivered(error, message) -> None:  # noqa: ANN001
        if error is not None:
            failures.append(str(error))

    async def send(key: bytes, value: bytes) -> None:
        producer.produce(topics["visits"], value, key=key, on_delivery=delivered)
        producer.poll(0)

    cpu_started = worker.cpu_seconds()
    sending = await _send_paced(tag, rate, total, sent, send)
    worker_cpu = worker.cpu_seconds() - cpu_started
    await asyncio.to_thread(producer.flush, 30)
    await reader
    consumer.close()
    if failures:
        raise RuntimeError(f"{len(failures)} events not produced, e.g. {failures[0]}")
    return {"latencies": latencies, "missing": len(sent), "sending_s": sending,
            "worker_cores": worker_cpu / sending, "worker_cpu_ms_per_event": 1000 * worker_cpu / total}


def median_latency(runs: list[dict]) -> dict:
    """Each percentile's median over the runs (single runs on 2 shared cores move p99 by ±50 %),
    and every run's p99."""
    middle = dict(runs[0])
    for key in ("p50_ms", "p95_ms", "p99_ms", "p99_after_warmup_ms", "worker_cores", "worker_cpu_ms_per_event",
                "harness_cores", "rerouted_share"):
        middle[key] = statistics.median(r[key] for r in runs)
    middle["missing"] = sum(r["missing"] for r in runs)
    middle["runs_p99_ms"] = [round(r["p99_ms"]) for r in runs]
    middle["runs_p99_after_warmup_ms"] = [round(r["p99_after_warmup_ms"]) for r in runs]
    return middle


# -- restore ------------------------------------------------------------------------------
def sample_states(events: list[tuple[bytes, bytes]]) -> list[CustomerState]:
    """Real states: the generated traffic folded through the same pipeline the worker runs."""
    catalog = load_catalog(CATALOG)
    pipeline = Pipeline(catalog, Policy())
    stored: dict[bytes, bytes] = {}
    now = datetime.now(timezone.utc) + timedelta(minutes=1)
    for offset, (key, value) in enumerate(events):
        partition = owner_partition(key, catalog.partitions) if key else 0
        handled = pipeline.handle(SourceRecord(EVENTS_TOPIC, partition, offset, key or None, value),
                                  stored.get(key), now)
        if handled.state is None:
            stored.pop(key, None)
        elif handled.state is not UNCHANGED:
            stored[key] = handled.state
    return [CustomerState.from_bytes(raw) for raw in stored.values()]


async def produce_changelog(bootstrap: str, topic: str, states: list[CustomerState], customers: int) -> float:
    await create_topics(bootstrap, [(topic, PARTITIONS, {"cleanup.policy": "compact"})])
    templates = [s.to_bytes() for s in states]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=50, max_batch_size=512 * 1024,
                                compression_type=None)
    await producer.start()
    started = time.perf_counter()
    rng = random.Random(5)
    try:
        for i in range(customers):
            template = rng.choice(templates)
            old_id = orjson.loads(template)["customer_id"] if b'"customer_id"' in template else None
            new_id = f"r-{i:07d}"
            value = template.replace(old_id.encode(), new_id.encode(), 1) if old_id else template
            await producer.send(topic, value, key=new_id.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - started


def wait_handling(worker: WorkerProcess, timeout: float = 1800) -> tuple[float, float | None]:
    """Seconds from launch until the worker handles records: ready, and its first due-work index
    rebuild (which holds records off while it scans every state held) has ended; and the seconds
    that scan took, from the worker's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric_sum(worker.get("/metrics")[1].decode(), "remarket_due_index_rebuilds_total") >= 1:
            handling = time.perf_counter() - worker.started
            scans = re.findall(r"due-work index rebuilt in (\d+) ms", worker.log_tail(400))
            return handling, (int(scans[-1]) / 1000 if scans else None)  # the log is the app id's: this worker's is last
        time.sleep(0.25)
    raise TimeoutError(f"no due-work index rebuild {timeout} s after ready\n{worker.log_tail()}")


def measure_restore(bootstrap: str, workdir: Path, states: list[CustomerState], customers: int,
                    repeat: int = 1, baseline: str | None = None) -> dict:
    """Worker start to ready over a changelog of `customers` states, empty data dir each time.

    With `baseline` (a git revision) the same changelog is also restored by that revision's
    worker, alternating with today's, `repeat` times each: the median of each is reported.
    """
    app_id = f"bench-restore-{uuid.uuid4().hex[:6]}"
    changelog = f"{app_id}-customers-changelog"
    log(f"writing {customers:,} customers' state into {changelog}")
    produce_seconds = asyncio.run(produce_changelog(bootstrap, changelog, states, customers))
    contenders: dict[str, dict[str, str]] = {"remarket": {}}
    if baseline:
        checkout = workdir / f"baseline-{baseline}"
        subprocess.run(["git", "worktree", "add", "--detach", str(checkout), baseline], cwd=ROOT, check=True,
                       capture_output=True)
        contenders[f"baseline {baseline}"] = {"PYTHONPATH": str(checkout / "src")}
    # inputs on empty topics of their own: the workers restore, and process nothing that would grow it
    quiet_inputs = {f"REMARKET_TOPIC_{role.upper()}": f"bench.restore-{app_id}.{role}"
                    for role in ("visits", "orders", "carts", "email", "consent")}
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    env = {**os.environ, "REMARKET_KAFKA_BOOTSTRAP": bootstrap, "REMARKET_CATALOG_FILE": str(CATALOG),
           "REMARKET_APP_ID": app_id, **quiet_inputs}
    subprocess.run([PY, "-m", "remarket.cli", "topics", "apply"], env=env, cwd=ROOT, check=True, capture_output=True)

    def start(data_dir: Path, env: dict[str, str]) -> dict:
        """Launch on `data_dir`, wait until it handles records, stop it cleanly."""
        worker = WorkerRun(bootstrap, app_id, workdir, REMARKET_DATA_DIR=str(data_dir),
                           REMARKET_TOPIC_TICKS=f"bench.restore-{data_dir.name}.ticks",
                           REMARKET_LOG_LEVEL="info", **quiet_inputs, **env)
        try:
            ready_after = worker.wait_ready(timeout=1800)
            handling_after, scan_s = wait_handling(worker)
            text = worker.get("/metrics")[1].decode()
            return {"ready_after_s": ready_after, "handling_after_s": handling_after,
                    "index_rebuild_s": scan_s if scan_s is not None else float("nan"),
                    "peak_rss_mb": worker.peak_rss_mb(),
                    "restored_records": metric_sum(text, "remarket_restored_records_total")}
        finally:
            worker.stop()

    try:
        for rep in range(repeat):
            for name, env in contenders.items():
                data_dir = workdir / f"{app_id}-{rep}-{len(runs[name])}-{name.split()[0]}"
                result = start(data_dir, env)  # empty data dir: the whole changelog is read
                result["rocksdb_mb"] = sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file()) / 2**20
                again = start(data_dir, env)  # a restart after a clean stop, on the data it left
                result.update({f"restart_{key}": value for key, value in again.items()})
                runs[name].append(result)
                log(f"restore {rep + 1}/{repeat} {name}: ready after {result['ready_after_s']:.1f} s, handling "
                    f"records after {result['handling_after_s']:.1f} s (index rebuild {result['index_rebuild_s']} s); "
                    f"restart: ready after {again['ready_after_s']:.1f} s, handling records after "
                    f"{again['handling_after_s']:.1f} s, {again['restored_records']:.0f} records read")
    finally:
        if baseline:
            subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], cwd=ROOT, capture_output=True)
    medians = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in runs.items()}
    return {"customers": customers, "changelog_write_s": produce_seconds, "repeat": repeat,
            "runs": runs, "median": medians, **medians["remarket"]}


# -- report -------------------------------------------------------------------------------
def markdown(results: dict, command: str) -> str:
    t = results["throughput"]
    if not t:
        t = {key: {"rate": float("nan"), "cpu_rate": float("nan"), "peak_rss_mb": float("nan")}
             for key in ("a_raw_aiokafka", "b_remarket_eos", "b_remarket_alo", "c_quix_eos", "c_quix_alo")}
    a, b_eos, b_alo = t["a_raw_aiokafka"]["rate"], t["b_remarket_eos"]["rate"], t["b_remarket_alo"]["rate"]
    c_eos, c_alo = t["c_quix_eos"]["rate"], t["c_quix_alo"]["rate"]
    cpu = lambda key: t[key]["cpu_rate"]  # noqa: E731
    rows = [
        "| contender | events/s (one process, wall; median) | events per CPU-second (median) | each run, events/s | peak RSS MB | customers advanced by due work |",
        "|---|---:|---:|---|---:|---:|",
        *[f"| {label} | {t[key]['rate']:,.0f} | {t[key]['cpu_rate']:,.0f} | "
          f"{', '.join(f'{x:,}' for x in t[key].get('runs', []))} | {t[key]['peak_rss_mb']:.0f} | "
          f"{t[key].get('customers_advanced', '–')} |"
          for label, key in (("(a) raw aiokafka consume → orjson → produce", "a_raw_aiokafka"),
                             ("(b) remarket worker, exactly-once", "b_remarket_eos"),
                             ("(b) remarket worker, at-least-once", "b_remarket_alo"),
                             ("(c) Quix Streams + same pipeline, exactly-once", "c_quix_eos"),
                             ("(c) Quix Streams + same pipeline, at-least-once", "c_quix_alo"))],
        "", "| ratio | value | target |", "|---|---:|---:|",
        f"| b/a (exactly-once) | {b_eos / a:.2f} | ≥ 0.25 (0.5 stretch) |",
        f"| b/a (at-least-once) | {b_alo / a:.2f} | ≥ 0.25 (0.5 stretch) |",
        f"| b/c (exactly-once vs exactly-once) | {b_eos / c_eos:.2f} | ≥ 1.5 |",
        f"| b/c (at-least-once vs at-least-once) | {b_alo / c_alo:.2f} | ≥ 1.5 |",
        f"| b/c per CPU-second (exactly-once) | {cpu('b_remarket_eos') / cpu('c_quix_eos'):.2f} | ≥ 1.5 |",
        f"| b/c per CPU-second (at-least-once) | {cpu('b_remarket_alo') / cpu('c_quix_alo'):.2f} | ≥ 1.5 |",
        "", "| event → action latency (median of runs) | rate ev/s | p50 ms | p95 ms | p99 ms | each run's p99 "
            f"| p99 after the first {WARMUP_SECONDS:.0f} s (each run) | missing "
            "| worker CPU, cores | worker CPU ms per event | harness CPU, cores |",
        "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    live = results.get("latency_live_sustained")
    if (sustained := results.get("latency_sustained")) is not None:
        said = [f"Latency workload sustained (exactly-once, drained): {sustained['rate']:,.0f} events/s "
                f"({sustained['cpu_rate']:,.0f} per CPU-second, {1000 / sustained['cpu_rate']:.2f} ms per event)"
                + ("." if live else "; measured at half of it.")]
        if live is not None:
            probes = ", ".join(f"{p['rate']:,.0f} {'kept up' if kept_up(p) else 'fell behind'}" for p in live["probes"])
            said += ["", f"Kept up with live (exactly-once, 0.1 s commits, {live['probe_seconds']:.0f} s probes: "
                         f"{probes}): {live['rate']:,.0f} events/s; measured at half of it."]
        rows[-2:-2] = ["", *said, ""]
    for lat in results["latency"]:
        rows.append(f"| {lat['guarantee']}, commit every {lat['commit_interval_s']} s | {lat['rate']:.0f} | "
                    f"{lat['p50_ms']:.1f} | {lat['p95_ms']:.1f} | {lat['p99_ms']:.1f} | "
                    f"{', '.join(map(str, lat.get('runs_p99_ms', [])))} | "
                    f"{lat.get('p99_after_warmup_ms', float('nan')):.1f} "
                    f"({', '.join(map(str, lat.get('runs_p99_after_warmup_ms', [])))}) | {lat['missing']} | "
                    f"{lat['worker_cores']:.2f} | {lat['worker_cpu_ms_per_event']:.2f} | "
                    f"{lat.get('harness_cores', float('nan')):.2f} ({lat.get('client', 'aiokafka')}, "
                    f"{lat.get('partitioner', 'crc32' if lat.get('client') == 'librdkafka' else 'murmur2')}, "
                    f"{100 * lat.get('rerouted_share', float('nan')):.0f} % rerouted) |")
    r, s = results.get("restore"), results["state"]
    rows += ["", "| state | value | target |", "|---|---:|---:|"]
    if r is not None:
        rows += [f"| restore {r['customers']:,} customers from the changelog (worker start → ready) | "
                 f"{r['ready_after_s']:.1f} s | ≤ 60 s |",
                 f"| … worker start → handling records (first due-work index rebuild ended) | "
                 f"{r['handling_after_s']:.1f} s | ≤ 60 s |",
                 f"| … of which the due-work index rebuild's scan | {r['index_rebuild_s']:.1f} s | |",
                 f"| restart after a clean stop (data dir kept): start → ready / handling records | "
                 f"{r['restart_ready_after_s']:.1f} / {r['restart_handling_after_s']:.1f} s, "
                 f"{r['restart_restored_records']:.0f} changelog records read | |",
                 f"| RocksDB on disk after restore | {r['rocksdb_mb']:.0f} MB | |",
                 f"| worker peak RSS after restore | {r['peak_rss_mb']:.0f} MB | |"]
    rows += [f"| serialized state per customer (mean / p95 / max) | {s['mean_bytes']:.0f} / {s['p95_bytes']} / "
             f"{s['max_bytes']} B | ≤ 1 KiB |"]
    header = (f"Run {results['when']} on {results['machine']} at commit {results['commit']}; "
              f"{results['events']:,} events by "
              f"{results['customers']:,} customers, topic with {PARTITIONS} partitions, one local Kafka "
              f"{results['kafka']} broker.\n\nCommand: `{command}`\n")
    return header + "\n" + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--restore-customers", type=int, default=1_000_000)
    parser.add_argument("--restore-repeat", type=int, default=1, help="restores per contender (median)")
    parser.add_argument("--restore-baseline", default=None,
                        help="git revision whose worker restores the same changelog, alternating")
    parser.add_argument("--repeat", type=int, default=3,
                        help="throughput runs per contender, all contenders in turn; the median is reported")
    parser.add_argument("--latency-seconds", type=float, default=30)
    parser.add_argument("--latency-client", choices=LATENCY_CLIENTS, default=LATENCY_CLIENTS[0],
                        help="the latency harness's load generator and reader (docs/benchmarks.md)")
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--skip", default="", help="comma list: throughput,quix,latency,restore")
    parser.add_argument("--throughput-baseline", default=None,
                        help="a git revision whose worker (exactly-once) runs in turn with the throughput contenders")
    parser.add_argument("--latency-rate", type=float, default=None,
                        help="events/s for the latency runs (default: half the rate the worker sustains on the "
                             "latency workload, exactly-once, measured first)")
    parser.add_argument("--latency-repeat", type=int, default=3,
                        help="runs per latency setting, all settings in turn; each percentile's median is reported")
    parser.add_argument("--latency-sustained-events", type=int, default=20_000,
                        help="latency-workload events drained to measure its sustained rate")
    parser.add_argument("--latency-basis", choices=("drain", "live"), default="drain",
                        help="the sustained rate the latency runs take half of: drained from a backlog (the "
                             "protocol of issue 11's figures), or the highest rate kept up with live (bisection "
                             "from half to all of the drained rate; docs/benchmarks.md)")
    parser.add_argument("--latency-partitioner", choices=tuple(LATENCY_PARTITIONERS), default="murmur2",
                        help="how the harness's producer partitions the latency events: murmur2 (Kafka's Java "
                             "client, aiokafka, faust; the keying contract's advice, docs/senders.md) or crc32 "
                             "(librdkafka's default: ~3 of 4 events take the worker's rerouted hop)")
    parser.add_argument("--live-probes", type=int, default=5, help="live runs of the bisection (--latency-basis live)")
    parser.add_argument("--live-probe-seconds", type=float, default=30, help="seconds of each live probe")
    args = parser.parse_args()
    if args.quick:
        args.events = min(args.events, 20_000)
        args.customers, args.restore_customers, args.latency_seconds = 2_000, 20_000, 8
        args.latency_sustained_events = min(args.latency_sustained_events, 4_000)
        args.latency_repeat = 1
    skip = set(filter(None, args.skip.split(",")))
    workdir = Path(tempfile.mkdtemp(prefix="remarket-bench-"))
    # always a private broker: the topics must hold exactly this run's data
    broker = LocalBroker(workdir / "kafka")
    bootstrap = broker.start()
    log(f"broker {bootstrap}; work dir {workdir}")
    results: dict = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                     "machine": f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
                     "events": args.events, "customers": args.customers, "kafka": "4.1.1",
                     "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                              text=True).stdout.strip() or "unknown"}
    try:
        apply_topics(bootstrap, f"bench-setup-{uuid.uuid4().hex[:6]}")
        log(f"generating and producing {args.events:,} events")
        events = generate_events(args.events, args.customers)
        asyncio.run(produce_all(bootstrap, EVENTS_TOPIC, events))

        t: dict = {}
        if "throughput" in skip:
            skip.add("quix")
        else:
            runs: dict[str, list[dict]] = {}
            contenders = [("a_raw_aiokafka", lambda: run_contender("raw", bootstrap, args.events)),
                          ("b_remarket_eos", lambda: run_worker_throughput(bootstrap, workdir, args.events, "exactly_once")),
                          ("b_remarket_alo", lambda: run_worker_throughput(bootstrap, workdir, args.events, "at_least_once"))]
            if args.throughput_baseline:  # the worker of another revision, exactly-once, in turn with the rest
                checkout = workdir / f"baseline-{args.throughput_baseline}"
                subprocess.run(["git", "worktree", "add", "--detach", str(checkout), args.throughput_baseline],
                               cwd=ROOT, check=True, capture_output=True)
                baseline_env = {"PYTHONPATH": str(checkout / "src")}
                contenders.append((f"b_remarket_eos@{args.throughput_baseline}", lambda: run_worker_throughput(
                    bootstrap, workdir, args.events, "exactly_once", **baseline_env)))
            if "quix" not in skip:
                contenders += [("c_quix_eos", lambda: run_contender("quix", bootstrap, args.events, "--exactly-once")),
                               ("c_quix_alo", lambda: run_contender("quix", bootstrap, args.events))]
            for repetition in range(1, args.repeat + 1):  # in turn, so drift of the machine hits all alike
                for name, run_one in contenders:
                    log(f"run {repetition}/{args.repeat}: {name}")
                    runs.setdefault(name, []).append(run_one())
                    log(json.dumps(runs[name][-1]))
            t = {name: median_run(results_of) for name, results_of in runs.items()}
        results["throughput"] = t
        log(json.dumps(t))

        results["latency"] = []
        if "latency" not in skip:
            if args.latency_rate:
                half = args.latency_rate
            else:  # half of what the worker sustains on the latency workload itself, exactly-once
                sustained = latency_workload_rate(bootstrap, workdir, args.latency_sustained_events, "exactly_once")
                results["latency_sustained"] = sustained
                log(json.dumps(sustained))
                half = sustained["rate"] / 2
                if args.latency_basis == "live":
                    live = live_sustained_rate(bootstrap, workdir, sustained["rate"], args.live_probe_seconds,
                                               args.latency_client, args.live_probes, args.latency_partitioner)
                    results["latency_live_sustained"] = live
                    log(json.dumps(live))
                    half = live["rate"] / 2
            runs_of: dict[tuple[str, float], list[dict]] = {}
            for repetition in range(1, args.latency_repeat + 1):  # in turn, as the throughput contenders
                for guarantee, commit in LATENCY_RUNS:
                    log(f"latency run {repetition}/{args.latency_repeat} at {half:.0f} ev/s, {guarantee}, "
                        f"commit every {commit} s")
                    runs_of.setdefault((guarantee, commit), []).append(asyncio.run(measure_latency(
                        bootstrap, workdir, half, args.latency_seconds, guarantee, commit, args.latency_client,
                        args.latency_partitioner)))
                    log(json.dumps(runs_of[(guarantee, commit)][-1]))
            results["latency"] = [median_latency(runs) for runs in runs_of.values()]

        states = sample_states(events)
        sizes = sorted(len(s.to_bytes()) for s in states)
        results["state"] = {"customers": len(sizes), "mean_bytes": statistics.fmean(sizes),
                            "p95_bytes": sizes[int(0.95 * (len(sizes) - 1))], "max_bytes": sizes[-1]}
        if "restore" not in skip:
            results["restore"] = measure_restore(bootstrap, workdir, states, args.restore_customers,
                                                 args.restore_repeat, args.restore_baseline)
            log(json.dumps(results["restore"]))
    finally:
        if broker:
            broker.stop()
        if args.throughput_baseline:
            subprocess.run(["git", "worktree", "remove", "--force", str(workdir / f"baseline-{args.throughput_baseline}")],
                           cwd=ROOT, capture_output=True)
    command = " ".join(["python bench/run.py", *(a for a in sys.argv[1:] if a != "--write-docs")])
    print(json.dumps(results, indent=2, default=str))
    if not skip - {"restore"}:
        table = markdown(results, command)
        print(table)
        if args.write_docs:
            doc = ROOT / "docs" / "benchmarks.md"
            text = doc.read_text() if doc.exists() else "# Benchmarks\n\n<!-- results -->\n<!-- /results -->\n"
            start, end = text.index("<!-- results -->"), text.index("<!-- /results -->")
            doc.write_text(text[:start] + "<!-- results -->\n" + table + text[end:])
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
