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
    dedup, core, state in Quix's RocksDB store with changelog), every record the worker would
    produce for it (actions, withdrawals, holdout, profiles, dead letters) produced to a topic,
    and the worker's due work: every `--tick-seconds` each partition's customers due are advanced
    (`Pipeline.handle_due`, as the worker's partition tick does) inside the processing of that
    partition's first record that reads its input up to where it ended when the round began (the
    worker's due work never runs ahead of its input), through Quix's transaction for the
    partition: Quix has no timers,
    and this needs no tick record at all (the worker writes and reads one per partition and
    round). States are stored as the pipeline's JSON, not zstd-compressed as the worker stores
    them: the cheaper path, since Quix writes a state per record where the worker encodes once
    per commit. Not done here: the worker's metrics."""
    from confluent_kafka import TopicPartition
    from quixstreams import Application, message_context

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from remarket.catalog import load_catalog
    from remarket.domain.policy import Policy
    from remarket.shell.pipeline import UNCHANGED, Pipeline, SourceRecord, owner_partition
    from remarket.shell.schedule import DueIndex

    catalog = load_catalog(Path(args.catalog))
    pipeline = Pipeline(catalog, Policy())
    state_dir = tempfile.mkdtemp(prefix="bench-quix-")
    app = Application(broker_address=args.bootstrap, consumer_group=args.group, auto_offset_reset="earliest",
                      processing_guarantee="exactly-once" if args.exactly_once else "at-least-once",
                      state_dir=state_dir, loglevel="WARNING")
    topic = app.topic(args.topic, key_deserializer="bytes", value_deserializer="bytes")
    out = app.topic(args.out, key_serializer="bytes", value_serializer="bytes")
    progress = {"count": 0, "first": None, "last": None, "cpu0": 0.0, "cpu1": 0.0, "advanced": 0}
    due: dict[int, DueIndex] = {}
    next_round: dict[int, float] = {}
    rounds: dict[int, tuple[datetime, int]] = {}  # partition -> (its round's time, the input end it waits for)

    def store(state, handled) -> None:
        if handled.new_state is None:
            state.delete("s")
        elif handled.new_state is not UNCHANGED:
            state.set_bytes("s", handled.new_state.to_json())

    def schedule(partition: int, handled) -> None:
        if handled.customer_id is not None and handled.outcome != "duplicate":
            due.setdefault(partition, DueIndex()).set(handled.customer_id, handled.due_at)

    def due_work(partition: int, state) -> list[bytes]:
        """What the worker's partition tick does, once per round, in this partition's transaction,
        once its input is read up to where it ended when the round began."""
        context = message_context()
        waiting = rounds.get(partition)
        if waiting is None:
            if time.monotonic() < next_round.get(partition, 0.0):
                return []
            next_round[partition] = time.monotonic() + args.tick_seconds
            _, end = app._consumer.get_watermark_offsets(TopicPartition(args.topic, context.partition), cached=True)
            waiting = rounds[partition] = (datetime.now(timezone.utc), end)
        now, end = waiting
        if context.offset + 1 < end:
            return []
        del rounds[partition]
        outputs: list[bytes] = []
        for customer_id, _ in due.get(partition, DueIndex()).pop_due(now):
            customer = state._transaction.as_state(prefix=customer_id.encode())
            handled = pipeline.handle_due(customer_id, customer.get_bytes("s"), now, now)
            progress["advanced"] += 1
            store(customer, handled)
            schedule(partition, handled)
            outputs += [r.value or b"" for r in handled.records]
        return outputs

    def step(value: bytes, key: bytes, timestamp: int, headers, state):
        if progress["first"] is None:
            progress["first"], progress["cpu0"] = time.perf_counter(), cpu_seconds()
        # the bench produces with murmur2, as the worker's own inputs are: no record is rerouted
        partition = owner_partition(key, catalog.partitions) if key else 0
        record = SourceRecord(args.topic, partition, 0, key, value)
        handled = pipeline.handle(record, state.get_bytes("s"), datetime.now(timezone.utc))
        store(state, handled)
        schedule(partition, handled)
        outputs = [r.value or b"" for r in handled.records]  # one output record each
        outputs += due_work(partition, state)
        progress["count"] += 1
        if progress["count"] >= args.events:
            progress["last"], progress["cpu1"] = time.perf_counter(), cpu_seconds()
            app.stop()
        return outputs

    sdf = app.dataframe(topic)
    sdf = sdf.apply(step, stateful=True, metadata=True, expand=True)
    sdf.to_topic(out)
    app.run()
    elapsed = (progress["last"] or time.perf_counter()) - progress["first"]
    return {"events": progress["count"], "seconds": elapsed, "rate": progress["count"] / elapsed,
            "cpu_rate": progress["count"] / max(1e-9, progress["cpu1"] - progress["cpu0"]),
            "peak_rss_mb": peak_rss_mb(), "customers_advanced": progress["advanced"]}


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
    parser.add_argument("--tick-seconds", type=float, default=5.0, help="due-work round (the worker's default)")
    args = parser.parse_args()
    result = asyncio.run(raw_loop(args)) if args.contender == "raw" else quix(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
