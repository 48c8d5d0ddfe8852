"""DueWork sends a tick for every customer due, on the customer's key, and keeps a safety net."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from aiokafka.errors import KafkaTimeoutError
from faust.types import TP
from prometheus_client import CollectorRegistry

from remarket.catalog import load_catalog
from remarket.domain.policy import Policy
from remarket.shell.due_work import DueWork
from remarket.shell.fetch_sessions import FetchMark, HeardEnd
from remarket.shell.metrics import Metrics
from remarket.shell.observe import Observer
from remarket.shell.pipeline import Pipeline, owner_partition
from remarket.shell.state_cache import StateCache
from remarket.shell.store import FaustMemoryStore
from remarket.shell.ticks import Tick


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple] = []
        self.fail = False

    async def send(self, topic, key, value, partition, timestamp, headers):
        self.sent.append((topic, key, value, partition))
        future = asyncio.get_running_loop().create_future()
        if self.fail:
            future.set_exception(KafkaTimeoutError())
        else:
            future.set_result(SimpleNamespace(offset=len(self.sent) - 1))
        return future


class InputProgress:
    """What the consumer reports of each input partition: (where it ends, how far it is read and
    handled); caught up unless a test says otherwise. Its ends are told by one broker's answers;
    `told_before_the_tick` holds the partitions whose end was last told before the tick's answer."""

    def __init__(self) -> None:
        self.of: dict[TP, tuple[int | None, int | None]] = {}
        self.told_before_the_tick: set[TP] = set()
        self.answers = 1

    def fetch_mark(self, tp: TP) -> FetchMark:
        return FetchMark(1, self.answers, time.monotonic())

    def input_progress(self, tp: TP, mark: FetchMark | None) -> tuple[int | None, int | None]:
        end, read = self.of.get(tp, (7, 7))
        answer = self.answers - 1 if tp in self.told_before_the_tick else self.answers
        told = HeardEnd(1, answer, 0.0, end, end) if end is not None else None
        return (end if mark is not None and mark.passed_by(told) else None), read


def due_work(table: dict, states: StateCache | None = None) -> tuple[DueWork, Producer]:
    producer = Producer()
    app = SimpleNamespace(producer=producer, assignor=SimpleNamespace(assigned_actives=lambda: {("t", 0)}),
                          consumer=InputProgress())
    metrics = Metrics(CollectorRegistry())
    states = states or StateCache(FaustMemoryStore(SimpleNamespace(data=table)))
    work = DueWork(app, FaustMemoryStore(SimpleNamespace(data=table)), states, Pipeline(load_catalog(), Policy()),
                   metrics, Observer(metrics, {}), "remarket.ticks")
    return work, producer


def handed_over(work: DueWork, producer: Producer) -> list[str]:
    """What handling the ticks sent gives the worker: the due customers of each ticked partition."""
    customers = []
    for _, key, value, partition in producer.sent:
        tick = Tick.model_validate_json(value)
        assert key is None and tick.partition == partition
        customers += [customer for customer, _ in work.take_due(partition, tick.now)]
    producer.sent.clear()
    return sorted(customers)


def test_one_tick_per_partition_with_customers_due_hands_over_exactly_those_due():
    work, producer = due_work({})
    asyncio.run(work.fire())  # the first round builds the index from the (empty) table
    now = datetime.now(timezone.utc)
    due = [f"due-{i}" for i in range(40)]
    for customer in due:
        work.schedule(customer, now - timedelta(seconds=5))
    work.schedule("later", now + timedelta(hours=1))
    work.schedule("cancelled", now - timedelta(seconds=5))
    work.schedule("cancelled", None)
    asyncio.run(work.fire())
    partitions = {owner_partition(c.encode(), work.partitions) for c in due}
    assert sorted(p for *_, p in producer.sent) == sorted(partitions)  # one record per partition, not 40
    assert all(Tick.model_validate_json(v).now >= now for _, _, v, _ in producer.sent)
    assert handed_over(work, producer) == sorted(due)
    asyncio.run(work.fire())
    assert producer.sent == []  # nothing due any more; "later" waits


