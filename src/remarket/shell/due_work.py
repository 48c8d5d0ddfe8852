"""Due work: which customers need a tick now, and sending those ticks.

The source of truth is `due_at` inside each changelogged state; the in-memory index is rebuilt
from the table after every assignment change, so a restart or rebalance makes due work late,
never lost. Ticks go to the customer's (murmur2) partition, where its state lives.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import faust

from remarket.domain.state import CustomerState
from remarket.shell.metrics import Metrics
from remarket.shell.observe import Observer
from remarket.shell.pipeline import Pipeline
from remarket.shell.schedule import DueIndex
from remarket.shell.state_cache import StateCache
from remarket.shell.ticks import tick_value

log = logging.getLogger("remarket.worker")

TICK_RETRY_AFTER = timedelta(minutes=1)
"""A tick that never comes back (lost send) is retried after this; duplicates are harmless."""


class DueWork:
    def __init__(self, app: faust.App, table: Any, states: StateCache, pipeline: Pipeline, metrics: Metrics,
                 observer: Observer, ticks_topic: str) -> None:
        self.app, self.table, self.states, self.pipeline = app, table, states, pipeline
        self.metrics, self.observer, self.ticks_topic = metrics, observer, ticks_topic
        self.index = DueIndex()
        self._indexed_assignment: frozenset | None = None

    def schedule(self, customer_id: str, due_at: datetime | None) -> None:
        self.index.set(customer_id, due_at)

    async def fire(self) -> None:
        """Rebuild the index if the assignment changed, then send a tick for everyone due."""
        assignment = frozenset(self.app.assignor.assigned_actives())
        if assignment != self._indexed_assignment:
            self.rebuild()
            self._indexed_assignment = assignment
        now = datetime.now(timezone.utc)
        due = self.index.pop_due(now)
        tick = tick_value(now)
        pending = []
        for customer_id, due_at in due:
            self.metrics.tick_lateness.observe((now - due_at).total_seconds())
            pending.append(await self.app.producer.send(self.ticks_topic, customer_id.encode(), tick, None, None, None))
        for fut in pending:
            await fut  # plain producer: ticks are idempotent and must be visible now, not at commit
        self.metrics.ticks.labels("sent").inc(len(due))
        self.index.retry_later((cid for cid, _ in due), now, TICK_RETRY_AFTER)
        self.metrics.pending_customers.set(len(self.index))

    def rebuild(self) -> None:
        """Scan this worker's table partitions once per assignment change (never per tick): the due
        index, the segment gauges and the store-wide view come from the same scan."""
        entries = []
        segments: Counter[tuple[str, str]] = Counter()
        self.pipeline.store.reset()  # store-wide knowledge is derived from the states held

        def hold(key: bytes, state: CustomerState) -> None:
            entries.append((key.decode(), state.due_at))
            self.pipeline.store.add(state)
            if (segment := self.pipeline.segment(state)) is not None:
                segments[segment] += 1

        # RocksDB has what committed; the write cache what was handled since (seen: reminders of
        # customers handled between the last commit and a rebalance never fired)
        uncommitted = dict(self.states.uncommitted())
        for key, raw in self.table.items():
            if raw and key not in uncommitted:
                hold(key, CustomerState.from_bytes(raw))
        for key, state in uncommitted.items():
            if state is not None:
                hold(key, state)
        self.index.rebuild(entries)
        self.observer.reset_segments(segments)
        self.metrics.index_rebuilds.inc()
        log.info("due-work index rebuilt: %d customers scheduled of %d", len(self.index), len(entries))
