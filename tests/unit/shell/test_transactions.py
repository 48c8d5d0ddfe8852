"""The sink produces everything a record causes in the transaction of the record's own partition."""
from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from types import SimpleNamespace

from aiokafka.errors import (CoordinatorNotAvailableError, KafkaError, RecordTooLargeError,
                             TopicAuthorizationFailedError)
from aiokafka.producer.sender import Sender, TxnOffsetCommitHandler
from aiokafka.producer.transaction_manager import TransactionManager
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from faust.exceptions import ProducerSendError
from faust.types import TP
import pytest

from remarket.shell.pipeline import OutRecord

from remarket.domain.state import CustomerState, new_state
from remarket.shell.state_cache import StateCache
from remarket.shell.store import FaustMemoryStore
from remarket.shell.transactions import (ENCODE_SLICE, TXN_OFFSET_COMMIT_RETRY_SECONDS, TransactionalSink,
                                         _QuickTxnOffsetCommitHandler, _QuickTxnOffsetCommitRetry,
                                         commit_transactions_concurrently)

from .loop_turns import turns_while


class Sensors:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def __iter__(self):
        return iter(())


class Monitor:
    """What faust's monitor keeps per send."""

    def __init__(self) -> None:
        self.messages_sent = 0
        self.messages_sent_by_topic: Counter[str] = Counter()
        self.completed = 0
        self.tables: dict = {}

    def _table_or_create(self, table):
        return self.tables.setdefault(id(table), SimpleNamespace(keys_retrieved=0, keys_updated=0, keys_deleted=0))

    def time(self) -> float:
        return 0.0

    def on_send_completed(self, producer, state, metadata) -> None:
        self.completed += 1

    def on_send_error(self, producer, exc, state) -> None:
        pass


class Producer:
    """faust's producer: a plain aiokafka producer, one per transaction, a lock per transaction."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.plain = TransactionProducer(None, self.sent)  # at-least-once: one producer, no transaction
        self._trn_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def _ensure_producer(self):
        return self.plain

    async def flush(self) -> None:
        self.sent.append({"flush": True})


class Batch:
    def __init__(self, room: int) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []
        self.room = room

    def append(self, *, key, value, timestamp):
        if len(self.records) >= self.room:
            return None
        self.records.append((key, value))
        return object()


class TxnState:
    """What the sink reads of aiokafka's transaction state."""

    def __init__(self) -> None:
        self.in_transaction = True
        self.added: list[TopicPartition] = []

    def is_in_transaction(self) -> bool:
        return self.in_transaction

    def maybe_add_partition_to_txn(self, tp: TopicPartition) -> None:
        self.added.append(tp)


class TransactionProducer:
    """One partition's transactional aiokafka producer: batches, offsets counted per partition."""

    def __init__(self, transactional_id: str, sent: list[dict], batch_room: int = 2) -> None:
        self.transactional_id, self.sent, self.batch_room = transactional_id, sent, batch_room
        self.next_offset = 100
        self._txn_manager = TxnState()
        self._sender = Sender.__new__(Sender)  # aiokafka's, never started

    async def send(self, topic, value=None, key=None, partition=None, timestamp_ms=None, headers=None):
        self.sent.append({"topic": topic, "key": key, "value": value, "partition": partition,
                          "headers": headers, "transactional_id": self.transactional_id})
        future = asyncio.get_running_loop().create_future()
        future.set_result(SimpleNamespace(topic=topic, partition=partition or 0, offset=7))
        return future

    def create_batch(self) -> Batch:
        return Batch(self.batch_room)

    async def send_batch(self, batch, topic, *, partition):
        first = self.next_offset
        for key, value in batch.records:
            self.sent.append({"topic": topic, "key": key, "value": value, "partition": partition, "headers": None,
                              "transactional_id": self.transactional_id})
        self.next_offset += len(batch.records)
        future = asyncio.get_running_loop().create_future()
        future.set_result(SimpleNamespace(topic=topic, partition=partition, offset=first))
        return future


