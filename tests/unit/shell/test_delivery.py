"""The batch-delivery consumer as faust builds it (no broker: nothing is started)."""
from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from time import monotonic
from types import SimpleNamespace

from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.structs import TopicPartition
from faust.types import TP

from remarket.catalog import load_catalog
from remarket.domain.policy import Policy
from remarket.settings import Settings
from remarket.shell.app import Worker
from remarket.shell.delivery import FETCH_MAX_WAIT_MS, TURN_AFTER_SECONDS, BatchDeliveryConsumer
from remarket.shell.fetch_sessions import SessionFetcher

from .loop_turns import turns_while


def _consumers_of(settings: Settings) -> tuple[object, object]:
    """The worker's faust consumer, and the aiokafka consumer its thread would fetch with."""
    async def build():
        worker = Worker(settings, Policy(), load_catalog())
        consumer = worker.app.consumer
        return consumer, consumer._new_consumer_thread()._create_worker_consumer(worker.app.transport)

    return asyncio.run(build())


def test_the_worker_consumer_bounds_how_long_the_broker_holds_an_empty_fetch(tmp_path):
    consumer, kafka_consumer = _consumers_of(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path))
    assert isinstance(consumer, BatchDeliveryConsumer)
    assert kafka_consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100  # faust's own is 1,500 ms: see FETCH_MAX_WAIT_MS


def test_the_fetch_settings_reach_the_consumer_that_fetches(tmp_path):
    _, gathered = _consumers_of(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path,
                                         fetch_min_bytes=16384, fetch_max_wait_ms=10))
    assert (gathered._fetch_min_bytes, gathered._fetch_max_wait_ms) == (16384, 10)
    _, default = _consumers_of(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path / "d"))
    assert (default._fetch_min_bytes, default._fetch_max_wait_ms) == (1, FETCH_MAX_WAIT_MS)  # answer at once


class Record:  # a fetched record, as aiokafka hands it over
    def __init__(self, offset: int) -> None:
        self.offset, self.key, self.value, self.headers, self.timestamp = offset, b"k", b"v", [], 1_700_000_000_000


def acking(**parts):
    """The parts of faust's consumer that acking a record touches, with `parts`."""
    return SimpleNamespace(_unacked_messages=set(), _committed_offset=defaultdict(lambda: None),
                           _acked_index=defaultdict(set), _acked=defaultdict(list), _waiting_for_ack=None,
                           _n_acked=0, **parts)


def test_a_long_batch_gives_the_event_loop_turns_while_it_is_handled():
    """Handling never waits by itself: without turns, a fetched batch held sends, the commit timer
    and broker answers back until its last record."""
    handled: list[int] = []

    async def handler(message) -> None:
        started = time.perf_counter()
        while time.perf_counter() - started < 0.001:  # ~1 ms of work per record, no await
            pass
        handled.append(message.offset)

    tp = TP("remarket.orders", 0)
    consumer = acking(
        handler=handler, _read_offset={tp: None}, _unhandled={}, _commit_every=None, flow_active=True,
        app=SimpleNamespace(consumer_generation_id=1, topics=SimpleNamespace(acks_enabled_for=lambda topic: True)))
    batch = [Record(offset) for offset in range(30)]

    _, turns = asyncio.run(turns_while(BatchDeliveryConsumer._handle_batch(consumer, tp, batch, 1)))
    assert handled == list(range(30)) and consumer._read_offset[tp] == 29
    assert turns >= 30 * 0.001 / TURN_AFTER_SECONDS / 2  # ~one per TURN_AFTER_SECONDS of handling


