"""Everything a record causes, produced in the transaction that commits the record's offset.

The only module that reaches into faust's and aiokafka's transaction internals
(`_transaction_producers`, `_trn_locks`, `_txn_manager`): pinned faust-streaming 0.15.x; a faust
upgrade must re-check it (the crash and scale-out tests fail if it breaks).
"""
from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import TP

from remarket.shell.pipeline import OutRecord

log = logging.getLogger("remarket.worker")


class TransactionalSink:
    def __init__(self, app: faust.App, table: Any, changelog_topic: str, topic_names: dict[str, str],
                 exactly_once: bool) -> None:
        self.app = app
        self.table = table
        self.store = table.data
        self.changelog_topic = changelog_topic
        self.topic_names = topic_names
        self.exactly_once = exactly_once
        self._uncommitted: dict[TP, int] = {}  # processed since the last commit of our own (see below)

    def processed(self, tp: TP, offset: int) -> None:
        self._uncommitted[tp] = offset

    async def write_state(self, key: bytes, value: bytes | None, source: Any) -> None:
        """Local store + changelog, like a table assignment, minus faust's per-write layers.

        `table[key] = value` goes through sensors, a send buffer and a transaction lookup per
        write (measured here: ~0.7 ms of CPU per event, more than the whole pipeline); writing
        the store and producing the changelog record directly, in the source's transaction, does
        the same for about half. The changelog offset is persisted as faust does it: at commit
        under exactly-once, at once otherwise.
        """
        if value is None:
            self.store.pop(key, None)  # erasure: local delete + tombstone in the changelog
            self.app.sensors.on_table_del(self.table, key)
        else:
            self.store[key] = value
            self.app.sensors.on_table_set(self.table, key, value)
        fut = await self.produce(self.changelog_topic, key, value, source.partition, None, source)
        fut.add_done_callback(self._changelog_written)

    def _changelog_written(self, fut: Any) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return  # the transaction aborts; faust crashes the worker on a failed send anyway
        meta = fut.result()
        tp = TP(meta.topic, meta.partition)
        if self.exactly_once:
            self.app.tables.persist_offset_on_commit(self.store, tp, meta.offset)
        else:
            self.store.set_persisted_offset(tp, meta.offset)

    def _transactional_id(self, source: Any) -> str | None:
        if not self.exactly_once:
            return None
        return self._transactional_id_of(source.topic, source.partition)

    def _transactional_id_of(self, topic: str, partition: int) -> str:
        return f"{self.app.conf.id}-{self.app.assignor.group_for_topic(topic)}-{partition}"

    async def commit_before_revoke(self, sender: Any, revoked: set[TP], **_: Any) -> None:
        """Commit every open transaction, with the offsets it covers, before partitions move.

        faust 0.15 only flushes on revocation: the open transaction of a partition this worker
        keeps survives the rebalance while the consumer seeks back to the last committed
        offset, so the same events are processed again into the same transaction and their
        actions are delivered twice when it commits (seen: 4 of 80 in the scale-out test).
        Kafka Streams commits here; so do we. The agent is idle and the producer flushed by
        the time faust sends this signal. Transactions of partitions that are kept start
        again when faust begins them after the assignment; those that moved are never begun.
        """
        done = {tp: offset for tp, offset in self._uncommitted.items() if tp in revoked}
        if not done:
            self._uncommitted.clear()
            return
        by_transaction: dict[str, dict[TP, int]] = {}
        for tp, offset in done.items():
            by_transaction.setdefault(self._transactional_id_of(tp.topic, tp.partition), {})[tp] = offset + 1
        producer, committed = self.app.producer, set()
        for transactional_id, offsets in by_transaction.items():
            # faust's commit_transactions, minus its failure when faust's own (timer) commit got
            # there first and did not begin the next transaction (seen with the broker down)
            txn = producer._transaction_producers.get(transactional_id)
            if txn is None:
                continue
            async with producer._trn_locks[transactional_id]:
                if not txn._txn_manager.is_in_transaction():
                    log.warning("no open transaction %s to commit before the rebalance", transactional_id)
                    continue
                await txn.send_offsets_to_transaction(offsets, self.app.conf.id)
                await txn.commit_transaction()
                committed.update(offsets)
        self._uncommitted.clear()
        # the changelog offsets those transactions made durable (faust keys them by changelog TP)
        for partition in {tp.partition for tp in committed}:
            self.app.tables.on_commit_tp(TP(self.changelog_topic, partition))
        log.info("committed the transactions of %d partitions before the rebalance", len(committed))

    async def send(self, out: OutRecord, source: Any) -> None:
        """Send in the transaction that commits `source`'s offset (when exactly-once).

        faust's own Topic.send picks a transaction by the *destination* partition and sends
        outside any transaction for topics it does not consume (faust #177), so outputs are
        produced here with the source partition's transactional producer explicitly.
        """
        await self.produce(self.topic_names[out.role], out.key, out.value, out.partition, out.headers, source)

    async def produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                       headers: Any, source: Any) -> Any:
        """One record in the source's transaction, reported to faust's sensors like its own sends."""
        producer, sensors = self.app.producer, self.app.sensors
        state = sensors.on_send_initiated(producer, topic, None, len(key or b""), len(value or b""))
        fut = await producer.send(topic, key, value, partition, None, headers,
                                  transactional_id=self._transactional_id(source))

        def reported(done: Any) -> None:
            if done.cancelled():
                return
            if (error := done.exception()) is not None:
                sensors.on_send_error(producer, error, state)
            else:
                sensors.on_send_completed(producer, state, done.result())

        fut.add_done_callback(reported)
        return fut