def sink(exactly_once: bool = True) -> tuple[TransactionalSink, Producer, dict]:
    producer, store = Producer(), {}
    producer._transaction_producers = {f"shop-0-{p}": TransactionProducer(f"shop-0-{p}", producer.sent)
                                       for p in range(4)}
    app = SimpleNamespace(producer=producer, sensors=Sensors(), monitor=Monitor(), conf=SimpleNamespace(id="shop"),
                          assignor=SimpleNamespace(group_for_topic=lambda topic: 0))
    table = SimpleNamespace(data=SimpleNamespace(data=store))
    return TransactionalSink(app, table, StateCache(FaustMemoryStore(table.data)), "shop-customers-changelog", {"actions": "remarket.actions",
                                                                      "rerouted": "remarket.rerouted"},
                             exactly_once), producer, store


SOURCE = SimpleNamespace(topic="remarket.orders", partition=3, offset=41)


async def commit(s: TransactionalSink, offsets: dict[TP, int], committed: bool = True) -> list:
    """The phases of a commit as the consumer runs them (shell.delivery)."""
    flushed = await s.before_commit(offsets)
    try:
        await s.while_handling(flushed)
        s.after_commit(flushed, committed)
    finally:
        await s.resume()
    return flushed


def state(customer_id: str) -> CustomerState:
    return new_state(customer_id, "1")


def test_changed_states_go_to_the_changelog_in_the_committing_transaction_and_to_the_store_only_after():
    s, producer, store = sink()
    s.states.put(3, b"c-1", state("c-1"))
    s.states.put(3, b"c-1", state("c-1"))  # twice in one commit interval: one changelog record
    s.states.put(3, b"c-2", None)  # erased: a tombstone
    s.states.put(3, b"c-3", state("c-3"))  # a third: the batches hold two records each here
    async def scenario() -> None:
        flushed = await s.before_commit({TP("remarket.orders", 3): 42})
        await s.while_handling(flushed)
        assert [(p["topic"], p["partition"], p["transactional_id"], p["key"]) for p in producer.sent] == [
            ("shop-customers-changelog", 3, "shop-0-3", key) for key in (b"c-1", b"c-2", b"c-3")]
        assert producer.sent[1]["value"] is None
        assert [count for _, count in flushed[0].sent] == [2, 1]
        assert flushed[0].changelog_offset() == 102  # the last record's, not a batch's first
        assert store == {}  # nothing local before the transaction commits
        assert s.states.get(3, b"c-1") == state("c-1")  # still readable meanwhile
        s.after_commit(flushed, True)
        await s.resume()

    asyncio.run(scenario())
    assert store == {b"c-1": state("c-1").to_bytes(), b"c-3": state("c-3").to_bytes()}


def test_an_uncommitted_flush_leaves_the_states_dirty_for_the_next_commit():
    s, producer, store = sink()
    s.states.put(1, b"c-1", state("c-1"))
    asyncio.run(commit(s, {TP("remarket.orders", 1): 5}, committed=False))
    assert store == {} and s.states.dirty_partitions() == {1}
    asyncio.run(commit(s, {TP("remarket.orders", 1): 6}))
    assert store == {b"c-1": state("c-1").to_bytes()} and s.states.dirty_partitions() == set()


def test_only_the_partitions_being_committed_are_flushed():
    s, producer, store = sink()
    s.states.put(1, b"c-1", state("c-1"))
    s.states.put(2, b"c-2", state("c-2"))
    asyncio.run(commit(s, {TP("remarket.orders", 2): 9}))
    assert list(store) == [b"c-2"] and s.states.dirty_partitions() == {1}


def test_outputs_use_the_sources_transaction_and_keep_an_explicit_partition():
    s, producer, _ = sink()
    asyncio.run(s.send(OutRecord("actions", b"c-1", b"{}"), SOURCE))
    asyncio.run(s.send(OutRecord("rerouted", b"c-1", b"{}", [("h", b"v")], partition=1), SOURCE))
    assert [(p["topic"], p["partition"], p["transactional_id"]) for p in producer.sent] == [
        ("remarket.actions", None, "shop-0-3"), ("remarket.rerouted", 1, "shop-0-3")]
    assert s.app.monitor.messages_sent_by_topic == {"remarket.actions": 1, "remarket.rerouted": 1}
    assert s.app.monitor.completed == 2  # faust's send sensors saw each send start and complete


def test_at_least_once_sends_without_a_transaction():
    s, producer, _ = sink(exactly_once=False)
    asyncio.run(s.send(OutRecord("actions", b"c-1", b"{}"), SOURCE))
    assert producer.sent[0]["transactional_id"] is None


