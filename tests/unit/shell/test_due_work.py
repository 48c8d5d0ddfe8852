"""DueWork sends a tick for every customer due, on the customer's key, and keeps a safety net."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from aiokafka.errors import KafkaTimeoutError
from faust.types import TP
from prometheus_client import CollectorRegistry

from remarket.catalog import load_catalog
from remarket.domain.policy import Policy
from remarket.shell.due_work import DueWork
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


def due_work(table: dict, states: StateCache | None = None) -> tuple[DueWork, Producer]:
    producer = Producer()
    app = SimpleNamespace(producer=producer, assignor=SimpleNamespace(assigned_actives=lambda: {("t", 0)}))
    metrics = Metrics(CollectorRegistry())
    states = states or StateCache(FaustMemoryStore(SimpleNamespace(data=table)))
    work = DueWork(app, SimpleNamespace(items=lambda: table.items()), states, Pipeline(load_catalog(), Policy()),
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
