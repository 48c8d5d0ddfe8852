"""CPU per output record on the worker's send path, in-process: `TransactionalSink.send` into aiokafka's
own producer (never started: the topic's metadata is given, no broker), then every batch answered
as the broker would (`MessageBatch.done`) and the callbacks run, with faust's Prometheus monitor
counting as in the worker.

    PYTHONPATH=src .venv/bin/python bench/send_path.py --records 100000 --repeat 5

Two sides in turn, each exactly-once (the source partition's transactional producer) and
at-least-once (faust's plain producer): `straight` is today's path (into the open batch, reported
per batch), `send` the path every output took before (aiokafka's `send`, a future and a
done-callback per record, faust's sensors per record), still taken when the straight one cannot
be (forced here with a send marked as waiting). Prints µs of CPU per record (median of
`--repeat`). Only the sink's side of a send: the sender task that writes the batches, the same
for both, is not running.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from types import SimpleNamespace

from aiokafka import AIOKafkaProducer
from aiokafka.structs import PartitionMetadata

from remarket.shell import faust_metrics
from remarket.shell.faust_app import PRODUCER_MAX_BATCH_BYTES
from remarket.shell.pipeline import OutRecord, KeyPartitioner
from remarket.shell.state_cache import StateCache
from remarket.shell.store import FaustMemoryStore
from remarket.shell.tallies import TallyingRegistry
from remarket.shell.transactions import TransactionalSink

TOPIC = "bench.actions"
SOURCE = SimpleNamespace(topic="bench.events", partition=1, offset=0)
HEADERS = [("content-type", b"application/json")]


def producer_with_metadata(transactional_id: str | None) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", transactional_id=transactional_id,
                                partitioner=KeyPartitioner(), linger_ms=100, max_batch_size=PRODUCER_MAX_BATCH_BYTES)
    producer._metadata._partitions[TOPIC] = {p: PartitionMetadata(TOPIC, p, 1, [1], [1], None) for p in range(4)}
    if transactional_id is not None:
        producer._txn_manager.set_pid_and_epoch(7, 0)
        producer._txn_manager.begin_transaction()
    return producer


def sink_for(exactly_once: bool) -> tuple[TransactionalSink, AIOKafkaProducer]:
    registry = TallyingRegistry()
    app = SimpleNamespace(conf=SimpleNamespace(id="bench"), assignor=SimpleNamespace(group_for_topic=lambda t: 0))
    holder = SimpleNamespace(page=lambda pattern: (lambda view: view))
    faust_metrics.setup(holder, registry)  # the worker's monitor: faust's Prometheus one, tallied
    app.monitor = holder.monitor
    transactional_id = "bench-0-1" if exactly_once else None
    producer = producer_with_metadata(transactional_id)
    app.producer = SimpleNamespace(_producer=producer, _transaction_producers={}, _trn_locks={},
                                   _ensure_producer=lambda: producer)
    if exactly_once:
        app.producer._transaction_producers[transactional_id] = producer
        app.producer._trn_locks[transactional_id] = asyncio.Lock()
    table = SimpleNamespace(data=SimpleNamespace(data={}))
    sink = TransactionalSink(app, table, StateCache(FaustMemoryStore(table.data)), "bench-changelog",
                             {"actions": TOPIC}, exactly_once)
    return sink, producer


ANSWER_EVERY = 200
"""Outputs sent between two answers from the "broker" (in the worker a batch lingers 5 ms or so)."""


def answer(producer: AIOKafkaProducer) -> None:
    """What the sender does with each batch once the broker answered (its drain, requests and
    responses are the same on both sides and not run here)."""
    offset = 0
    for batches in producer._message_accumulator._batches.values():
        while batches:
            batch = batches.popleft()
            batch.done(base_offset=offset)
            offset += batch.record_count


async def one_run(exactly_once: bool, straight: bool, records: list[OutRecord]) -> float:
    sink, producer = sink_for(exactly_once)
    if not straight:
        sink._sends_waiting = 1  # as if a send were waiting: every output goes through `send`
    started = time.process_time()
    for start in range(0, len(records), ANSWER_EVERY):
        for out in records[start:start + ANSWER_EVERY]:
            await sink.send(out, SOURCE)
        answer(producer)
        await asyncio.sleep(0)  # the done-callbacks
    spent = time.process_time() - started
    assert sink.app.monitor.messages_sent == len(records)
    producer._closed = True  # never started: nothing to stop
    return spent / len(records) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    records = [OutRecord("actions", b"c-%06d" % (i % 10_000), b'{"kind":"profile","stage":"new"}' * 8, HEADERS)
               for i in range(args.records)]
    for exactly_once in (True, False):
        results: dict[str, list[float]] = {"straight": [], "send": []}
        for _ in range(args.repeat):
            for side in results:  # in turn
                results[side].append(asyncio.run(one_run(exactly_once, side == "straight", records)))
        label = "exactly-once" if exactly_once else "at-least-once"
        print(f"{label}: " + ", ".join(
            f"{side} {statistics.median(runs):.2f} µs/record ({', '.join(f'{r:.2f}' for r in runs)})"
            for side, runs in results.items()))


if __name__ == "__main__":
    main()