def test_an_output_waits_while_faust_holds_its_transaction_and_a_failed_send_is_faust_s_error():
    s, producer, _ = sink()

    async def scenario() -> None:
        async with producer._trn_locks["shop-0-3"]:  # faust begins or commits that transaction
            sending = asyncio.ensure_future(s.send(OutRecord("actions", b"c-1", b"{}"), SOURCE))
            await asyncio.sleep(0.01)
            assert producer.sent == [] and not sending.done()
        await sending
        assert [p["transactional_id"] for p in producer.sent] == ["shop-0-3"]

        async def refused(*args, **kwargs):
            raise KafkaError("broker says no")

        producer._transaction_producers["shop-0-3"].send = refused
        with pytest.raises(ProducerSendError, match="broker says no"):
            await s.send(OutRecord("actions", b"c-1", b"{}"), SOURCE)
        del producer._transaction_producers["shop-0-3"]  # none for the source (faust's own error)
        with pytest.raises(ProducerSendError, match="No transaction producer"):
            await s.send(OutRecord("actions", b"c-1", b"{}"), SOURCE)

    asyncio.run(scenario())


def test_the_partitions_transactions_commit_concurrently_each_with_its_offsets_and_a_new_one_begins():
    log: list[tuple[str, str]] = []
    both_committing = asyncio.Event()

    class Txn:
        def __init__(self, name: str) -> None:
            self.name = name

        async def send_offsets_to_transaction(self, offsets, group_id):
            log.append((self.name, f"offsets {sorted(offsets.values())} for {group_id}"))

        async def commit_transaction(self):
            log.append((self.name, "commit"))
            if sum(1 for _, step in log if step == "commit") == 2:
                both_committing.set()
            await asyncio.wait_for(both_committing.wait(), 1)  # one at a time would time out here

        async def begin_transaction(self):
            log.append((self.name, "begin"))

    producer = SimpleNamespace(_trn_locks={"t-0": asyncio.Lock(), "t-1": asyncio.Lock()},
                               _transaction_producers={"t-0": Txn("t-0"), "t-1": Txn("t-1")})
    commit_transactions_concurrently(producer)
    asyncio.run(producer.commit_transactions({"t-0": {TP("a", 0): 5}, "t-1": {TP("a", 1): 9}}, "shop"))
    assert [step for name, step in log if name == "t-0"] == ["offsets [5] for shop", "commit", "begin"]
    assert [step for name, step in log if name == "t-1"] == ["offsets [9] for shop", "commit", "begin"]


def test_at_least_once_writes_the_changelog_only_after_what_the_committed_records_sent():
    s, producer, store = sink(exactly_once=False)
    asyncio.run(s.send(OutRecord("actions", b"c-1", b"{}"), SOURCE))
    s.states.put(3, b"c-1", state("c-1"))
    flushed = asyncio.run(s.before_commit({TP("remarket.orders", 3): 42}))
    assert [p.get("topic") for p in producer.sent] == ["remarket.actions"]  # handling may go on now
    asyncio.run(s.while_handling(flushed))
    assert [p.get("topic", "flush") for p in producer.sent] == ["remarket.actions", "flush",
                                                                "shop-customers-changelog", "flush"]
    s.after_commit(flushed, True)
    assert store == {b"c-1": state("c-1").to_bytes()}


def test_at_least_once_a_customer_changed_while_the_commit_runs_stays_for_the_next_commit():
    s, producer, store = sink(exactly_once=False)
    taken, newer = state("c-1"), state("c-1").model_copy(update={"orders": 1})
    s.states.put(3, b"c-1", taken)
    s.states.put(3, b"c-2", state("c-2"))
    flushed = asyncio.run(s.before_commit({TP("remarket.orders", 3): 42}))
    s.states.put(3, b"c-1", newer)  # handled while the broker answers
    asyncio.run(s.while_handling(flushed))
    s.after_commit(flushed, True)
    assert store == {b"c-1": taken.to_bytes(), b"c-2": state("c-2").to_bytes()}  # what committed
    assert s.states.get(3, b"c-1") is newer and s.states.dirty_partitions() == {3}
    flushed = asyncio.run(s.before_commit({TP("remarket.orders", 3): 43}))
    asyncio.run(s.while_handling(flushed))  # as the consumer's commit runs them (shell.delivery)
    s.after_commit(flushed, True)
    assert store[b"c-1"] == newer.to_bytes() and s.states.dirty_partitions() == set()