def delivering_consumer(handler, handled_topics: set[str], in_transaction: bool = False) -> SimpleNamespace:
    """The parts of a BatchDeliveryConsumer that `_deliver` and `input_progress` use, over aiokafka's
    own subscription state (its private shape is what input_progress reads)."""
    subscription = SubscriptionState()
    fetcher = SessionFetcher.__new__(SessionFetcher)
    fetcher._subscriptions, fetcher.ends_heard, fetcher._answers = subscription, {}, {}
    fetcher._gathering, fetcher._brought_records = None, {}
    monitor = SimpleNamespace(track_tp_end_offset=lambda tp, offset: None, messages_received_total=0,
                              messages_received_by_topic={t: 0 for t in handled_topics}, tp_read_offsets={},
                              stream_inbound_time={})
    consumer = acking(
        handler=handler, handled_topics=frozenset(handled_topics), _unhandled={}, _commit_every=None,
        flow_active=True, _buffered_partitions=set(), highwater=lambda tp: None,
        in_transaction=in_transaction, kafka=SimpleNamespace(_subscription=subscription, _fetcher=fetcher),
        app=SimpleNamespace(consumer_generation_id=1, monitor=monitor,
                            topics=SimpleNamespace(acks_enabled_for=lambda topic: True)))
    consumer._handle_batch = lambda tp, batch, generation: BatchDeliveryConsumer._handle_batch(
        consumer, tp, batch, generation)
    consumer.input_progress = lambda tp, mark=None: BatchDeliveryConsumer.input_progress(
        consumer, tp, mark if mark is not None else consumer.fetch_mark(TICKS))
    consumer.fetch_mark = lambda tp: BatchDeliveryConsumer.fetch_mark(consumer, tp)
    consumer.handed_over = lambda records: BatchDeliveryConsumer.handed_over(consumer, records)
    consumer._read_offset = defaultdict(lambda: None)  # as faust's
    return consumer


TICKS = TP("remarket.ticks", 0)


class Fetched(Record):
    def __init__(self, tp: TP, offset: int) -> None:
        super().__init__(offset)
        self.tp = tp


def test_input_progress_counts_a_fetched_record_as_read_only_once_it_is_handled():
    """Due work waits for its partition's input (shell.due_work): aiokafka's position is past a
    whole fetch as soon as it is handed over, so while a fetch is delivered the read mark is the
    first record of each partition not handled yet."""
    asyncio.run(_input_progress_through_a_fetch())


async def _input_progress_through_a_fetch() -> None:
    orders, visits, elsewhere = TP("remarket.orders", 0), TP("remarket.visits", 0), TP("remarket.orders", 1)
    seen: list[tuple[int, tuple, tuple]] = []

    async def handler(message) -> None:
        seen.append((message.offset, consumer.input_progress(orders), consumer.input_progress(visits)))

    consumer = delivering_consumer(handler, {"remarket.orders", "remarket.visits"})
    consumer.kafka._subscription.assign_from_user({orders, visits})
    assert consumer.input_progress(elsewhere) == (None, None)  # not assigned here
    assert consumer.input_progress(orders) == (None, None)  # no fetch has answered yet
    consumer.kafka._fetcher.answered(1, monotonic(), fetch_answer({orders: 13, visits: 4, TICKS: 1}))
    for tp, end in ((orders, 13), (visits, 4)):
        consumer.kafka._subscription.subscription.assignment.state_value(tp).seek(end)  # past what getmany handed over

    records = {orders: [Fetched(orders, offset) for offset in (10, 11, 12)], visits: [Fetched(visits, 3)]}
    assert consumer.input_progress(orders) == (13, 13)  # aiokafka's position: past the fetch it handed over
    consumer.handed_over(records)  # as it hands them over (the consumer's fetch, below)
    assert consumer.input_progress(orders) == (13, 10) and consumer.input_progress(visits) == (4, 3)
    await BatchDeliveryConsumer._deliver(consumer, records, None)
    assert seen == [(10, (13, 10), (4, 3)), (11, (13, 11), (4, 3)), (12, (13, 12), (4, 3)),
                    (3, (13, 13), (4, 3))]  # orders done, visits' record being handled
    assert consumer.input_progress(orders) == (13, 13) and consumer.input_progress(visits) == (4, 4)
    consumer.in_transaction = True  # exactly-once reads committed records: its end is the last stable offset
    assert consumer.input_progress(orders) == (12, 13)


def fetch_answer(ends: dict[TP, int | None]) -> SimpleNamespace:
    """A fetch answer (v11) listing each partition with its highwater and a stable offset one
    below, or (None) with NOT_LEADER_OR_FOLLOWER."""
    topics: dict[str, list] = {}
    for tp, end in ends.items():
        error, end = (6, -1) if end is None else (0, end)
        topics.setdefault(tp.topic, []).append((tp.partition, error, end, end - 1, 0, [], -1, b""))
    return SimpleNamespace(API_VERSION=11, topics=list(topics.items()))


def test_an_input_end_heard_before_the_marked_record_is_not_reported():
    """Where an input ends must have been heard after the tick it is asked for (shell.due_work):
    the end aiokafka holds may be from before an outage."""
    asyncio.run(_an_end_heard_before_the_mark())


