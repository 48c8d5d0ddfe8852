"""The one entry point of the core: fold an event into state, or move state forward in time.

Event time only. Each customer's state keeps two clocks: `clock`, the latest time seen (event or
tick, never moves back), and `upto`, the time processed so far, which trails `clock` by the
policy's reorder tolerance. Events wait in a small buffer until `upto` reaches them and are then
folded in event-time order, interleaved with whatever fell due in between; so events that arrive
shuffled within the tolerance give exactly the same state and actions, live or in replay.

Store-wide knowledge (the top-value threshold, the popular products) comes in as `store`, a
read-only view the caller derives from the customers it holds (store.py); `UNKNOWN` by default.
"""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from remarket.domain.actions import Action, Withdrawal
from remarket.domain.contact import Effects
from remarket.domain.decide import evaluate, next_due, on_erasure, update_stage
from remarket.domain.events import InboundEvent, event_ts, family_of
from remarket.domain.fold import fold
from remarket.domain.money import unknown_currency
from remarket.domain.policy import Policy
from remarket.domain.profile import CustomerProfile, final_segment_key, profile_of
from remarket.domain.rules import withdrawals
from remarket.domain.state import CustomerState, from_ts, id_hash, later, new_state, ring_has, ring_with, to_ts
from remarket.domain.store import UNKNOWN, StoreView


class RejectedEvent(ValueError):
    """A well-formed event the core refuses (e.g. far in the future); it goes to the dead letters."""


class Outcome(NamedTuple):  # one per call of the core: a frozen dataclass's __init__ cost ~1.4 µs
    state: CustomerState | None  # None: the customer was erased
    actions: tuple[Action, ...] = ()
    duplicate: bool = False
    profile: CustomerProfile | None = None  # set when stage, tier or activity changed
    transitions: tuple[tuple[str, str], ...] = ()  # (from_stage, to_stage)
    suppressions: tuple[tuple[str, str], ...] = ()  # (action kind, reason)
    withdrawals: tuple[Withdrawal, ...] = ()  # pending actions that became moot: publish like actions
    deferred: tuple[tuple[str, str], ...] = ()  # (action kind, reason): capped, waiting for a later slot
    expired: tuple[tuple[str, str], ...] = ()  # (action kind, reason): gave up waiting, never sent


def _insert(buffer: list[InboundEvent], event: InboundEvent) -> None:
    """Keep the buffer in (occurred_at, event_id) order. A new event is usually the latest: one
    comparison of times (each costs calls into the events' tzinfo) finds its place."""
    moment, event_id = event.occurred_at, event.event_id
    index = len(buffer)
    while index > 0:
        other = buffer[index - 1]
        if other.occurred_at < moment or (other.occurred_at == moment and other.event_id <= event_id):
            break
        index -= 1
    buffer.insert(index, event)


def _run_until(state: CustomerState, target: int, policy: Policy, effects: Effects,
               store: StoreView = UNKNOWN) -> tuple[int | None, int | None]:
    """Fold buffered events and fire due work, in time order, up to `target` (inclusive).
    Returns the next logical due time (after `target`) and the time of the first event still held
    (converting an event's time costs a call into its tzinfo: the caller need not do it again)."""
    held = event_ts(state.buffer[0]) if state.buffer else None
    while True:
        folding_ts = held if held is not None and held <= target else None
        due = next_due(state, policy)
        if due is not None and due <= target and (folding_ts is None or due <= folding_ts):
            evaluate(state, due, policy, effects, store)
        elif folding_ts is not None:
            event = state.buffer.pop(0)
            if event.event_type == "consent.erasure_requested":
                _erase_in_place(state, folding_ts, policy, effects)  # later held events start a fresh customer
                held = event_ts(state.buffer[0]) if state.buffer else None
                continue
            held = event_ts(state.buffer[0]) if state.buffer else None
            late = state.upto is not None and folding_ts <= state.upto
            at = state.upto if late else folding_ts
            fold(state, event, policy, folding_ts)
            withdrawals.on_event(state, event, at, policy, effects)
            if late:  # what it set up may already be due: decide now
                evaluate(state, at, policy, effects, store)
            else:  # a purchase moves the stage at once; due work is picked up by the loop
                update_stage(state, at, policy, effects, store)
        else:
            break
    state.upto = target if state.upto is None else max(state.upto, target)
    return due, held


def _finish(before: CustomerState | None, state: CustomerState, due: int | None, held: int | None,
            policy: Policy, effects: Effects) -> Outcome:
    """`due`, `held`: the next logical due time and the time of the first held event, as `_run_until` left them."""
    if effects.erased and not state.buffer:  # forgotten, and nothing newer is waiting: delete
        return Outcome(state=None, actions=tuple(effects.actions), transitions=tuple(effects.transitions),
                       suppressions=tuple(effects.suppressions), withdrawals=tuple(effects.withdrawals),
                       deferred=tuple(effects.deferred), expired=tuple(effects.expired))
    logical = held if due is None else due if held is None else min(due, held)
    state.due_at = from_ts(logical + policy.seconds.reorder_tolerance) if logical is not None else None
    if state.policy_version != policy.version:  # CustomerState assignments go through __setattr__
        state.policy_version = policy.version
    profile = None
    if state.upto is not None and (before is None or state.upto != before.upto):
        # `state` is final from here on (the caller stores it; the core never changes it again)
        now_key = final_segment_key(state, state.upto, policy)
        before_key = (final_segment_key(before, before.upto, policy) if before is not None and before.upto is not None
                      else None)
        if now_key != before_key:
            profile = profile_of(state, from_ts(state.upto), policy)
    return Outcome(state=state, actions=tuple(effects.actions), profile=profile,
                   transitions=tuple(effects.transitions), suppressions=tuple(effects.suppressions),
                   withdrawals=tuple(effects.withdrawals), deferred=tuple(effects.deferred),
                   expired=tuple(effects.expired))


