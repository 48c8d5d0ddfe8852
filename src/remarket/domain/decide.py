"""Time-driven decisions: what falls due at a moment, and when the next thing will.

Each marketing rule lives in one module of `remarket.domain.rules` (reminders, coupons,
campaigns, festivals) with the same small interface: `due` (the messages it proposes at `t`),
`next_due`, `sent` (what it remembers once its message went out) and `on_erasure`. This module
walks them. `evaluate(state, t)` moves the stage, collects what the rules and the waiting queue
have due at `t` and sends it through one gate by priority (contact.deliver: consent, quiet hours,
caps; capped messages wait, rules/waiting.py). `next_due(state)` is the earliest later moment at
which `evaluate` would do anything. Items are removed or rescheduled once decided, so evaluating
the same moment twice does nothing the second time.
"""
from __future__ import annotations

from remarket.domain.contact import Capped, Effects, deliver
from remarket.domain.lifecycle import LAPSED_STAGES, next_activity_change, next_stage_change, stage_at
from remarket.domain.policy import Policy
from remarket.domain.rules import campaigns, coupons, early_win_back, festivals, reminders, waiting, withdrawals
from remarket.domain.rules.campaigns import campaign_kind, campaign_policy, looked_not_bought  # noqa: F401
from remarket.domain.rules.coupons import offer_type  # noqa: F401  (kept importable from here)
from remarket.domain.state import CustomerState, Proposal
from remarket.domain.store import UNKNOWN, StoreView

RULES = (reminders, coupons, campaigns, early_win_back, festivals)
_BY_KIND = {reminders.KIND.value: reminders, coupons.KIND.value: coupons}


# ---------------------------------------------------------------- stage

def update_stage(state: CustomerState, t: int, policy: Policy, effects: Effects, store: StoreView = UNKNOWN) -> None:
    stage = stage_at(state, t, policy)
    if stage == state.stage:
        festivals.schedule(state, t, policy)
        early_win_back.schedule(state, t, policy, store)
        return
    effects.transitions.append((state.stage, stage))
    if state.stage in LAPSED_STAGES and stage not in LAPSED_STAGES:
        state.reactivations += 1
    state.stage, state.stage_since, state.campaign_seq = stage, t, 0
    withdrawals.on_stage_change(state, t, policy, effects)
    campaigns.start(state, t, policy)
    festivals.schedule(state, t, policy)
    early_win_back.schedule(state, t, policy, store)


# ---------------------------------------------------------------- sending, by priority

def _send_all(state: CustomerState, proposals: list[Proposal], t: int, policy: Policy, effects: Effects,
              store: StoreView) -> None:
    """Fresh and waiting messages compete for the slot at `t` by priority; the capped ones wait."""
    for proposal in sorted(proposals, key=lambda p: waiting.order_key(p, policy)):
        result = deliver(state, effects, policy, proposal, t, store)
        if isinstance(result, Capped):
            waiting.park(state, proposal, result.send_ts, policy, effects, result.bonus)
        elif result is not None and (rule := _BY_KIND.get(proposal.kind)) is not None:
            rule.sent(state, proposal, t)


# ---------------------------------------------------------------- the entry points

def evaluate(state: CustomerState, t: int, policy: Policy, effects: Effects, store: StoreView = UNKNOWN) -> None:
    """Everything due at or before `t`, decided at `t`; then `t` becomes the processed time.
    `store`: what the caller knows of the store as a whole (store.py), read only."""
    withdrawals.prune(state, t)
    update_stage(state, t, policy, effects, store)
    proposals = waiting.take_due(state, t)
    for rule in RULES:
        proposals += rule.due(state, t, policy, effects, store)
    if proposals:
        _send_all(state, proposals, t, policy, effects, store)
    state.upto = t if state.upto is None else max(state.upto, t)


def next_due(state: CustomerState, policy: Policy) -> int | None:
    """Earliest moment after the processed time at which `evaluate` would change something."""
    upto = state.upto if state.upto is not None else -(2**62)
    # Asked once per folded event and per decision: a plain loop, no lists or generators.
    earliest = None
    for t in (waiting.next_due(state), next_stage_change(state, upto, policy),
              next_activity_change(state, upto, policy)):
        if t is not None and t > upto and (earliest is None or t < earliest):
            earliest = t
    for rule in RULES:
        t = rule.next_due(state, policy)
        if t is not None and t > upto and (earliest is None or t < earliest):
            earliest = t
    return earliest


def on_erasure(state: CustomerState, effects: Effects) -> None:
    """Count what each rule had pending as cancelled by the erasure."""
    for rule in RULES:
        rule.on_erasure(state, effects)
