"""Everything a record causes, produced in the transaction that commits the record's offset.

Changed customer states are produced here at the commit, into the transaction that commits the
records that changed them (shell.state_cache), and reach RocksDB only after it committed.

The only module that reaches into faust's and aiokafka's producer and transaction internals
(`_transaction_producers`, `_trn_locks`, `_txn_manager`, `_ensure_producer`; the consumer's are in
shell.delivery, the store's in shell.store): pinned faust-streaming 0.15.x; a faust upgrade must
re-check them (the crash and scale-out tests fail if they break).
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping

import faust
from aiokafka.client import CoordinationType
from aiokafka.errors import GroupAuthorizationFailedError, KafkaError
from aiokafka.producer.sender import Sender, TxnOffsetCommitHandler
from aiokafka.producer.transaction_manager import TransactionManager
from aiokafka.structs import TopicPartition
from faust.exceptions import ProducerSendError
from faust.types import TP

from remarket.shell.faust_metrics import SendSensors, TableSensors, table_sensors
from remarket.shell.pipeline import KeyPartitioner, OutRecord, key_hash
from remarket.shell.state_cache import StateCache, encoded
from remarket.shell.stopping import stop_without_committing

log = logging.getLogger("remarket.worker")


def commit_transactions_concurrently(producer: Any) -> None:
    """faust commits its per-partition transactions one after another, each a few round trips
    to the broker (AddOffsetsToTxn, TxnOffsetCommit, EndTxn, then AddPartitionsToTxn on the next
    send): with 4 partitions a commit took 4 times as long, and under exactly-once an action is
    visible only when its transaction commits. They are independent, so commit them together."""

    async def commit_transactions(tid_to_offset_map: Mapping[str, Mapping[TP, int]], group_id: str,
                                  start_new_transaction: bool = True) -> None:
        async def commit_one(transactional_id: str, offsets: Mapping[TP, int]) -> None:
            async with producer._trn_locks[transactional_id]:
                txn = producer._transaction_producers.get(transactional_id)
                if txn is None:
                    log.warning("commit invoked for unknown transaction %s", transactional_id)
                    return
                await txn.send_offsets_to_transaction(offsets, group_id)
                await txn.commit_transaction()
                if start_new_transaction:
                    await txn.begin_transaction()

        await asyncio.gather(*(commit_one(tid, offsets) for tid, offsets in tid_to_offset_map.items()))

    producer.commit_transactions = commit_transactions


TXN_OFFSET_COMMIT_RETRY_SECONDS = 0.01
"""How soon a TxnOffsetCommit that the group coordinator could not take yet is sent again.

A transaction's TxnOffsetCommit that comes while the previous transaction of the same producer
is still being completed (its markers written) fails verification (KIP-890), which the broker
answers as COORDINATOR_NOT_AVAILABLE; aiokafka then looks the coordinator up again and retries
after its retry_backoff_ms, 100 ms. Under exactly-once an action is visible only when its
commit ends: a traced run committing every 50 ms (840 events/s) had 129 such retries in 30 s.
The completion takes a few ms; a real coordinator move is still found (the lookup stays)."""


class _QuickTxnOffsetCommitHandler(TxnOffsetCommitHandler):
    def __init__(self, sender: Any, offsets: Any, group_id: str) -> None:
        super().__init__(sender, offsets, group_id)
        self._default_backoff = min(self._default_backoff, TXN_OFFSET_COMMIT_RETRY_SECONDS)


class _QuickTxnOffsetCommitRetry(Sender):
    """aiokafka's sender, retrying TxnOffsetCommit soon (TXN_OFFSET_COMMIT_RETRY_SECONDS)."""

    async def _do_txn_offset_commit(self, offsets: Any, group_id: str) -> None:
        # aiokafka 0.14's, with the handler above
        if not offsets:
            return
        try:
            node_id = await self._find_coordinator(CoordinationType.GROUP, group_id)
        except GroupAuthorizationFailedError as exc:
            self._txn_manager.error_transaction(exc)
            return
        await _QuickTxnOffsetCommitHandler(self, offsets, group_id).do(node_id)