async def _an_end_heard_before_the_mark() -> None:
    orders = TP("remarket.orders", 0)
    consumer = delivering_consumer(None, {"remarket.orders"})
    consumer.kafka._subscription.assign_from_user({orders, TICKS})
    consumer.kafka._subscription.subscription.assignment.state_value(orders).seek(10)
    fetcher = consumer.kafka._fetcher
    fetcher.answered(1, monotonic(), fetch_answer({orders: 10, TICKS: 1}))
    fetcher.answered(1, monotonic(), fetch_answer({orders: None, TICKS: 2}))  # the tick; orders: NOT_LEADER
    mark = consumer.fetch_mark(TICKS)
    assert consumer.input_progress(orders, mark) == (None, 10)
    fetcher.answered(1, monotonic(), fetch_answer({orders: 11}))
    assert consumer.input_progress(orders, mark) == (11, 10)
    assert BatchDeliveryConsumer.input_progress(consumer, orders, None) == (None, 10)  # no mark: no end counts


def test_commits_start_an_interval_apart_however_long_each_takes(tmp_path, monkeypatch):
    """faust slept the whole interval after each commit: under exactly-once, where an action waits
    for its commit, commits every 50 ms that took 34 ms came every ~88 ms."""
    clock = [100.0]
    monkeypatch.setattr("remarket.shell.delivery.monotonic", lambda: clock[0])
    took = iter([0.03, 0.08, 0.0])  # seconds each commit takes
    slept: list[float] = []

    async def scenario() -> None:
        worker = Worker(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path, commit_interval_seconds=0.05),
                        Policy(), load_catalog())
        consumer = worker.app.consumer

        async def commit() -> bool:
            duration = next(took, None)
            if duration is None:
                consumer._stopped.set()
                return False
            clock[0] += duration
            return True

        async def sleep(seconds: float) -> None:
            slept.append(round(seconds, 6))
            clock[0] += seconds

        consumer.commit, consumer.sleep = commit, sleep
        await asyncio.wait_for(consumer._commit_handler.fun(consumer), 5)

    asyncio.run(scenario())
    # the first wait, then what is left of the interval after each commit (none after a long one)
    assert slept == [0.05, 0.02, 0.0, 0.05, 0.05]


def test_the_consumer_runs_in_the_worker_loop_and_leaves_its_tasks_alone_when_it_stops(tmp_path, monkeypatch):
    import threading

    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    started_in, stopped_in = [], []

    async def on_start(self):  # the aiokafka consumer would connect: not here
        started_in.append(threading.get_ident())

    async def on_thread_stop(self):
        stopped_in.append(threading.get_ident())

    monkeypatch.setattr(AIOKafkaConsumerThread, "on_start", on_start)
    monkeypatch.setattr(AIOKafkaConsumerThread, "on_thread_stop", on_thread_stop)

    async def scenario():
        worker = Worker(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path), Policy(), load_catalog())
        service = worker.app.consumer._new_consumer_thread()
        assert service.thread_loop is asyncio.get_running_loop()
        bystander = asyncio.ensure_future(asyncio.sleep(30))  # one of the worker's own tasks
        threads = threading.active_count()
        await asyncio.wait_for(service.start(), 5)
        assert threading.active_count() == threads and service._thread is None  # no thread started

        async def where(*args):
            return threading.get_ident(), args

        assert await service.call_thread(where, 1, 2) == (threading.get_ident(), (1, 2))  # a plain await
        assert await service.call_thread(lambda x: x + 1, 1) == 2  # faust calls plain functions too
        await asyncio.wait_for(service.stop(), 5)
        assert started_in == stopped_in == [threading.get_ident()]
        assert not bystander.done()  # a thread's own loop is swept of its tasks at stop: not the worker's
        bystander.cancel()

    asyncio.run(scenario())


