"""The two contenders that are not remarket's Faust worker, each run as its own process.

    python bench/contenders.py raw  --bootstrap B --topic T --out O --events N --group G
    python bench/contenders.py quix --bootstrap B --topic T --out O --events N --group G [--exactly-once]

Each prints one JSON line: events, seconds (first record in to last record out), rate, peak RSS.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson


def peak_rss_mb() -> float:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the forking parent (the
    # bench, holding every event in memory), so every contender read the same ~480 MB
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def raw_loop(args) -> dict:
    """(a) The ceiling for a Python worker: consume -> orjson decode -> produce, nothing else."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(args.topic, bootstrap_servers=args.bootstrap, group_id=args.group,
                                auto_offset_reset="earliest", enable_auto_commit=True, max_poll_records=2000)
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    count, first = 0, None
    try:
        while count < args.events:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for records in batch.values():
                for record in records:
                    if first is None:
                        first, cpu0 = time.perf_counter(), cpu_seconds()
                    try:
                        doc = orjson.loads(record.value)
                        out = orjson.dumps({"customer_id": doc["customer_id"], "event_id": doc["event_id"]})
                    except (orjson.JSONDecodeError, KeyError, TypeError):
                        out = record.value  # the dead-letter equivalent: pass the bytes on
                    await producer.send(args.out, out, key=record.key)
                    count += 1
        await producer.flush()
        elapsed, cpu = time.perf_counter() - first, cpu_seconds() - cpu0
    finally:
        await producer.stop()
        await consumer.stop()
    return {"events": count, "seconds": elapsed, "rate": count / elapsed, "cpu_rate": count / cpu,
            "peak_rss_mb": peak_rss_mb()}


def quix(args) -> dict:
    """(c) Quix Streams doing the same per-customer work: remarket's own pipeline (validation,
    dedup, core, state in Quix's RocksDB store with changelog), and every record the worker would
    produce for it (actions, withdrawals, holdout, profiles, dead letters) produced to a topic.
    Not done here: the worker's due-work ticks (Quix has no per-key timers), its metrics."""
    from quixstreams import Application

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from remarket.catalog import load_catalog
    from remarket.domain.policy import Policy
    from remarket.shell.pipeline import UNCHANGED, Pipeline, SourceRecord, owner_partition

    catalog = load_catalog(Path(args.catalog))
    pipeline = Pipeline(catalog, Policy())
    state_dir = tempfile.mkdtemp(prefix="bench-quix-")
    app = Application(broker_address=args.bootstrap, consumer_group=args.group, auto_offset_reset="earliest",
                      processing_guarantee="exactly-once" if args.exactly_once else "at-least-once",
                      state_dir=state_dir, loglevel="WARNING")
    topic = app.topic(args.topic, key_deserializer="bytes", value_deserializer="bytes")
    out = app.topic(args.out, key_serializer="bytes", value_serializer="bytes")
    progress = {"count": 0, "first": None, "last": None, "cpu0": 0.0, "cpu1": 0.0}

    def step(value: bytes, key: bytes, timestamp: int, headers, state):
        if progress["first"] is None:
            progress["first"], progress["cpu0"] = time.perf_counter(), cpu_seconds()
        # the bench produces with murmur2, as the worker's own inputs are: no record is rerouted
        record = SourceRecord(args.topic, owner_partition(key, catalog.partitions) if key else 0, 0, key, value)
        stored = state.get("s")  # Quix's store serialises JSON: the state bytes travel as text
        handled = pipeline.handle(record, stored.encode() if stored else None, datetime.now(timezone.utc))
        if handled.state is None:
            state.delete("s")
        elif handled.state is not UNCHANGED:
            state.set("s", handled.state.decode())
        progress["count"] += 1
        if progress["count"] >= args.events:
            progress["last"], progress["cpu1"] = time.perf_counter(), cpu_seconds()
            app.stop()
        return [r.value or b"" for r in handled.records]  # one output record each

    sdf = app.dataframe(topic)
    sdf = sdf.apply(step, stateful=True, metadata=True, expand=True)
    sdf.to_topic(out)
    app.run()
    elapsed = (progress["last"] or time.perf_counter()) - progress["first"]
    return {"events": progress["count"], "seconds": elapsed, "rate": progress["count"] / elapsed,
            "cpu_rate": progress["count"] / max(1e-9, progress["cpu1"] - progress["cpu0"]),
            "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("contender", choices=["raw", "quix"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--catalog", default=str(Path(__file__).with_name("catalog.toml")))
    parser.add_argument("--exactly-once", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(raw_loop(args)) if args.contender == "raw" else quix(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
