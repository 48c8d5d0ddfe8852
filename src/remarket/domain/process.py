"""The one entry point of the core: fold an event into state, or move state forward in time."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from remarket.domain.actions import Action
from remarket.domain.events import InboundEvent, family_of
from remarket.domain.policy import Policy
from remarket.domain.state import CustomerState, later, new_state


class RejectedEvent(ValueError):
    """A well-formed event the core refuses (e.g. far in the future); it goes to the dead letters."""


@dataclass(frozen=True)
class Outcome:
    state: CustomerState | None  # None: the customer was erased
    actions: tuple[Action, ...] = field(default=())
    duplicate: bool = False


def apply(state: CustomerState | None, event: InboundEvent, policy: Policy,
          *, received_at: datetime | None = None) -> Outcome:
    """Fold one event into the customer's state. `received_at` bounds how far ahead events may be."""
    if received_at is not None and event.occurred_at - received_at > policy.future_tolerance:
        raise RejectedEvent(
            f"occurred_at {event.occurred_at.isoformat()} is more than {policy.future_tolerance} "
            f"ahead of the time it was received ({received_at.isoformat()})"
        )
    if state is None:
        state = new_state(event.customer_id, policy.version)
    if event.event_id in state.recent_event_ids:
        return Outcome(state=state, duplicate=True)
    if event.event_type == "consent.erasure_requested":
        return Outcome(state=None)
    family = family_of(event.event_type)
    state = state.model_copy(update={
        "clock": later(state.clock, event.occurred_at),
        "recent_event_ids": (state.recent_event_ids + [event.event_id])[-policy.dedup_event_ids:],
        "events_by_family": {**state.events_by_family, family: state.events_by_family.get(family, 0) + 1},
        "last_seen_by_family": {
            **state.last_seen_by_family,
            family: later(state.last_seen_by_family.get(family), event.occurred_at),
        },
    })
    return Outcome(state=state)


def advance(state: CustomerState, now: datetime, policy: Policy) -> Outcome:
    """Move the customer's state to `now` with no new event (stages drift, due work fires)."""
    return Outcome(state=state.model_copy(update={"clock": later(state.clock, now)}))