def test_a_tick_on_its_way_is_not_sent_twice_but_a_lost_one_is():
    work, producer = due_work({})
    asyncio.run(work.fire())
    work.schedule("c-1", datetime.now(timezone.utc) - timedelta(seconds=1))
    asyncio.run(work.fire())
    asyncio.run(work.fire())  # not read yet (a backlog after an outage): no second tick behind it
    assert len(producer.sent) == 1
    partition, offset = producer.sent[0][3], 0
    work.observer.processed_offsets[TP("remarket.ticks", partition)] = offset  # read, yet never handled
    asyncio.run(work.fire())
    assert len(producer.sent) == 2
    assert handed_over(work, producer) == ["c-1"]  # the customer stayed due until a tick was handled


def test_a_tick_that_could_not_be_written_is_sent_again_next_round():
    work, producer = due_work({})
    asyncio.run(work.fire())
    work.schedule("c-1", datetime.now(timezone.utc) - timedelta(seconds=1))
    producer.fail = True
    asyncio.run(work.fire())
    producer.fail = False
    asyncio.run(work.fire())
    assert len(producer.sent) == 2


def test_the_index_is_rebuilt_from_the_table_when_the_assignment_changes():
    from remarket.domain.state import CustomerState

    past = int((datetime.now(timezone.utc) - timedelta(minutes=1)).timestamp())
    state = CustomerState(customer_id="from-table", policy_version="p", clock=past, upto=past)
    state = state.model_copy(update={"due_at": datetime.now(timezone.utc) - timedelta(seconds=1)})
    work, producer = due_work({b"from-table": state.to_bytes()})
    asyncio.run(work.fire())
    assert handed_over(work, producer) == ["from-table"]


def test_the_store_wide_view_is_rebuilt_from_the_table_in_the_same_scan():
    from remarket.domain.state import Attention, CustomerState

    at = int(datetime.now(timezone.utc).timestamp())
    table = {f"c{i}".encode(): CustomerState(customer_id=f"c{i}", policy_version="p", orders=1, spent=10.0 * i,
                                             products={"hot": Attention(last=at, views=2)}).to_bytes()
             for i in range(1, 4)}
    work, _ = due_work(table)
    asyncio.run(work.fire())
    assert work.pipeline.store.buyers == 3 and work.pipeline.store.popular(at, 3) == ("hot",)


def test_the_rebuilt_index_holds_customers_handled_since_the_last_commit():
    """RocksDB only has committed states; a rebuild between a record and its commit must not
    forget that record's customer (seen: reminders never fired after a broker restart)."""
    from remarket.domain.state import CustomerState

    past = int((datetime.now(timezone.utc) - timedelta(minutes=1)).timestamp())
    due = datetime.now(timezone.utc) - timedelta(seconds=1)

    def state(customer_id: str) -> CustomerState:
        fresh = CustomerState(customer_id=customer_id, policy_version="p", clock=past, upto=past)
        return fresh.model_copy(update={"due_at": due})

    table = {b"committed": state("committed").to_bytes(), b"erased": state("erased").to_bytes()}
    states = StateCache(FaustMemoryStore(SimpleNamespace(data=table)))
    states.put(0, b"handled", state("handled"))  # not committed yet
    states.put(0, b"erased", None)  # erased, not committed yet
    work, producer = due_work(table, states)
    asyncio.run(work.fire())
    assert handed_over(work, producer) == ["committed", "handled"]



ORDERS, VISITS = "remarket.orders", "remarket.visits"


def waiting_tick(work: DueWork, producer: Producer, customer: str = "c-1") -> tuple[int, datetime]:
    """`customer` due, its partition's tick sent and read: (partition, the tick's time)."""
    asyncio.run(work.fire())
    work.schedule(customer, datetime.now(timezone.utc) - timedelta(seconds=1))
    asyncio.run(work.fire())
    (_, _, value, partition), = producer.sent
    now = Tick.model_validate_json(value).now
    work.tick_read(partition, now)
    return partition, now


