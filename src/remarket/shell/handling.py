"""The hot path: one consumed record in, its state change, outputs, due work and metrics out.

The Pipeline decides (no Faust); this carries it out on the worker's parts: the write cache
(state), the transactional sink (outputs, in the record's transaction), the due-work index and
the Observer. A partition tick advances every customer of its partition that is due.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from remarket.shell.due_work import DueWork
from remarket.shell.faust_metrics import TableSensors, table_sensors
from remarket.shell.observe import Observer
from remarket.shell.pipeline import UNCHANGED, Handled, Pipeline, SourceRecord
from remarket.shell.state_cache import StateCache
from remarket.shell.stopping import stop_without_committing
from remarket.shell.transactions import TransactionalSink


class RecordHandler:
    def __init__(self, app: Any, table: Any, pipeline: Pipeline, states: StateCache, sink: TransactionalSink,
                 due_work: DueWork, observer: Observer, ticks_topic: str) -> None:
        self.app, self.table, self.pipeline, self.states, self.sink = app, table, pipeline, states, sink
        self.due_work, self.observer, self._ticks_topic = due_work, observer, ticks_topic
        self._table_sensors: TableSensors | None = None

    async def handle_or_stop(self, message: SourceRecord) -> None:
        try:
            async with self.sink.lock:  # no commit in the middle of a record
                await self.handle(message)
        except Exception as exc:
            stop_without_committing(message, exc)

    async def handle(self, record: SourceRecord) -> Handled:
        """One record as the fetch loop delivers it (shell.delivery): the pipeline's own record."""
        started = time.perf_counter()
        key = record.key
        if key is None and record.topic == self._ticks_topic:
            handled = await self._handle_partition_tick(record, started)
        else:
            state = None
            if key is not None:
                self._table_sensors = sensors = table_sensors(self.app, self.table, self._table_sensors)
                sensors.got(key)
                state = self.states.get(record.partition, key)
            handled = self.pipeline.handle(record, state, datetime.now(timezone.utc))
            await self._carry_out(handled, key, record, started)
            if record.partition in self.due_work.waiting:  # this record may be the one it waits for
                await self._advance_due(record, (record.tp, record.offset), handled.customer_id)
        self.observer.processed_offsets[record.tp] = record.offset  # lag, and whether a tick was read
        self.sink.processed(record.tp, record.offset)  # what commit_before_revoke commits
        return handled

    async def _handle_partition_tick(self, record: SourceRecord, started: float) -> Handled:
        """Advance every customer of the partition due by the tick's time, in its transaction,
        once the partition's input is read up to where it ends now (shell.due_work says why)."""
        now = self.pipeline.partition_tick(record)
        if isinstance(now, Handled):  # not a valid tick: dead-lettered
            await self._carry_out(now, None, record, started)
            return now
        self.due_work.tick_read(record.partition, now)
        if not await self._advance_due(record):
            self.observer.tick_waited_for_input()
        return Handled("tick")

    async def _advance_due(self, message: Any, handled: tuple[Any, int] | None = None,
                           customer: str | None = None) -> bool:
        """Run the due work of the partition's waiting tick if its input is read up, in this
        record's transaction; whether it ran. `customer`: the one this record was about."""
        ready = self.due_work.take_ready(message.partition, handled, customer)
        if ready is None:
            return False
        now, due = ready
        received_at = datetime.now(timezone.utc)
        for customer_id, due_at in due:
            started = time.perf_counter()
            key = customer_id.encode()
            self.observer.due_work_late((received_at - due_at).total_seconds())
            customer = self.pipeline.handle_due(customer_id, self.states.get(message.partition, key), now,
                                                received_at)
            await self._carry_out(customer, key, message, started)
        return True

    async def _carry_out(self, handled: Handled, key: bytes | None, message: Any, started: float) -> None:
        changed = handled.new_state is not UNCHANGED and key is not None
        if changed:
            self.states.put(message.partition, key, handled.new_state)  # changelog and RocksDB at commit
        if changed or handled.records:
            self.sink.open_commit_path(message)
        for out in handled.records:
            await self.sink.send(out, message)
        if handled.customer_id is not None and handled.outcome != "duplicate":
            self.due_work.schedule(handled.customer_id, handled.due_at)
        self.observer.record(handled, message, started)
