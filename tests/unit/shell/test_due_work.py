"""DueWork sends a tick for every customer due, on the customer's key, and keeps a safety net."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from remarket.catalog import load_catalog
from remarket.domain.policy import Policy
from remarket.shell.due_work import DueWork
from remarket.shell.metrics import Metrics
from remarket.shell.observe import Observer
from remarket.shell.pipeline import Pipeline
from remarket.shell.state_cache import StateCache
from remarket.shell.store import FaustMemoryStore
from remarket.shell.ticks import Tick


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        self.sent.append((topic, key, value, partition))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def due_work(table: dict, states: StateCache | None = None) -> tuple[DueWork, Producer]:
    producer = Producer()
    app = SimpleNamespace(producer=producer, assignor=SimpleNamespace(assigned_actives=lambda: {("t", 0)}))
    metrics = Metrics(CollectorRegistry())
    states = states or StateCache(FaustMemoryStore(SimpleNamespace(data=table)))
    work = DueWork(app, SimpleNamespace(items=lambda: table.items()), states, Pipeline(load_catalog(), Policy()),
                   metrics, Observer(metrics, {}), "remarket.ticks")
    return work, producer


def test_customers_due_get_one_tick_each_on_their_key_and_the_rest_wait():
    work, producer = due_work({})
    asyncio.run(work.fire())  # the first round builds the index from the (empty) table
    now = datetime.now(timezone.utc)
    work.schedule("due-1", now - timedelta(seconds=5))
    work.schedule("later", now + timedelta(hours=1))
    work.schedule("cancelled", now - timedelta(seconds=5))
    work.schedule("cancelled", None)
    asyncio.run(work.fire())
    assert [(topic, key, partition) for topic, key, _, partition in producer.sent] == [("remarket.ticks", b"due-1", None)]
    assert Tick.model_validate_json(producer.sent[0][2]).now >= now
    # the safety net: a tick that is lost is sent again later, not never
    assert "due-1" in work.index._due and work.index._due["due-1"] > now


def test_the_index_is_rebuilt_from_the_table_when_the_assignment_changes():
    from remarket.domain.state import CustomerState

    past = int((datetime.now(timezone.utc) - timedelta(minutes=1)).timestamp())
    state = CustomerState(customer_id="from-table", policy_version="p", clock=past, upto=past)
    state = state.model_copy(update={"due_at": datetime.now(timezone.utc) - timedelta(seconds=1)})
    work, producer = due_work({b"from-table": state.to_bytes()})
    asyncio.run(work.fire())
    assert [key for _, key, _, _ in producer.sent] == [b"from-table"]


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
    assert sorted(key for _, key, _, _ in producer.sent) == [b"committed", b"handled"]
