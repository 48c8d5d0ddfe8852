"""A high churn risk on a high-value customer brings the win-back early.

For a growth or mature customer of a grade with `early_win_back_below`, the repurchase score
(P(purchase within the horizon), BG/NBD) falls as time passes without an order. The moment it
crosses below the grade's threshold is computed once per purchase (the score only falls with
time: a bisection) and kept in `early_due`; then the win-back (the churned campaign's coupon and
products) goes out without waiting for the customer to be declining, then churned. A new order
reschedules it; a held one is withdrawn by the payment (withdrawals.py).
"""
from __future__ import annotations

from remarket.domain.actions import ActionKind
from remarket.domain.lifecycle import overdue_thresholds, tier_of
from remarket.domain.policy import Policy
from remarket.domain.rules.campaigns import products_for
from remarket.domain.rules.grades import concessions
from remarket.domain.rules.coupons import offer_type
from remarket.domain.score import repurchase_score
from remarket.domain.store import UNKNOWN, StoreView
from remarket.domain.state import CustomerState, Offer, Proposal
from remarket.domain.vocabulary import Stage

KIND = ActionKind.WIN_BACK_EARLY
ELIGIBLE = (Stage.GROWTH, Stage.MATURE)
_HOUR = 3600


def _threshold(state: CustomerState, policy: Policy, store: StoreView) -> float | None:
    return concessions(state, policy, store).early_win_back_below


def _score(state: CustomerState, at: int, policy: Policy) -> float:
    return repurchase_score(state, at, policy.score)


def schedule(state: CustomerState, t: int, policy: Policy, store: StoreView = UNKNOWN) -> None:
    """When, after `t`, this customer's score falls below the threshold (before declining), if ever."""
    threshold = _threshold(state, policy, store) if state.stage in ELIGIBLE else None
    if threshold is None or state.last_order is None:
        if state.early_due is not None:  # asked after every folded event: assign only a change
            state.early_due = None
        return
    if state.early_for == state.last_order:
        return  # already scheduled (or fired) for this purchase history
    state.early_for = state.last_order
    start = max(t, state.last_order)
    end = state.last_order + overdue_thresholds(state, policy).declining_after  # then the campaigns take over
    if end <= start or _score(state, end, policy) >= threshold:
        state.early_due = None
        return
    if _score(state, start, policy) < threshold:
        state.early_due = start + 1
        return
    low, high = start, end  # score(low) >= threshold > score(high)
    while high - low > _HOUR:
        middle = (low + high) // 2
        low, high = (middle, high) if _score(state, middle, policy) >= threshold else (low, middle)
    state.early_due = high


def due(state: CustomerState, t: int, policy: Policy, effects=None, store: StoreView = UNKNOWN) -> list[Proposal]:
    if state.early_due is None or state.early_due > t:
        return []
    state.early_due = None
    threshold = _threshold(state, policy, store) if state.stage in ELIGIBLE else None
    score = _score(state, t, policy)
    if threshold is None or score >= threshold:
        return []
    campaign = policy.campaigns.churned
    valid = int(campaign.valid_for.total_seconds())
    offer = None
    if campaign.coupon_percent > 0:
        offer = Offer(type=offer_type(state, policy), percent=campaign.coupon_percent,
                      min_spend=campaign.min_spend, valid=valid, boost=True)
    return [Proposal(kind=KIND.value, ref=f"early_win_back:{state.last_order}", rule="early_win_back",
                     valid=valid, stage=state.stage, offer=offer,
                     products=products_for(state, t, campaign, store),
                     detail=f"repurchase score {score:.2f} < {threshold:g} ({_segment(state, policy, store)})",
                     since=t)]


def _segment(state: CustomerState, policy: Policy, store: StoreView) -> str:
    tier = tier_of(state, policy)
    return f"{tier}, top value" if store.in_top_value(state) else tier


def next_due(state: CustomerState, policy: Policy) -> int | None:
    return state.early_due


def sent(state: CustomerState, proposal: Proposal, t: int) -> None:
    return None


def on_erasure(state: CustomerState, effects) -> None:
    return None
