"""Workarounds for faust-streaming bugs that break remarket's guarantees, applied once by the
worker's composition root. Each names the symptom, the cause and how it was shown here.
"""
from __future__ import annotations

from typing import Any, List, Mapping

from faust.stores import rocksdb as faust_rocksdb
from faust.transport.drivers import aiokafka as faust_aiokafka

from remarket.shell.heap import thaw_before_store_close

_applied = False


async def _highwaters_from_the_broker(self: Any, partitions: List[Any]) -> Mapping[Any, int]:
    # aiokafka's end_offsets sends ListOffsets with the consumer's isolation level, so under
    # read_committed it already answers the last stable offset, from the broker.
    return await self._ensure_consumer().end_offsets(partitions)


def apply_all() -> None:
    """Idempotent."""
    global _applied
    if _applied:
        return
    # Table recovery skipped under exactly-once. faust takes changelog highwaters from
    # `consumer.last_stable_offset(tp)`, which aiokafka only knows after a fetch from that
    # partition; at start-up there was none, so the highwater read -1, recovery was declared
    # complete at once and the worker ran with empty state (seen here: 987 of 20,000 customers
    # restored, "Highwater ... -1" in the recovery log, in one start out of two).
    faust_aiokafka.AIOKafkaConsumerThread._highwaters = _highwaters_from_the_broker
    # A revoked partition's RocksDB stays open (its lock held, so it cannot be opened again) if
    # its handle sits in a reference cycle the worker froze out of garbage collection: faust
    # closes databases only by dropping them and calling gc.collect() (shell/heap.py).
    thaw_before_store_close(faust_rocksdb.Store)
    _applied = True