class _CommitPathOpened(TransactionManager):
    """aiokafka's transaction state, which may add the consumer group before the offsets come.

    aiokafka sends AddOffsetsToTxn only once offsets are handed to it, at the commit, and
    AddPartitionsToTxn for the changelog partition only when the commit produces its first
    changelog record: two more sequential broker round trips on a commit path that holds record
    handling off under exactly-once. Both can be done as soon as the transaction has work.
    """

    offsets_group: str | None = None

    def consumer_group_to_add(self) -> str | None:
        group = super().consumer_group_to_add()
        if group is None and self.offsets_group is not None and self._txn_consumer_group is None \
                and self.is_in_transaction():
            return self.offsets_group
        return group

    def complete_transaction(self) -> None:
        super().complete_transaction()
        self.offsets_group = None

    def error_transaction(self, exc: BaseException) -> None:
        super().error_transaction(exc)
        self.offsets_group = None


class _BatchOutputs:
    """The outputs `TransactionalSink.send` put into one of aiokafka's produce batches, reported
    once for the batch when the broker has answered for it (`written`): faust's send sensors for
    each record, or, if the batch failed, the worker stops without committing (as a record's own
    future did, per record, before)."""

    __slots__ = ("sink", "producer", "source", "started")

    def __init__(self, sink: "TransactionalSink", producer: Any, source: Any) -> None:
        self.sink, self.producer, self.source = sink, producer, source
        self.started: list[float] = []  # faust's sensor state per record (its send time)

    def written(self, batch_future: Any) -> None:
        if batch_future.cancelled():
            return
        sensors = self.sink._sensors()
        if (error := batch_future.exception()) is not None:
            for started in self.started:
                sensors.error(self.producer, error, started)
            # aiokafka retried what can be retried: these records are not written, and the first
            # record's source (or any after it) must not be committed past: stop now
            stop_without_committing(self.source, error)
        else:
            sensors.completed_many(self.producer, self.started, batch_future.result())


ENCODE_SLICE = 64
"""States encoded between two looks at the event loop (~40 µs each), so a commit
of thousands of changed customers does not hold records up for the whole encoding."""


@dataclass(frozen=True)
class Flushed:
    """The changelog records of one partition's changed customers, sent in its transaction."""

    partition: int
    records: list[tuple[bytes, bytes | None]]  # filled in `while_handling`
    sent: list[tuple[Any, int]]  # (future of a batch or a record, records in it)
    states: list[tuple[bytes, Any]] = field(default_factory=list)  # what to encode

    def changelog_offset(self) -> int | None:
        """The offset of the last record written (a batch's future gives its first offset)."""
        offsets = [f.result().offset + count - 1 for f, count in self.sent
                   if f.done() and not f.cancelled() and not f.exception()]
        return max(offsets) if offsets else None