def test_a_transaction_with_work_adds_its_changelog_partition_and_consumer_group_before_the_commit():
    async def scenario() -> None:  # aiokafka's transaction state needs a running loop
        s, producer, _ = sink()
        manager = TransactionManager("shop-0-3", 60_000)
        manager.set_pid_and_epoch(7, 0)
        manager.begin_transaction()
        producer._transaction_producers["shop-0-3"]._txn_manager = manager
        changelog = TopicPartition("shop-customers-changelog", 3)

        s.open_commit_path(SOURCE)
        assert type(producer._transaction_producers["shop-0-3"]._sender) is _QuickTxnOffsetCommitRetry
        assert manager.partitions_to_add() == {changelog}  # with the first output's, not at the commit
        assert manager.consumer_group_to_add() == "shop"  # AddOffsetsToTxn now, no offsets yet
        manager.partition_added(changelog)
        manager.consumer_group_added("shop")
        s.open_commit_path(SOURCE)  # once per transaction
        assert manager.partitions_to_add() == set() and manager.consumer_group_to_add() is None

        offsets = {TopicPartition("remarket.orders", 3): OffsetAndMetadata(42, "")}
        manager.add_offsets_to_txn(offsets, "shop")  # the commit: only the offsets are left to send
        assert manager.consumer_group_to_add() is None and manager.offsets_to_commit() == (offsets, "shop")
        manager.offset_committed(TopicPartition("remarket.orders", 3), 42, "shop")
        manager.committing_transaction()
        manager.complete_transaction()
        manager.begin_transaction()
        assert manager.consumer_group_to_add() is None  # the next transaction adds it once it has work
        s.open_commit_path(SOURCE)
        assert manager.consumer_group_to_add() == "shop"


    asyncio.run(scenario())

def test_a_txn_offset_commit_the_coordinator_could_not_take_yet_is_retried_soon():
    """The group coordinator answers COORDINATOR_NOT_AVAILABLE while the producer's previous
    transaction is still completing: aiokafka waited its 100 ms retry backoff on a commit path
    that actions wait for."""
    coordinator_lookups: list[str] = []
    sender = SimpleNamespace(_retry_backoff=0.1, _txn_manager=TxnState(),
                             _coordinator_dead=lambda kind: coordinator_lookups.append(kind))
    offsets = {TopicPartition("remarket.orders", 3): OffsetAndMetadata(42, "")}
    not_yet = SimpleNamespace(errors=[("remarket.orders", [(3, CoordinatorNotAvailableError.errno)])])
    assert TxnOffsetCommitHandler(sender, offsets, "shop").handle_response(not_yet) == 0.1  # aiokafka's
    assert _QuickTxnOffsetCommitHandler(sender, offsets, "shop").handle_response(not_yet) == TXN_OFFSET_COMMIT_RETRY_SECONDS
    assert len(coordinator_lookups) == 2  # a coordinator that moved is still looked up again
    taken = SimpleNamespace(errors=[("remarket.orders", [(3, 0)])])
    committed: list = []
    sender._txn_manager = SimpleNamespace(offset_committed=lambda *args: committed.append(args))
    assert _QuickTxnOffsetCommitHandler(sender, offsets, "shop").handle_response(taken) is None
    assert committed == [(TopicPartition("remarket.orders", 3), 42, "shop")]


def test_exactly_once_outputs_of_records_handled_during_a_commit_wait_for_the_next_transaction():
    s, producer, store = sink()
    other = SimpleNamespace(topic="remarket.orders", partition=1, offset=7)
    s.states.put(3, b"c-1", state("c-1"))

    async def scenario() -> None:
        flushed = await s.before_commit({TP("remarket.orders", 3): 42})  # the offsets are chosen
        await s.send(OutRecord("actions", b"c-9", b"first"), SOURCE)  # handled meanwhile: not in them
        await s.send(OutRecord("actions", b"c-8", b"other"), other)  # a partition not being committed
        await s.while_handling(flushed)
        await s.send(OutRecord("actions", b"c-9", b"second"), SOURCE)
        assert [p["value"] for p in producer.sent] == [b"other", state("c-1").to_bytes()]  # the changelog
        s.after_commit(flushed, True)
        await s.resume()  # the next transaction has begun
        await s.send(OutRecord("actions", b"c-9", b"third"), SOURCE)

    asyncio.run(scenario())
    assert [(p["value"], p["transactional_id"]) for p in producer.sent] == [
        (b"other", "shop-0-1"), (state("c-1").to_bytes(), "shop-0-3"),
        (b"first", "shop-0-3"), (b"second", "shop-0-3"), (b"third", "shop-0-3")]
    assert store == {b"c-1": state("c-1").to_bytes()}
    manager = producer._transaction_producers["shop-0-3"]._txn_manager
    assert manager.added == [TopicPartition("shop-customers-changelog", 3)]  # the next one's commit path, once
    assert manager.offsets_group == "shop"