def test_a_tick_read_ahead_of_its_partitions_input_waits_until_that_is_read_up():
    """An order paid in a backlog must be folded before the reminder it makes moot is decided."""
    work, producer = due_work({})
    partition = owner_partition(b"c-1", work.partitions)
    orders = TP(ORDERS, partition)
    work.app.consumer.of[orders] = (500, 100)  # a backlog: 400 records ahead of the tick
    partition, tick_now = waiting_tick(work, producer)
    assert work.take_ready(partition) is None  # nothing handed over: the customer stays due
    asyncio.run(work.fire())
    assert len(producer.sent) == 1  # and no second tick behind the waiting one

    work.app.consumer.of[orders] = (900, 499)  # more arrived since: the mark stays where the input ended
    assert work.take_ready(partition) is None
    work.app.consumer.of[orders] = (900, 500)
    now, due = work.take_ready(partition)
    assert now == tick_now and [customer for customer, _ in due] == ["c-1"]
    assert partition not in work.waiting and work.take_ready(partition) is None


def test_the_record_being_handled_counts_as_read():
    work, producer = due_work({})
    partition = owner_partition(b"c-1", work.partitions)
    visits = TP(VISITS, partition)
    work.app.consumer.of[visits] = (40, 39)  # the last record is being handled: not yet counted
    partition, _ = waiting_tick(work, producer)
    assert work.take_ready(partition, handled=(TP(ORDERS, partition), 39)) is None  # another input
    assert [c for c, _ in work.take_ready(partition, handled=(visits, 39))[1]] == ["c-1"]


def test_an_input_no_fetch_had_answered_for_is_waited_for_from_its_first_answer():
    """Right after an assignment the input's end is not known yet: the tick must not pass it."""
    work, producer = due_work({})
    partition = owner_partition(b"c-1", work.partitions)
    orders = TP(ORDERS, partition)
    work.app.consumer.of[orders] = (None, None)
    partition, _ = waiting_tick(work, producer)
    assert work.take_ready(partition) is None
    work.app.consumer.of[orders] = (300, 0)  # the first fetch: a backlog of 300
    assert work.take_ready(partition) is None
    work.app.consumer.of[orders] = (350, 300)
    assert [c for c, _ in work.take_ready(partition)[1]] == ["c-1"]


def test_a_waiting_tick_read_up_with_no_record_to_run_it_gets_a_new_tick():
    """The input can be read up with no record of the partition handled after (the last ones were
    transaction markers): the next round ticks again, and that tick runs the waiting one."""
    work, producer = due_work({})
    partition = owner_partition(b"c-1", work.partitions)
    work.app.consumer.of[TP(ORDERS, partition)] = (10, 8)
    partition, first = waiting_tick(work, producer)
    work.observer.processed_offsets[TP("remarket.ticks", partition)] = 0  # the tick was read
    asyncio.run(work.fire())
    assert len(producer.sent) == 1
    work.app.consumer.of[TP(ORDERS, partition)] = (10, 10)  # position past the markers
    asyncio.run(work.fire())
    assert len(producer.sent) == 2
    work.tick_read(partition, datetime.now(timezone.utc))  # the new tick: the older one goes first
    now, due = work.take_ready(partition)
    assert now == first and [c for c, _ in due] == ["c-1"]


def test_an_end_told_before_the_tick_is_not_taken_for_where_the_input_ends():
    """After a broker restart a payment reminder passed an order paid in the backlog (CI,
    2026-12-04): most likely the ticks partition answered while the orders partition still
    answered NOT_LEADER, and its end from before the outage said "read up". The tick waits for an
    end told since."""
    work, producer = due_work({})
    partition = owner_partition(b"c-1", work.partitions)
    orders = TP(ORDERS, partition)
    consumer = work.app.consumer
    consumer.of[orders] = (10, 10)  # read up to the end heard before the outage...
    consumer.told_before_the_tick.add(orders)  # ...which no answer has told since
    partition, tick_now = waiting_tick(work, producer)
    assert work.take_ready(partition) is None
    assert work.take_ready(partition, handled=(TP(VISITS, partition), 6)) is None
    asyncio.run(work.follow_up())
    assert len(producer.sent) == 1  # no new tick for it either: it is not read up

    consumer.told_before_the_tick.clear()
    consumer.of[orders] = (11, 10)  # the answer since: the payment, written before the tick
    assert work.take_ready(partition) is None
    assert work.take_ready(partition, handled=(orders, 10)) is not None  # the payment is what it waited for


