"""The record handler carries out what the pipeline decides: state to the write cache, outputs to
the sink in the record's transaction, due work to the index; a partition tick advances every
customer of its partition that is due."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import orjson
from faust.types import TP
from prometheus_client import CollectorRegistry

from remarket.catalog import load_catalog
from remarket.domain.policy import Policy
from remarket.shell.due_work import DueWork
from remarket.shell.handling import RecordHandler
from remarket.shell.metrics import Metrics
from remarket.shell.observe import Observer
from remarket.shell.pipeline import Pipeline, SourceRecord, owner_partition
from remarket.shell.state_cache import StateCache
from remarket.shell.store import FaustMemoryStore
from remarket.shell.ticks import tick_value

CATALOG = load_catalog()
T = {spec.role: spec.name for spec in CATALOG}


class Sink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, int]] = []
        self.opened: list[int] = []  # offsets of the records whose transaction got work
        self.lock = asyncio.Lock()

    async def send(self, out, source) -> None:
        self.sent.append((out.role, out.key, source.offset))

    def processed(self, tp, offset) -> None:
        pass

    def open_commit_path(self, source) -> None:
        self.opened.append(source.offset)


def handler() -> tuple[RecordHandler, Sink, StateCache]:
    metrics = Metrics(CollectorRegistry())
    observer = Observer(metrics, {spec.name: spec.role for spec in CATALOG})
    tables: dict = {}
    monitor = SimpleNamespace(_table_or_create=lambda table: tables.setdefault(id(table),
        SimpleNamespace(keys_retrieved=0, keys_updated=0, keys_deleted=0)))
    app = SimpleNamespace(sensors=[monitor], monitor=monitor)
    pipeline = Pipeline(CATALOG, Policy())
    states = StateCache(FaustMemoryStore(SimpleNamespace(data={})))
    sink = Sink()
    progress = SimpleNamespace(of={})  # each input partition's (end, read): caught up unless a test says
    progress.input_progress = lambda tp, mark: progress.of.get(tp, (0, 0))
    progress.fetch_mark = lambda tp: None
    due = DueWork(SimpleNamespace(consumer=progress), SimpleNamespace(scan=lambda: []), states, pipeline, metrics,
                  observer, T["ticks"])
    return RecordHandler(app, None, pipeline, states, sink, due, observer, T["ticks"]), sink, states


def message(role: str, partition: int, offset: int, key: bytes | None, value: bytes):
    """A record as the fetch loop hands it to the handler (shell.delivery)."""
    return SourceRecord(T[role], partition, offset, key, value, (), None, TP(T[role], partition))


def paid_order_placed(customer: str, at: datetime) -> bytes:
    return orjson.dumps({"event_id": f"{customer}-o", "event_type": "order.placed", "customer_id": customer,
                         "order_id": f"{customer}-o1", "total": 30.0, "occurred_at": at.isoformat(),
                         "schema_version": 1})


def test_a_record_changes_the_cached_state_and_schedules_its_customer():
    h, sink, states = handler()
    now = datetime.now(timezone.utc)
    p = owner_partition(b"c-1", CATALOG.partitions)
    asyncio.run(h.handle(message("orders", p, 7, b"c-1", paid_order_placed("c-1", now))))
    assert states.get(p, b"c-1") is not None and states.dirty_partitions() == {p}
    assert "c-1" in h.due_work.index[p]._due


def test_a_partition_tick_advances_every_customer_due_there_in_its_transaction():
    h, sink, states = handler()
    then = datetime.now(timezone.utc) - timedelta(hours=2)  # placed, never paid: the reminder is due
    customers = [f"c-{i}" for i in range(12)]
    for offset, customer in enumerate(customers):
        p = owner_partition(customer.encode(), CATALOG.partitions)
        asyncio.run(h.handle(message("orders", p, offset, customer.encode(), paid_order_placed(customer, then))))
    p = owner_partition(b"c-0", CATALOG.partitions)
    here = sorted(c for c in customers if owner_partition(c.encode(), CATALOG.partitions) == p)
    sink.sent.clear()
    tick = message("ticks", p, 99, None, tick_value(datetime.now(timezone.utc), p))
    asyncio.run(h.handle(tick))
    reminded = sorted(key.decode() for role, key, offset in sink.sent if role == "actions" and offset == 99)
    assert len(here) >= 2 and reminded == here  # each due customer of the partition, in the tick's transaction
    assert h.due_work.take_due(p, datetime.now(timezone.utc)) == []  # handed over, scheduled anew from their state


def test_a_tick_for_another_partition_is_dead_lettered():
    h, sink, _ = handler()
    asyncio.run(h.handle(message("ticks", 1, 5, None, tick_value(datetime.now(timezone.utc), 2))))
    assert sink.sent == [("dead_letter", None, 5)]


def test_a_tick_read_ahead_of_the_input_runs_its_due_work_with_the_record_that_reads_it_up():
    """After an outage the payment of an overdue order can still be in the backlog: the tick's
    due work waits for the partition's input, then runs in that record's transaction."""
    h, sink, states = handler()
    then = datetime.now(timezone.utc) - timedelta(hours=2)
    p = owner_partition(b"c-0", CATALOG.partitions)
    asyncio.run(h.handle(message("orders", p, 0, b"c-0", paid_order_placed("c-0", then))))
    orders = TP(T["orders"], p)
    h.due_work.app.consumer.of[orders] = (3, 1)  # two records of the backlog not handled yet
    sink.sent.clear()
    asyncio.run(h.handle(message("ticks", p, 99, None, tick_value(datetime.now(timezone.utc), p))))
    assert sink.sent == [] and p in h.due_work.waiting
    assert h.observer.metrics.ticks.labels("waited_for_input")._value.get() == 1

    paid = orjson.dumps({"event_id": "c-0-paid", "event_type": "order.paid", "customer_id": "c-0",
                         "order_id": "c-0-o1", "total": 30.0, "occurred_at": (then + timedelta(minutes=1)).isoformat(),
                         "schema_version": 1})
    asyncio.run(h.handle(message("orders", p, 1, b"c-0", paid)))  # one record still ahead
    assert p in h.due_work.waiting
    h.due_work.app.consumer.of[orders] = (3, 2)
    asyncio.run(h.handle(message("orders", p, 2, b"c-1", paid_order_placed("c-1", datetime.now(timezone.utc)))))
    assert p not in h.due_work.waiting  # run with the record that read the input up
    assert "actions" not in {role for role, key, offset in sink.sent if key == b"c-0"}  # paid: no reminder
    # c-0 was handled since the tick was read: left due for the next tick (shell.due_work), which
    # runs it, with no reminder either
    assert h.due_work.index[p].earliest() <= datetime.now(timezone.utc)
    h.due_work.app.consumer.of[orders] = (3, 3)
    asyncio.run(h.handle(message("ticks", p, 100, None, tick_value(datetime.now(timezone.utc), p))))
    assert p not in h.due_work.waiting
    assert "actions" not in {role for role, key, offset in sink.sent if key == b"c-0"}
    assert h.due_work.take_due(p, datetime.now(timezone.utc)) == []
