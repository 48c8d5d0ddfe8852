"""Capped messages wait; they are not lost.

When a frequency cap holds a message back, it waits in `CustomerState.waiting` for the next slot
the caps allow. At each slot the waiting and freshly decided messages compete by the policy's
priority (the transactional reminder first, then recall and win-back, then the rest; ties: the
longest waiting), and a message whose kind's window (`waiting.wait_for`) runs out first expires.
Each outcome is counted: deferred (entered the queue), expired, or sent; a message that becomes
moot while waiting (order paid, product ordered, stage left, erasure) is suppressed with that reason.
"""
from __future__ import annotations

from typing import Callable

from remarket.domain.caps import next_free_slot
from remarket.domain.policy import Policy
from remarket.domain.state import CustomerState, Proposal
from remarket.domain.vocabulary import Deferral, Expiry, Suppression



def window(kind: str, policy: Policy) -> int:
    return int(getattr(policy.waiting.wait_for, kind).total_seconds())


def priority(kind: str, policy: Policy) -> int:
    return getattr(policy.waiting.priority, kind)


def order_key(proposal: Proposal, policy: Policy) -> tuple:
    """Who goes first at a slot: priority, then the longest waiting, then a stable tie-break."""
    return priority(proposal.kind, policy), proposal.since, proposal.kind, proposal.ref


def take_due(state: CustomerState, t: int) -> list[Proposal]:
    """Remove and return the waiting messages whose slot has come."""
    if not state.waiting or min(p.retry for p in state.waiting) > t:
        return []
    due = [p for p in state.waiting if p.retry <= t]
    state.waiting = [p for p in state.waiting if p.retry > t]
    return due


def park(state: CustomerState, proposal: Proposal, send_ts: int, policy: Policy, effects, bonus: int = 0) -> None:
    """The caps hold `proposal` back at `send_ts`: wait for the next free slot (the grade's `bonus`
    counted), or expire."""
    kind = proposal.kind
    first = proposal.retry == 0
    wait = window(kind, policy)
    if wait <= 0:
        effects.suppress(kind, Suppression.FREQUENCY_CAP)  # the merchant chose: capped means dropped
        return
    slot = next_free_slot(state, send_ts, policy, bonus)
    if slot > proposal.since + wait:
        effects.expire(kind, Expiry.WAIT_OVER)
        return
    if first:
        effects.defer(kind, Deferral.FREQUENCY_CAP)
    state.waiting = sorted([*state.waiting, proposal.model_copy(update={"retry": slot})],
                           key=lambda p: order_key(p, policy))
    while len(state.waiting) > policy.limits.waiting:  # the least urgent gives way
        dropped = state.waiting.pop()
        effects.expire(dropped.kind, Expiry.WAITING_FULL)


def next_due(state: CustomerState) -> int | None:
    if not state.waiting:  # nearly always: asked after every folded event
        return None
    return min(p.retry for p in state.waiting)


def drop(state: CustomerState, reason: Suppression, effects, matches: Callable[[Proposal], bool] = lambda p: True) -> None:
    """A waiting message that became moot is not sent: counted as suppressed with `reason`."""
    if not state.waiting:
        return
    kept = []
    for proposal in state.waiting:
        if matches(proposal):
            effects.suppress(proposal.kind, reason)
        else:
            kept.append(proposal)
    state.waiting = kept
