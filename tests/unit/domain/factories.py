"""Factories for the domain tests: events by type, a clock, and a driver that runs the core."""
from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from remarket.domain.events import inbound_event_adapter
from remarket.domain.policy import Policy, policy_from_dict
from remarket.domain.process import Outcome, advance, apply
from remarket.domain.store import UNKNOWN, StoreView

T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)  # a Monday, noon UTC: outside default quiet hours
_ids = itertools.count(1)


def event(kind: str, at: datetime, customer: str = "c1", **fields):
    document = {"event_id": fields.pop("event_id", f"ev-{next(_ids)}"), "customer_id": customer,
                "occurred_at": at.isoformat(), "event_type": kind, **fields}
    return inbound_event_adapter.validate_python(document)


def placed(at, order="o1", **kw):
    return event("order.placed", at, order_id=order, total=kw.pop("total", 40.0), **kw)


def paid(at, order="o1", **kw):
    return event("order.paid", at, order_id=order, total=kw.pop("total", 40.0), **kw)


def view(at, product="p1", **kw):
    return event("visit.product_view", at, product_id=product, **kw)


def policy_with(**sections) -> Policy:
    """Default policy with some sections overridden; holdout off unless asked for."""
    sections.setdefault("holdout", {"share": 0})
    return policy_from_dict(sections)


class Driver:
    """Feeds events then ticks like the live worker would; collects everything the core emits."""

    def __init__(self, policy: Policy | None = None, store: StoreView = UNKNOWN):
        self.policy = policy or policy_with()
        self.store = store  # what the worker would know of the rest of the store
        self.state = None
        self.outcomes: list[Outcome] = []

    def feed(self, *events) -> "Driver":
        for e in events:
            self._take(apply(self.state, e, self.policy, store=self.store))
        return self

    def tick(self, now: datetime) -> "Driver":
        self._take(advance(self.state, now, self.policy, store=self.store))
        return self

    def run_until(self, now: datetime) -> "Driver":
        """Tick at every due_at until `now` (like the worker's heap), then at `now`."""
        while self.state is not None and self.state.due_at is not None and self.state.due_at <= now:
            self.tick(self.state.due_at)
        if self.state is not None:
            self.tick(now)
        return self

    def _take(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.state = outcome.state

    @property
    def actions(self):
        return [a for o in self.outcomes for a in o.actions]

    def kinds(self):
        return [a.kind.value for a in self.actions]

    @property
    def suppressions(self):
        return [s for o in self.outcomes for s in o.suppressions]

    @property
    def deferred(self):
        return [s for o in self.outcomes for s in o.deferred]

    @property
    def expired(self):
        return [s for o in self.outcomes for s in o.expired]

    @property
    def withdrawals(self):
        return [w for o in self.outcomes for w in o.withdrawals]

    @property
    def transitions(self):
        return [t for o in self.outcomes for t in o.transitions]


def minutes(n):
    return timedelta(minutes=n)


def days(n):
    return timedelta(days=n)