def test_a_batch_acks_each_handled_record_as_faust_would_and_is_waited_for_while_in_flight():
    tp = TP("remarket.orders", 0)
    seen = []

    async def handler(message) -> None:
        seen.append((message.topic, message.partition, message.offset, message.timestamp, message.tp,
                     len(consumer._unacked_messages), list(consumer._acked[tp])))
        if message.offset == 11:
            consumer.flow_active = False  # a rebalance begins: the rest is fetched again after its seek

    consumer = acking(handler=handler, _read_offset=defaultdict(lambda: None), _unhandled={}, _commit_every=None,
                      flow_active=True, app=SimpleNamespace(consumer_generation_id=1,
                                                            topics=SimpleNamespace(acks_enabled_for=lambda t: True)))
    consumer._committed_offset[tp] = 10  # offsets below the committed one are not acked (faust's ack)
    handled, last = asyncio.run(BatchDeliveryConsumer._handle_batch(consumer, tp, [Record(o) for o in (9, 10, 11, 12)], 1))
    assert (handled, last) == (3, 11)
    # one marker in flight while a record is handled (wait_empty waits for it); each record acked
    # before the next is handled, so a commit between two records covers the first
    assert seen == [("remarket.orders", 0, 9, 1_700_000_000.0, tp, 1, []),
                    ("remarket.orders", 0, 10, 1_700_000_000.0, tp, 1, []),
                    ("remarket.orders", 0, 11, 1_700_000_000.0, tp, 1, [10])]
    assert consumer._acked[tp] == [10, 11] and consumer._acked_index[tp] == {10, 11} and consumer._n_acked == 2
    assert not consumer._unacked_messages and consumer._read_offset[tp] == 11


def test_a_fetch_counts_as_not_read_from_the_moment_aiokafka_hands_it_over(tmp_path, monkeypatch):
    """aiokafka moves its read position past a fetch as it hands the records over; the due work
    of a partition waits until its input is read up. Had the records been noted only when their
    delivery began (a turn of the loop later), due work could find the input read up meanwhile and
    remind a customer whose payment was in that very fetch (seen: tests/integration/test_outage_backlog.py)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    orders = TP("remarket.orders", 0)
    fetched = {orders: [Fetched(orders, 40), Fetched(orders, 41)]}
    noted_when_returned = []

    async def fetch_records(self, consumer, active_partitions, timeout=None, max_records=None):
        return fetched

    monkeypatch.setattr(AIOKafkaConsumerThread, "_fetch_records", fetch_records)

    async def scenario():
        worker = Worker(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path), Policy(), load_catalog())
        consumer = worker.app.consumer
        consumer.handled_topics = frozenset({"remarket.orders"})
        service = consumer._new_consumer_thread()
        records = await service._fetch_records(None, {orders})
        noted_when_returned.append(dict(consumer._unhandled))
        return records

    assert asyncio.run(scenario()) is fetched
    assert noted_when_returned == [{orders: 40}]


def test_partitions_faust_pauses_are_paused_in_aiokafka_too(tmp_path):
    """faust's pause only left the partitions out of what it took: aiokafka fetched the paused
    changelog partitions after the first commit wrote to them, nobody took those records, and
    aiokafka held every fetch to the broker for its prefetch backoff (100 ms) meanwhile."""
    consumer, kafka = _consumers_of(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path))
    assert consumer.kafka is kafka
    changelog = [TopicPartition("remarket-customers-changelog", p) for p in range(2)]
    orders = TopicPartition("remarket.orders", 0)

    async def pauses() -> list[set[TopicPartition]]:  # aiokafka's partition states make futures
        kafka._subscription.assign_from_user({*changelog, orders})
        seen = []
        consumer.pause_partitions({TP(tp.topic, tp.partition) for tp in changelog} | {TP("not.assigned", 0)})
        seen.append(kafka.paused())  # an unassigned partition is faust's alone
        consumer.resume_partitions({TP(changelog[0].topic, 0)})  # recovery reads a changelog again
        seen.append(kafka.paused())
        consumer.pause_partitions({TP(orders.topic, orders.partition)})  # a rebalance stops the inputs
        seen.append(kafka.paused())
        consumer.resume_partitions({TP(orders.topic, orders.partition), TP(changelog[1].topic, 1)})
        seen.append(kafka.paused())
        return seen

    assert asyncio.run(pauses()) == [set(changelog), {changelog[1]}, {changelog[1], orders}, set()]


def test_a_consumer_not_started_yet_keeps_its_pauses_to_itself(tmp_path):
    async def build():
        return Worker(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path), Policy(), load_catalog()).app.consumer

    consumer = asyncio.run(build())
    assert consumer.kafka is None
    consumer.pause_partitions({TP("remarket.orders", 0)})
    assert TP("remarket.orders", 0) in consumer._paused_partitions