def test_a_tick_read_up_with_no_record_after_it_is_followed_up_before_the_next_round():
    """An idle input whose end is told only after the tick: no record of the partition comes to
    run the due work, so a new tick is sent at the next follow-up, not a tick interval later."""
    work, producer = due_work({})
    partition = owner_partition(b"c-1", work.partitions)
    orders = TP(ORDERS, partition)
    work.app.consumer.told_before_the_tick.add(orders)
    partition, tick_now = waiting_tick(work, producer)
    work.observer.processed_offsets[TP("remarket.ticks", partition)] = 0  # the tick was read
    asyncio.run(work.follow_up())
    assert len(producer.sent) == 1
    work.app.consumer.told_before_the_tick.clear()  # the next answer (nothing new) tells the end
    asyncio.run(work.follow_up())
    assert len(producer.sent) == 2
    asyncio.run(work.follow_up())
    assert len(producer.sent) == 2  # one at a time: the new tick is on its way
    work.tick_read(partition, datetime.now(timezone.utc))
    now, due = work.take_ready(partition)
    assert now == tick_now and [c for c, _ in due] == ["c-1"]


def test_a_customer_handled_since_the_tick_was_read_is_left_due_for_the_next_tick():
    """Records written after a tick can be older than the tick in event time (a backlog sent after
    an outage), and the end the tick waits for can fall between a customer's order placed and its
    payment: the reminder passed the payment (CI, 2026-12-07). That customer waits for the next
    tick; the others due are handed over."""
    work, producer = due_work({})
    partition = owner_partition(b"c-1", work.partitions)
    other = next(c for c in (f"c-{i}" for i in range(2, 500)) if owner_partition(c.encode(), work.partitions) == partition)
    orders = TP(ORDERS, partition)
    work.app.consumer.of[orders] = (500, 100)
    partition, tick_now = waiting_tick(work, producer)
    work.schedule(other, tick_now - timedelta(seconds=1))
    assert work.take_ready(partition, handled=(orders, 300), customer="c-1") is None  # its order placed
    now, due = work.take_ready(partition, handled=(orders, 499), customer="somebody-else")
    assert now == tick_now and [customer for customer, _ in due] == [other]
    asyncio.run(work.fire())  # c-1 is still due: the partition is ticked again
    assert handed_over(work, producer) == ["c-1"]


def test_an_assignment_change_forgets_the_waiting_ticks():
    work, producer = due_work({})
    partition = owner_partition(b"c-1", work.partitions)
    work.app.consumer.of[TP(ORDERS, partition)] = (10, 2)
    partition, _ = waiting_tick(work, producer)
    asyncio.run(work.rebuild())  # positions were reset; the index comes from state, the next round ticks afresh
    assert work.waiting == {}


def test_a_backlog_record_asks_nothing_of_the_consumer():
    """Every record of a partition whose tick waits asks whether it was the last one it waited
    for: that answer comes from the record itself, not from six lookups in the consumer."""
    work, producer = due_work({})
    partition = owner_partition(b"c-1", work.partitions)
    orders = TP(ORDERS, partition)
    work.app.consumer.of[orders] = (500, 100)
    partition, _ = waiting_tick(work, producer)
    asked: list[TP] = []
    progress = work.app.consumer.input_progress
    work.app.consumer.input_progress = lambda tp, mark: asked.append(tp) or progress(tp, mark)
    assert all(work.take_ready(partition, handled=(orders, offset)) is None for offset in range(100, 499))
    assert asked == []
    assert [c for c, _ in work.take_ready(partition, handled=(orders, 499))[1]] == ["c-1"]


def _slow_table(table: dict, seconds_per_state: float, on_each=None):
    """A table whose scan takes time, as decoding a million states does."""
    import time

    def scan():
        for n, (key, value) in enumerate(table.items()):
            end = time.perf_counter() + seconds_per_state
            while time.perf_counter() < end:
                pass
            if on_each is not None:
                on_each(n)
            yield None, key, value
    return SimpleNamespace(scan=scan)


def _states_due(count: int) -> dict:
    from remarket.domain.state import CustomerState

    past = int((datetime.now(timezone.utc) - timedelta(minutes=1)).timestamp())
    due = datetime.now(timezone.utc) - timedelta(seconds=1)
    return {f"c{i}".encode(): CustomerState(customer_id=f"c{i}", policy_version="p", clock=past, upto=past,
                                            due_at=due).to_bytes() for i in range(count)}