class TransactionalSink:
    def __init__(self, app: faust.App, table: Any, states: StateCache, changelog_topic: str,
                 topic_names: dict[str, str], exactly_once: bool) -> None:
        self.app = app
        self.table = table
        self.states = states
        self.lock = asyncio.Lock()
        """Held while a record is handled and while a commit chooses what it covers: a commit
        covers exactly the records handled before it, with every state they changed (shell.delivery
        takes it; exactly-once holds it to the end of the commit)."""
        self.commit_lock = asyncio.Lock()
        self.changelog_topic = changelog_topic
        self.topic_names = topic_names
        self.exactly_once = exactly_once
        self._uncommitted: dict[TP, int] = {}  # processed since the last commit of our own (see below)
        self._send_sensors: SendSensors | None = None
        self._table_sensors: TableSensors | None = None
        self._transactional_ids: dict[tuple[str, int], str] = {}
        self._sends_waiting = 0  # `send`s that went the slow way and have not returned yet
        self._written: Any = None  # a done future: see `_append_output`
        self._output_tps: dict[str, list[TopicPartition]] = {}
        self._committing: dict[str, tuple[int, deque[tuple[OutRecord, Any]]]] = {}
        """Exactly-once: the transactions a commit under way covers, each with its partition and
        the outputs of records handled meanwhile. Those records are not in its offsets, so their outputs must
        not be in it either: they wait here and go into the transaction that begins after it
        (`resume`)."""

    def holds_handling(self, start_new_transaction: bool) -> bool:
        """Whether a commit holds record handling off to its end (shell.delivery): only the
        exactly-once commit that begins no new transaction (faust's last, at stop), since the
        outputs of records handled meanwhile would have no transaction to wait for."""
        return self.exactly_once and not start_new_transaction

    def processed(self, tp: TP, offset: int) -> None:
        self._uncommitted[tp] = offset

    def open_commit_path(self, source: Any) -> None:
        """Exactly-once: the source's transaction has work (a changed state, an output), so add
        its changelog partition and its consumer group to it now, while records are handled,
        not on the commit path (`_CommitPathOpened`): the commit is left with the offsets, the
        changelog records and EndTxn. An action is visible only once that commit ends."""
        if not self.exactly_once:
            return
        transactional_id = self._transactional_id_of(source.topic, source.partition)
        if transactional_id not in self._committing:  # else the next transaction's: opened by `resume`
            self._open_commit_path(transactional_id, source.partition)

    def _open_commit_path(self, transactional_id: str, partition: int) -> None:
        manager = self._manager_of(transactional_id)
        if manager is None or getattr(manager, "offsets_group", None) is not None or not manager.is_in_transaction():
            return
        if type(manager) is TransactionManager:
            manager.__class__ = _CommitPathOpened
        sender = self.app.producer._transaction_producers[transactional_id]._sender
        if type(sender) is Sender:
            sender.__class__ = _QuickTxnOffsetCommitRetry
        manager.maybe_add_partition_to_txn(TopicPartition(self.changelog_topic, partition))
        manager.offsets_group = self.app.conf.id

    def _manager_of(self, transactional_id: str) -> Any:
        txn = self.app.producer._transaction_producers.get(transactional_id)
        return getattr(txn, "_txn_manager", None)

    # -- the state cache's commits (shell.state_cache) ------------------------------------
    async def before_commit(self, offsets: Mapping[TP, int]) -> list[Flushed]:
        """Take the changed state of every customer the records being committed changed (handling
        is held off meanwhile: the offsets and the states agree). From here on, exactly-once,
        outputs of the partitions being committed wait for their next transaction (`send`)."""
        sources: dict[int, TP] = {}
        for tp in offsets:
            if tp.topic != self.changelog_topic:
                sources.setdefault(tp.partition, tp)
                if self.exactly_once:
                    self._committing.setdefault(self._transactional_id_of(tp.topic, tp.partition), (tp.partition, deque()))
        flushed = []
        for partition in sources:
            if states := self.states.take_states(partition):
                flushed.append(Flushed(partition, [], [], states))
        return flushed

    async def while_handling(self, flushed: list[Flushed]) -> None:
        """Records are handled again meanwhile: the taken states are encoded a slice at a time
        and produced to the changelog. Exactly-once, into the transaction being committed (the
        outputs of records handled meanwhile wait, see `send`). At-least-once, only once
        everything the committed records sent is written: a changelog record that says an event
        was handled, written before that event's action, would make the action lost after a
        crash (the event is read again, found handled, and sends nothing)."""
        for batch in flushed:
            for start in range(0, len(batch.states), ENCODE_SLICE):
                batch.records.extend(encoded(batch.states[start:start + ENCODE_SLICE]))
                await asyncio.sleep(0)
        if not self.exactly_once:
            await self.app.producer.flush()
        for batch in flushed:
            batch.sent.extend(await self._produce_changelog(
                batch.partition, TP(self.changelog_topic, batch.partition), batch.records))
        if not self.exactly_once:  # faust flushes, then commits the offsets whatever became of the records
            await self.app.producer.flush()
            self._stop_unless_written(flushed)

    def _stop_unless_written(self, flushed: list[Flushed]) -> None:
        """Every changelog record of the commit was written, or the worker stops before the offsets
        are committed: a state missing from the changelog is lost to whoever restores it next,
        while its events count as handled. (Exactly-once, the transaction fails to commit instead.)"""
        for batch in flushed:
            for future, _ in batch.sent:
                if future.done() and not future.cancelled() and (error := future.exception()) is not None:
                    stop_without_committing(TP(self.changelog_topic, batch.partition), error)

    async def resume(self) -> None:
        """The commit is over: send what records handled meanwhile produced, in order, into the
        transaction each partition has now (a new one, or the same if nothing was committed).

        A partition left without an open transaction (its commit failed) cannot take them, and
        a later commit would cover those records' offsets: stop without committing, so they are
        handled again after the restart (shell.stopping says why)."""
        dirty = self.states.dirty_partitions() if self._committing else set()
        for transactional_id in list(self._committing):
            partition, waiting = self._committing[transactional_id]
            if waiting or partition in dirty:
                manager = self._manager_of(transactional_id)
                if manager is None or not manager.is_in_transaction():
                    if waiting:
                        stop_without_committing(waiting[0][1], RuntimeError(
                            f"{len(waiting)} outputs of records handled during the commit of {transactional_id} "
                            "have no transaction to go into"))
                else:
                    self._open_commit_path(transactional_id, partition)
            while waiting:  # records handled while these are sent wait behind them
                out, source = waiting.popleft()
                await self.produce(self.topic_names[out.role], out.key, out.value, out.partition, out.headers, source)
            del self._committing[transactional_id]

    async def _produce_changelog(self, partition: int, source: TP,
                                 records: list[tuple[bytes, bytes | None]]) -> list[tuple[Any, int]]:
        """The records in produce batches of the partition's transactional producer, one future
        per batch instead of a `send`, a future and sensor calls per record (the batch is added
        to the transaction like a send: aiokafka's accumulator does it for both)."""
        if self.exactly_once:
            producer = self.app.producer._transaction_producers[self._transactional_id_of(source.topic, partition)]
        else:
            producer = self.app.producer._ensure_producer()
        sent: list[tuple[Any, int]] = []  # (future, records in it): its offset is the batch's first
        batch, count = producer.create_batch(), 0
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:  # full
                if count:
                    sent.append((await producer.send_batch(batch, self.changelog_topic, partition=partition), count))
                    batch, count = producer.create_batch(), 0
                if batch.append(key=key, value=value, timestamp=None) is None:  # larger than a batch alone
                    sent.append((await self.produce(self.changelog_topic, key, value, partition, None, source), 1))
                    continue
            count += 1
        if count:
            sent.append((await producer.send_batch(batch, self.changelog_topic, partition=partition), count))
        return sent

    def after_commit(self, flushed: list[Flushed], committed: bool) -> None:
        """The transaction committed: now the local store may have its states (never before)."""
        if not committed:
            return  # still dirty here; produced again at the next commit (same key: last wins)
        self._table_sensors = sensors = table_sensors(self.app, self.table, self._table_sensors)
        for batch in flushed:
            self.states.committed(batch.partition, batch.records, batch.changelog_offset())
            for key, value in batch.records:
                if value is None:
                    sensors.deleted(key)
                else:
                    sensors.set(key, value)

    def _transactional_id(self, source: Any) -> str | None:
        if not self.exactly_once:
            return None
        return self._transactional_id_of(source.topic, source.partition)

    def _transactional_id_of(self, topic: str, partition: int) -> str:
        tid = self._transactional_ids.get((topic, partition))
        if tid is None:  # faust's naming (its TransactionManager.commit)
            tid = self._transactional_ids[(topic, partition)] = \
                f"{self.app.conf.id}-{self.app.assignor.group_for_topic(topic)}-{partition}"
        return tid

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
        async with self.commit_lock:  # a commit under way ends first (and writes its states)
            if self.exactly_once:
                async with self.lock:
                    await self._commit_before_revoke(revoked)
        self.states.discard({tp.partition for tp in revoked})  # their next owner may change them

    async def _commit_before_revoke(self, revoked: set[TP]) -> None:
        done = {tp: offset for tp, offset in self._uncommitted.items() if tp in revoked}
        if not done:
            self._uncommitted.clear()
            return
        flushed = await self.before_commit(done)
        try:
            await self.while_handling(flushed)  # the lock is held: nothing is handled meanwhile
            await self._commit_transactions_before_revoke(done, flushed)
        finally:
            await self.resume()  # nothing waits (handling is held off); the transactions are forgotten

    async def _commit_transactions_before_revoke(self, done: dict[TP, int], flushed: list[Flushed]) -> None:
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
        partitions = {tp.partition for tp in committed}
        self.after_commit([batch for batch in flushed if batch.partition in partitions], True)
        log.info("committed the transactions of %d partitions before the rebalance", len(committed))

    async def send(self, out: OutRecord, source: Any) -> None:
        """Send in the transaction that commits `source`'s offset (when exactly-once).

        faust's own Topic.send picks a transaction by the *destination* partition and sends
        outside any transaction for topics it does not consume (faust #177), so outputs are
        produced here with the source partition's transactional producer explicitly. While that
        transaction is being committed the output waits for the next one (`resume`).
        """
        if self._committing and (committing := self._committing.get(self._transactional_id(source))) is not None:
            committing[1].append((out, source))
            return
        topic = self.topic_names[out.role]
        if not self._sends_waiting and self._append_output(topic, out, source):
            return
        self._sends_waiting += 1  # later outputs go this way too until it returns: they stay in order
        try:
            await self.produce(topic, out.key, out.value, out.partition, out.headers, source)
        finally:
            self._sends_waiting -= 1

    def _append_output(self, topic: str, out: OutRecord, source: Any) -> bool:
        """`send` without awaiting: the record goes into its partition's open produce batch of the
        source's producer (or a new one, added to the transaction), as aiokafka's `send` would put
        it, and is reported once per batch (`_BatchOutputs`). False, with nothing added, when it
        must go through `send`, which waits or raises as before: a topic whose metadata is not
        known yet, no open transaction (or faust holding its lock: beginning or committing it),
        a closed or failed producer, serializers, a full batch.

        `send`, its two coroutines, a future and a done-callback per record, and faust's sensors
        called per record at completion were 12-13 µs of CPU per output, this 4-6
        (bench/send_path.py, docs/benchmarks.md). aiokafka
        0.14's `_metadata._partitions`, `_partition`, `_key_serializer`, `_value_serializer`,
        `_txn_manager` and its accumulator's `_batches`, `_closed`, `_exception`, `_append_batch`,
        `create_builder`, and MessageBatch's `future` and `append`."""
        app_producer = self.app.producer
        if self.exactly_once:
            transactional_id = self._transactional_id_of(source.topic, source.partition)
            producer = app_producer._transaction_producers.get(transactional_id)
            lock = app_producer._trn_locks.get(transactional_id)
            if producer is None or lock is None or lock.locked():
                return False
            manager = getattr(producer, "_txn_manager", None)
            if manager is None or not manager.is_in_transaction():
                return False
        else:
            producer = getattr(app_producer, "_producer", None)  # faust's plain one, once started
            if producer is None:
                return False
        accumulator = getattr(producer, "_message_accumulator", None)
        if accumulator is None or accumulator._closed or accumulator._exception is not None \
                or producer._key_serializer is not None or producer._value_serializer is not None \
                or not (partitions := producer._metadata._partitions.get(topic)):
            return False
        key, value, partition = out.key, out.value, out.partition
        if partition is None and key is not None and type(producer._partitioner) is KeyPartitioner:
            # what `_partition` gives, without its two lists per record: KeyPartitioner takes
            # `list(partitions)[hash % n]`, and a topic's partitions are 0 .. n-1, in that order
            partition = key_hash(key) % len(partitions)
        else:
            partition = producer._partition(topic, partition, key, value, key, value)
        tps = self._output_tps.get(topic)
        if tps is None or len(tps) <= partition:
            tps = self._output_tps[topic] = [TopicPartition(topic, p) for p in range(max(partition + 1, len(partitions)))]
        tp = tps[partition]  # one per partition, not one per record
        pending = accumulator._batches.get(tp)
        batch = pending[-1] if pending else accumulator._append_batch(accumulator.create_builder(), tp)
        written = self._written
        if written is None:
            # aiokafka resolves a batch's records by their futures, skipping those already done
            # (`done()` is all it asks, whatever the loop): these records share one done future,
            # and the batch's own future reports them
            written = self._written = asyncio.get_running_loop().create_future()
            written.set_result(None)
        if batch.append(key, value, None, _create_future=lambda: written, headers=out.headers or []) is None:
            return False
        outputs = getattr(batch, "remarket_outputs", None)
        if outputs is None:
            outputs = batch.remarket_outputs = _BatchOutputs(self, producer, source)
            batch.future.add_done_callback(outputs.written)
        outputs.started.append(self._sensors().initiated(topic))
        return True

    async def produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                       headers: Any, source: Any) -> Any:
        """One record in the source's transaction, reported to faust's sensors like its own sends."""
        producer, sensors = self.app.producer, self._sensors()
        state = sensors.initiated(topic)
        fut = await self._send(topic, key, value, partition, headers, self._transactional_id(source))

        def reported(done: Any) -> None:
            if done.cancelled():
                return
            if (error := done.exception()) is not None:
                sensors.error(producer, error, state)
                # aiokafka retried what can be retried: the record is not written. Its source must
                # not be committed past (at-least-once commits after a flush that does not raise;
                # this runs before that flush returns, so before the commit).
                stop_without_committing(source, error)
            else:
                sensors.completed(producer, state, done.result())

        fut.add_done_callback(reported)
        return fut

    async def _send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                    headers: Any, transactional_id: str | None) -> Any:
        """faust's Producer.send (aiokafka driver) minus what costs ~9 µs a record here and does
        nothing for the worker: its `app.on_produce_message` signal (no receiver: the worker's
        sends are counted by `SendSensors`), a typing-generic isinstance of the headers (always a
        list here) and its casts. Same producer (the transaction's, or the plain one), same lock
        against faust beginning or committing that transaction, same error."""
        producer = self.app.producer
        try:
            if transactional_id is None:
                return await producer._ensure_producer().send(topic, value, key=key, partition=partition,
                                                               headers=headers)
            transaction_producer = producer._transaction_producers.get(transactional_id)
            if transaction_producer is None:
                raise ProducerSendError(f"No transaction producer found for : {transactional_id}")
            async with producer._trn_locks[transactional_id]:
                return await transaction_producer.send(topic, value, key=key, partition=partition, headers=headers)
        except KafkaError as exc:
            raise ProducerSendError(f"Error while sending: {exc!r}") from exc

    def _sensors(self) -> SendSensors:
        if self._send_sensors is None or self._send_sensors.monitor is not self.app.monitor:
            self._send_sensors = SendSensors(self.app.monitor)  # the monitor is chosen after wiring
        return self._send_sensors
