"""Restore the customer table from its changelog before faust's own recovery looks at it.

faust's recovery pushes every changelog record through its consumer's per-message delivery and
ends a restore it cannot finish with a guess: after two 5-second waits on an empty queue
(`detect_aborted_tx`, tables/recovery.py) it declares a partition recovered up to its highwater
as soon as the consumer's fetch position has passed it, whether or not the records fetched ever
reached the table. Records dropped on the way (a delivery cancelled by a flow suspension, a read
offset left ahead of a re-seek) are then silently missing from the state, and the events behind
them are never processed again: an action lost after a SIGKILL on a busy machine.

This reads each assigned changelog partition with a plain read_committed consumer from the
offset the store last persisted up to the partition's last stable offset, writes the records
into RocksDB in write batches together with the offset they reach, and only then lets faust
in: faust then finds every partition already at its highwater and has nothing left to guess.
Positions, not timeouts, decide when a partition is done; a restore that stops advancing is an
error, never a success.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger("remarket.restore")

FETCH_MAX_BYTES = 64 * 2**20
PARTITION_FETCH_MAX_BYTES = 16 * 2**20
MAX_RECORDS_PER_POLL = 20_000
STALL_SECONDS = 120.0
"""No position moved for this long while records remain: the broker is unreachable or the
changelog is stuck. The worker stops rather than run on partial state."""


class RestoreStalled(RuntimeError):
    pass


class PartitionStore(Protocol):
    """Where restored records go: one durable write per batch, with the offset it reaches."""

    def persisted_offset(self, partition: int) -> int | None: ...

    def write(self, partition: int, records: list[tuple[bytes, bytes | None]], upto: int) -> None: ...


@dataclass(frozen=True)
class RestoreReport:
    records: int
    seconds: float
    partitions: dict[int, tuple[int, int]]  # partition -> (first offset read, end offset)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("inf")


async def restore_changelog(client_config: dict[str, Any], topic: str, partitions: Iterable[int],
                            store: PartitionStore, *, on_records: Callable[[int], None] = lambda n: None,
                            stall_seconds: float = STALL_SECONDS) -> RestoreReport:
    """Bring `store` up to the last stable offset of each changelog partition."""
    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        **client_config, group_id=None, enable_auto_commit=False, isolation_level="read_committed",
        auto_offset_reset="earliest", fetch_max_bytes=FETCH_MAX_BYTES,
        max_partition_fetch_bytes=PARTITION_FETCH_MAX_BYTES, fetch_max_wait_ms=100)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(set(partitions))]
        ends = await consumer.end_offsets(tps)  # read_committed: the last stable offsets
        begins = await consumer.beginning_offsets(tps)
        span: dict[int, tuple[int, int]] = {}
        for tp in tps:
            persisted = store.persisted_offset(tp.partition)
            first = max(begins[tp], persisted + 1 if persisted is not None else 0)
            span[tp.partition] = (first, ends[tp])
        todo = [tp for tp in tps if span[tp.partition][0] < span[tp.partition][1]]
        consumer.assign(todo)
        for tp in todo:
            consumer.seek(tp, span[tp.partition][0])
        total = await _read_until_ends(consumer, todo, ends, store, on_records, stall_seconds)
        for tp in tps:  # everything below the last stable offset is in: faust has nothing left to read
            end = span[tp.partition][1]
            persisted = store.persisted_offset(tp.partition)
            if end > 0 and (persisted is None or persisted < end - 1):
                store.write(tp.partition, [], end - 1)
        report = RestoreReport(total, time.monotonic() - started, span)
        log.info("restored %d changelog records of %s partitions %s in %.1f s (%.0f records/s)",
                 report.records, topic, sorted(span), report.seconds, report.rate)
        return report
    finally:
        await consumer.stop()


async def _read_until_ends(consumer: AIOKafkaConsumer, todo: list[TopicPartition], ends: dict,
                           store: PartitionStore, on_records: Callable[[int], None], stall_seconds: float) -> int:
    remaining = set(todo)
    total = 0
    moved_at = time.monotonic()
    positions = {tp: -1 for tp in todo}
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=MAX_RECORDS_PER_POLL)
        for tp, records in batches.items():
            rows = [(r.key, r.value) for r in records if r.key is not None]
            store.write(tp.partition, rows, records[-1].offset)
            total += len(records)
            on_records(len(records))
        for tp in list(remaining):
            # aborted records and transaction markers are skipped, but the position moves past them
            position = await consumer.position(tp)
            if position != positions[tp]:
                positions[tp] = position
                moved_at = time.monotonic()
            if position >= ends[tp]:
                remaining.discard(tp)
        if remaining and time.monotonic() - moved_at > stall_seconds:
            stuck = {f"{tp.topic}[{tp.partition}]": f"{positions[tp]}/{ends[tp]}" for tp in remaining}
            raise RestoreStalled(f"changelog restore made no progress for {stall_seconds:.0f} s: {stuck}")
        await asyncio.sleep(0)
    return total