def _erase_in_place(state: CustomerState, t: int, policy: Policy, effects: Effects) -> None:
    """Forget everything the request covers; count what was cancelled and withdraw what was emitted
    but is not yet due. Held events that are later than the request stay (the customer came back),
    and so does the clock."""
    withdrawals.on_erasure(state, t, policy, effects)
    on_erasure(state, effects)
    fresh = new_state(state.customer_id, state.policy_version)
    keep = {"buffer": state.buffer, "clock": state.clock, "upto": state.upto,
            "recent_event_hashes": state.recent_event_hashes}  # hashed ids only: still dedup retries
    for name in CustomerState.model_fields:
        setattr(state, name, keep[name] if name in keep else getattr(fresh, name))
    for held in state.buffer:  # counted on arrival; they belong to the fresh customer
        family = family_of(held.event_type)
        state.events_by_family[family] = state.events_by_family.get(family, 0) + 1
        state.last_seen_by_family[family] = later(state.last_seen_by_family.get(family), held.occurred_at)
    effects.erased = True


def check_event(event: InboundEvent, policy: Policy, received_at: datetime | None = None) -> None:
    """Raise RejectedEvent, with a message a person can act on, for an event the core refuses:
    too far ahead of or behind the time it was received, or amounts in an unknown currency."""
    if (problem := unknown_currency(event, policy)) is not None:
        raise RejectedEvent(problem)
    if received_at is None:
        return
    ahead = event.occurred_at - received_at  # aware datetimes: each subtraction asks both offsets
    if ahead > policy.future_tolerance:
        raise RejectedEvent(
            f"occurred_at {event.occurred_at.isoformat()} is more than {policy.future_tolerance} "
            f"ahead of the time it was received ({received_at.isoformat()})"
        )
    if -ahead > policy.events.max_age:
        raise RejectedEvent(
            f"occurred_at {event.occurred_at.isoformat()} is more than {policy.events.max_age.days} days "
            f"before the time it was received ({received_at.isoformat()})"
        )


def apply(state: CustomerState | None, event: InboundEvent, policy: Policy,
          *, received_at: datetime | None = None, store: StoreView = UNKNOWN) -> Outcome:
    """Fold one event into the customer's state. `received_at` bounds how far ahead events may be;
    `store` is what the caller knows of the store as a whole."""
    check_event(event, policy, received_at)
    before = state
    event_hash = id_hash(event.event_id)  # tested, then added: hashed once
    if state is None:
        state = new_state(event.customer_id, policy.version)  # nobody else holds it: no copy needed
    elif ring_has(state.recent_event_hashes, event_hash):
        return Outcome(state=state, duplicate=True)
    else:
        state = state.working_copy()
    effects = Effects()
    # An erasure request waits in the reorder buffer like any event, so that events from before it
    # that arrive late (another topic, another producer) are folded first and erased with the rest.
    state.recent_event_hashes = ring_with(state.recent_event_hashes, event_hash, policy.dedup_event_ids)
    family = family_of(event.event_type)
    state.events_by_family[family] = state.events_by_family.get(family, 0) + 1
    state.last_seen_by_family[family] = later(state.last_seen_by_family.get(family), event.occurred_at)
    ts = event_ts(event)
    state.clock = ts if state.clock is None else max(state.clock, ts)
    _insert(state.buffer, event)
    while len(state.buffer) > policy.limits.reorder_buffer:  # too many held: process the oldest now
        _run_until(state, event_ts(state.buffer[0]), policy, effects, store)
    due, held = _run_until(state, state.clock - policy.seconds.reorder_tolerance, policy, effects, store)
    return _finish(before, state, due, held, policy, effects)


def advance(state: CustomerState, now: datetime, policy: Policy, *, store: StoreView = UNKNOWN) -> Outcome:
    """Move the customer's state to `now` with no new event (stages drift, due work fires)."""
    return _move_clock(state, to_ts(now), policy, hold_recent=True, store=store)


def settle(state: CustomerState, as_of: datetime, policy: Policy, *, store: StoreView = UNKNOWN) -> Outcome:
    """Process everything up to `as_of` itself, held events included (the end of a replay)."""
    return _move_clock(state, to_ts(as_of), policy, hold_recent=False, store=store)


def _move_clock(state: CustomerState, ts: int, policy: Policy, *, hold_recent: bool,
                store: StoreView = UNKNOWN) -> Outcome:
    before, state = state, state.working_copy()
    state.clock = ts if state.clock is None else max(state.clock, ts)
    effects = Effects()
    target = state.clock - policy.seconds.reorder_tolerance if hold_recent else ts
    due, held = _run_until(state, target, policy, effects, store)
    return _finish(before, state, due, held, policy, effects)