def test_exactly_once_outputs_waiting_for_a_transaction_that_did_not_begin_stop_the_worker(monkeypatch):
    s, producer, _ = sink()
    stopped: list[tuple] = []
    monkeypatch.setattr("remarket.shell.transactions.stop_without_committing",
                        lambda message, exc: stopped.append((message, str(exc))))

    async def scenario() -> None:
        await s.before_commit({TP("remarket.orders", 3): 42})
        await s.send(OutRecord("actions", b"c-9", b"late"), SOURCE)
        producer._transaction_producers["shop-0-3"]._txn_manager.in_transaction = False  # the commit failed
        await s.resume()

    asyncio.run(scenario())
    assert stopped and stopped[0][0] is SOURCE and "no transaction to go into" in stopped[0][1]


def test_exactly_once_a_commit_with_nothing_handled_meanwhile_needs_no_transaction_after_it(monkeypatch):
    s, producer, _ = sink()
    monkeypatch.setattr("remarket.shell.transactions.stop_without_committing",
                        lambda message, exc: pytest.fail("stopped"))
    producer._transaction_producers["shop-0-3"]._txn_manager.in_transaction = False  # the last commit, at stop
    asyncio.run(commit(s, {TP("remarket.orders", 3): 42}))
    asyncio.run(s.send(OutRecord("actions", b"c-9", b"x"), SOURCE))  # nothing waits any more
    assert producer.sent[-1]["value"] == b"x"


def test_only_an_exactly_once_commit_that_begins_no_transaction_holds_handling_to_its_end():
    assert sink()[0].holds_handling(start_new_transaction=False)
    assert not sink()[0].holds_handling(start_new_transaction=True)
    assert not sink(exactly_once=False)[0].holds_handling(start_new_transaction=False)


def test_the_commit_before_a_rebalance_waits_for_a_commit_under_way():
    s, producer, _ = sink()
    order: list[str] = []

    async def scenario() -> None:
        async with s.commit_lock:  # a timer commit under way
            revoke = asyncio.create_task(s.commit_before_revoke(None, {TP("remarket.orders", 3)}))
            await asyncio.sleep(0.01)
            order.append("commit ended")
        await revoke
        order.append("revoke committed")

    asyncio.run(scenario())
    assert order == ["commit ended", "revoke committed"]


def test_at_least_once_has_no_transaction_to_open():
    s, producer, _ = sink(exactly_once=False)
    s.open_commit_path(SOURCE)  # no transactional producer is looked at
    assert producer.sent == []


def test_at_least_once_encodes_a_large_commit_a_slice_at_a_time_with_records_handled_in_between():
    s, producer, store = sink(exactly_once=False)
    keys = [f"c-{i}".encode() for i in range(3 * ENCODE_SLICE)]
    for key in keys:
        s.states.put(3, key, state(key.decode()))

    async def scenario() -> int:
        flushed = await s.before_commit({TP("remarket.orders", 3): 42})
        _, turns = await turns_while(s.while_handling(flushed))  # records handled meanwhile
        s.after_commit(flushed, True)
        return turns

    assert asyncio.run(scenario()) >= 3  # one turn of the loop per slice at least
    assert store == {key: state(key.decode()).to_bytes() for key in keys}


@pytest.mark.parametrize("exactly_once", [True, False])
def test_an_output_the_producer_could_not_write_stops_the_worker_before_its_source_is_committed(
        monkeypatch, exactly_once):
    s, producer, _ = sink(exactly_once)
    stopped: list[tuple] = []
    monkeypatch.setattr("remarket.shell.transactions.stop_without_committing",
                        lambda message, exc: stopped.append((message, type(exc).__name__)))
    written = asyncio.Event()

    async def not_written(topic, value=None, key=None, partition=None, timestamp_ms=None, headers=None):
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(future.set_exception, TopicAuthorizationFailedError())
        asyncio.get_running_loop().call_soon(written.set)
        return future

    for producer_of_source in (producer._transaction_producers["shop-0-3"], producer.plain):
        producer_of_source.send = not_written

    async def scenario() -> None:
        await s.send(OutRecord("actions", b"c-1", b"{}"), SOURCE)
        await written.wait()
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert stopped == [(SOURCE, "TopicAuthorizationFailedError")]