def test_a_long_rebuild_lets_the_event_loop_run_but_no_record_be_handled():
    """The scan decodes every state held (~1 minute for a million): the web views must answer
    meanwhile, and no record may change a state, a due time or the store-wide view under it."""
    from remarket.shell.due_work import REBUILD_TURN_SECONDS

    from .loop_turns import turns_while

    table = _states_due(40)
    work, producer = due_work(table)
    work.store = _slow_table(table, REBUILD_TURN_SECONDS / 4)  # ~0.1 s in all
    locked_at_turns: list[bool] = []

    async def scan_and_watch():
        async def watch():
            while True:
                locked_at_turns.append(work.handling_lock.locked())
                await asyncio.sleep(0)
        watcher = asyncio.create_task(watch())
        try:
            return await turns_while(work.fire())
        finally:
            watcher.cancel()

    _, turns = asyncio.run(scan_and_watch())
    assert turns >= 5  # a turn every REBUILD_TURN_SECONDS of scanning (the old scan gave none)
    held = work.metrics.registry.get_sample_value("remarket_due_index_rebuild_seconds")
    assert 40 * REBUILD_TURN_SECONDS / 4 <= held < 5  # what on-call sees: how long records were held
    assert locked_at_turns and all(locked_at_turns[1:])  # records held off from the scan's start
    assert handed_over(work, producer) == sorted(f"c{i}" for i in range(40))
    assert not work.handling_lock.locked()


def test_a_rebalance_that_begins_during_the_rebuild_stops_it_and_the_next_round_scans_again():
    """The scan must not go on over table partitions a rebalance closes and opens: it stops,
    keeps what it had (no half-built index or store-wide view), and the next round rebuilds."""
    from remarket.shell.due_work import REBUILD_TURN_SECONDS

    table = _states_due(40)
    work, producer = due_work(table)
    work.app.rebalancing = False

    def rebalance_begins(n: int) -> None:
        if n == 10:
            work.app.rebalancing = True  # faust's consumer thread sets it as the revocation starts

    work.store = _slow_table(table, REBUILD_TURN_SECONDS / 4, rebalance_begins)
    store_before = work.pipeline.store
    asyncio.run(work.fire())
    assert work.index == {} and work.pipeline.store is store_before and producer.sent == []
    assert not work.handling_lock.locked()
    work.app.rebalancing = False  # it ended
    work.store = FaustMemoryStore(SimpleNamespace(data=table))
    asyncio.run(work.fire())
    assert handed_over(work, producer) == sorted(f"c{i}" for i in range(40))
    assert work.pipeline.store is not store_before


def test_an_assignment_change_is_indexed_once_whoever_asks_first():
    """The worker asks for the index as soon as it is ready after an assignment change (records
    wait for the scan) and each round asks again: a round that comes during the scan waits for
    it and does not scan again; the next change is scanned again."""
    from remarket.shell.due_work import REBUILD_TURN_SECONDS

    table = _states_due(40)
    work, producer = due_work(table)
    scans = []
    work.store = _slow_table(table, REBUILD_TURN_SECONDS / 4, lambda n: scans.append(n) if n == 0 else None)
    assert work.index_stale()

    async def ready_then_a_round():
        early = asyncio.create_task(work.index_current())
        await asyncio.sleep(0)  # the scan has begun when the round comes
        await work.fire()
        return await early

    assert asyncio.run(ready_then_a_round()) is True
    assert len(scans) == 1 and not work.index_stale()
    assert handed_over(work, producer) == sorted(f"c{i}" for i in range(40))
    work.app.assignor.assigned_actives = lambda: {("t", 0), ("t", 1)}
    assert work.index_stale()
    assert asyncio.run(work.index_current()) is True and len(scans) == 2 and not work.index_stale()


def test_the_index_takes_each_customers_partition_from_the_store_that_keeps_it():
    table = _states_due(6)
    work, producer = due_work(table)
    owners = {key: owner_partition(key, work.partitions) for key in table}
    work.store = SimpleNamespace(scan=lambda: [(owners[key], key, raw) for key, raw in table.items()])
    asyncio.run(work.index_current())
    assert {partition: len(index) for partition, index in work.index.items()} == {
        p: list(owners.values()).count(p) for p in set(owners.values())}
    assert handed_over(work, producer) == []  # nothing sent before the round
    asyncio.run(work.fire())
    assert handed_over(work, producer) == sorted(f"c{i}" for i in range(6))