def test_at_least_once_a_changelog_record_not_written_stops_the_worker_before_the_offsets_commit(monkeypatch):
    s, producer, _ = sink(exactly_once=False)
    stopped: list[tuple] = []
    monkeypatch.setattr("remarket.shell.transactions.stop_without_committing",
                        lambda message, exc: stopped.append((message, type(exc).__name__)))

    async def refused(batch, topic, *, partition):
        future = asyncio.get_running_loop().create_future()
        future.set_exception(RecordTooLargeError())
        return future

    producer.plain.send_batch = refused
    s.states.put(3, b"c-1", state("c-1"))

    async def scenario() -> None:
        flushed = await s.before_commit({TP("remarket.orders", 3): 42})
        await s.while_handling(flushed)  # then faust flushes and commits the offsets

    asyncio.run(scenario())
    assert stopped == [(TP("shop-customers-changelog", 3), "RecordTooLargeError")]



def real_producer(transactional_id: str | None, partitions: int = 4, batch_bytes: int = 16384):
    """aiokafka's own producer (made in a running loop), never started, with the outputs topic's
    metadata given and, transactional, a transaction begun."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.structs import PartitionMetadata

    from remarket.shell.pipeline import KeyPartitioner

    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", transactional_id=transactional_id,
                                partitioner=KeyPartitioner(), max_batch_size=batch_bytes)
    producer._metadata._partitions["remarket.actions"] = {
        p: PartitionMetadata("remarket.actions", p, 1, [1], [1], None) for p in range(partitions)}
    if transactional_id is not None:
        producer._txn_manager.set_pid_and_epoch(7, 0)
        producer._txn_manager.begin_transaction()
    return producer


def batches_of(producer, topic: str = "remarket.actions") -> dict[int, list]:
    return {tp.partition: list(batches) for tp, batches in producer._message_accumulator._batches.items()
            if tp.topic == topic and batches}


@pytest.mark.parametrize("exactly_once", [True, False])
def test_outputs_go_into_aiokafka_s_batches_without_send_and_are_reported_once_their_batch_is_written(
        exactly_once, monkeypatch):
    """Each output lands in the batch of the partition aiokafka's `send` would pick (its transaction
    has that partition added), in order; faust's sensors count each record when it goes in and
    again when the broker answers for its batch; a failed batch stops the worker without committing."""
    from remarket.shell import transactions

    s, producer, _ = sink(exactly_once)
    stopped = []
    monkeypatch.setattr(transactions, "stop_without_committing", lambda source, exc: stopped.append((source, exc)))

    async def scenario() -> None:
        real = real_producer("shop-0-3" if exactly_once else None)
        if exactly_once:
            producer._transaction_producers["shop-0-3"] = real
            producer._trn_locks["shop-0-3"] = asyncio.Lock()
        else:
            producer._producer = real
        for i in range(6):
            await s.send(OutRecord("actions", b"c-%d" % (i % 2), b"v%d" % i), SOURCE)
        assert producer.sent == []  # not through `send`
        expected = {real._partition("remarket.actions", None, key, None, key, None) for key in (b"c-0", b"c-1")}
        batches = batches_of(real)
        assert set(batches) == expected and all(len(b) == 1 and b[0].record_count == 3 for b in batches.values())
        if exactly_once:
            assert {tp.partition for tp in real._txn_manager.partitions_to_add()} == expected
        assert s.app.monitor.messages_sent_by_topic == {"remarket.actions": 6} and s.app.monitor.completed == 0
        first, second = (batches[p][0] for p in sorted(batches))
        first.done(base_offset=10)
        await asyncio.sleep(0)  # the batch's future calls back in the next loop turn
        assert s.app.monitor.completed == 3 and stopped == []
        second.failure(KafkaError("not written"))
        await asyncio.sleep(0)
        assert s.app.monitor.completed == 3 and [(src, type(e)) for src, e in stopped] == [(SOURCE, KafkaError)]
        real._closed = True  # never started: nothing to stop

    asyncio.run(scenario())


def test_an_output_goes_through_send_when_it_cannot_go_straight_into_a_batch_and_later_ones_stay_behind_it():
    """An unknown topic, faust holding the transaction's lock, no open transaction, a record larger
    than a batch: through `send` (which waits or raises as before). While such a send waits, later
    outputs wait behind it, so they reach their partition in the order they were sent."""
    s, producer, _ = sink()
    s.topic_names["later"] = "remarket.later"
    through_send: list[bytes] = []
    release: asyncio.Event | None = None

    async def send(topic, value=None, key=None, partition=None, timestamp_ms=None, headers=None):
        through_send.append(value)
        if release is not None:
            await release.wait()
        future = asyncio.get_running_loop().create_future()
        future.set_result(SimpleNamespace(topic=topic, partition=0, offset=1))
        return future

    def records_in_batches() -> int:
        return sum(b.record_count for bs in batches_of(real).values() for b in bs)

    async def scenario() -> None:
        nonlocal release, real
        real = real_producer("shop-0-3", batch_bytes=200)
        real.send = send
        producer._transaction_producers["shop-0-3"] = real
        lock = producer._trn_locks["shop-0-3"] = asyncio.Lock()

        await s.send(OutRecord("later", b"c-0", b"topic not known yet"), SOURCE)
        async with lock:  # faust begins or commits the transaction
            sending = asyncio.ensure_future(s.send(OutRecord("actions", b"c-0", b"locked"), SOURCE))
            await asyncio.sleep(0.01)
            assert through_send == [b"topic not known yet"] and not sending.done()
        await sending
        real._txn_manager.is_in_transaction = lambda: False
        await s.send(OutRecord("actions", b"c-0", b"no transaction"), SOURCE)
        del real._txn_manager.is_in_transaction
        await s.send(OutRecord("actions", b"c-0", b"first"), SOURCE)  # straight into a new batch
        await s.send(OutRecord("actions", b"c-0", b"x" * 500), SOURCE)  # no room left in it
        assert through_send == [b"topic not known yet", b"locked", b"no transaction", b"x" * 500]
        assert records_in_batches() == 1

        release = asyncio.Event()
        waiting = asyncio.ensure_future(s.send(OutRecord("actions", b"c-0", b"y" * 500), SOURCE))
        await asyncio.sleep(0)
        behind = asyncio.ensure_future(s.send(OutRecord("actions", b"c-0", b"small"), SOURCE))
        await asyncio.sleep(0.01)
        assert through_send[-1] == b"y" * 500 and not behind.done() and records_in_batches() == 1
        release.set()
        await asyncio.gather(waiting, behind)
        assert through_send[-2:] == [b"y" * 500, b"small"]
        # nothing waits now: into a batch (another partition's: c-0's is full, as aiokafka leaves a
        # batch once a record did not fit)
        other = next(key for key in (b"c-%d" % i for i in range(1, 20))
                     if real._partition("remarket.actions", None, key, None, key, None)
                     != real._partition("remarket.actions", None, b"c-0", None, b"c-0", None))
        await s.send(OutRecord("actions", other, b"straight in"), SOURCE)
        assert through_send[-1] == b"small" and records_in_batches() == 2
        real._closed = True

    real = None
    asyncio.run(scenario())


def test_each_output_lands_in_the_partition_aiokafka_s_partitioner_picks():
    """The partition is worked out without aiokafka's `_partition` (two lists per record): the same
    one, for any key, with 3, 4 or 12 partitions."""
    from collections import Counter as Tally

    for partitions in (3, 4, 12):
        s, producer, _ = sink()

        async def scenario() -> None:
            real = real_producer("shop-0-3", partitions=partitions)
            producer._transaction_producers["shop-0-3"] = real
            producer._trn_locks["shop-0-3"] = asyncio.Lock()
            keys = [b"c-%d" % i for i in range(200)] + [b"", b"\xff" * 40]
            for key in keys:
                await s.send(OutRecord("actions", key, b"v"), SOURCE)
            expected = Tally(real._partition("remarket.actions", None, key, None, key, None) for key in keys)
            assert {p: sum(b.record_count for b in bs) for p, bs in batches_of(real).items()} == dict(expected)
            real._closed = True

        asyncio.run(scenario())
