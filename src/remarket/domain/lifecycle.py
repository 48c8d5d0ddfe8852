"""Where a customer stands at a moment: activity, life-cycle stage, value tier, RFM, preference.

Each rule is a small pure function of the state and a time (epoch seconds). `next_change_after`
functions tell when a rule's answer changes by time alone, so the core can schedule a tick.
"""
from __future__ import annotations

from typing import NamedTuple

from remarket.domain.policy import Policy
from remarket.domain.state import CustomerState, StateFacts
from remarket.domain.vocabulary import Activity, Stage

DAY = 86_400
ACTIVE, LAPSING, INACTIVE = Activity.ACTIVE, Activity.LAPSING, Activity.INACTIVE
LAPSED_STAGES = (Stage.DECLINING, Stage.CHURNED)


# ---------------------------------------------------------------- activity

def _activity(times: list[int], now: int, window: int, minimum: int, inactive_after: int) -> Activity:
    """`times` holds the latest engagements, oldest first (at least `minimum` of them kept)."""
    if len(times) >= minimum and now - times[-minimum] <= window:
        return ACTIVE
    if times and now - times[-1] <= inactive_after:
        return LAPSING
    return INACTIVE


def _activity_change(times: list[int], now: int, window: int, minimum: int, inactive_after: int) -> int | None:
    """The first second after `now` at which `_activity` changes by time alone (no list built:
    asked after every folded event)."""
    if not times:
        return None
    earliest = None
    if len(times) >= minimum and (t := times[-minimum] + window + 1) > now:
        earliest = t
    if (t := times[-1] + inactive_after + 1) > now and (earliest is None or t < earliest):
        earliest = t
    return earliest


def email_activity(state: CustomerState | StateFacts, now: int, policy: Policy) -> Activity:
    s = policy.seconds
    return _activity(state.email_engagements, now, s.email_active_window, policy.activity.email_active_min,
                     s.email_inactive_after)


def site_activity(state: CustomerState | StateFacts, now: int, policy: Policy) -> Activity:
    s = policy.seconds
    return _activity(state.site_visits, now, s.site_active_window, policy.activity.site_active_min,
                     s.site_inactive_after)


def is_active(state: CustomerState, now: int, policy: Policy) -> bool:
    return email_activity(state, now, policy) == ACTIVE or site_activity(state, now, policy) == ACTIVE


def next_activity_change(state: CustomerState, now: int, policy: Policy) -> int | None:
    s = policy.seconds
    email = _activity_change(state.email_engagements, now, s.email_active_window, policy.activity.email_active_min,
                             s.email_inactive_after)
    site = _activity_change(state.site_visits, now, s.site_active_window, policy.activity.site_active_min,
                            s.site_inactive_after)
    return email if site is None else site if email is None else min(email, site)


# ---------------------------------------------------------------- life-cycle stage

def personal_cycle(state: CustomerState, policy: Policy) -> int:
    """Mean inter-purchase interval (s); the store-wide default for one-time buyers."""
    if state.orders >= 2 and state.first_order is not None and state.last_order is not None:
        mean = (state.last_order - state.first_order) / (state.orders - 1)
        return max(int(mean), policy.seconds.min_cycle)
    return policy.seconds.default_cycle


class Overdue(NamedTuple):  # asked for several times per event: a tuple is cheaper to build than a dataclass
    """Recency (s since the last order) beyond which the customer is declining / churned."""

    declining_after: int
    churned_after: int


def overdue_thresholds(state: CustomerState, policy: Policy) -> Overdue:
    cycle, rules = personal_cycle(state, policy), policy.lifecycle
    churned = min(int(rules.churned_factor * cycle), policy.seconds.churned_after_max)
    declining = int(rules.declining_factor * cycle)
    if state.orders == 1:
        declining = min(declining, policy.seconds.love_period)  # the love period is over: overdue
    return Overdue(min(declining, churned), churned)


def stage_at(state: CustomerState, now: int, policy: Policy) -> Stage:
    if state.orders <= 0 or state.last_order is None:
        return Stage.PROSPECT
    recency = now - state.last_order
    limits = overdue_thresholds(state, policy)
    if recency > limits.churned_after:
        return Stage.CHURNED
    if recency > limits.declining_after:
        return Stage.DECLINING
    if state.orders >= policy.lifecycle.mature_from_orders:
        return Stage.MATURE
    if state.orders >= policy.lifecycle.growth_from_orders:
        return Stage.GROWTH
    return Stage.NEW


def next_stage_change(state: CustomerState, now: int, policy: Policy) -> int | None:
    """The first second after `now` at which time alone moves the stage, if any."""
    if state.orders <= 0 or state.last_order is None:
        return None
    limits = overdue_thresholds(state, policy)
    for after in (limits.declining_after, limits.churned_after):
        if (t := state.last_order + after + 1) > now:
            return t
    return None


STAGE_RANK = {Stage.PROSPECT: 0, Stage.NEW: 1, Stage.GROWTH: 1, Stage.MATURE: 1, Stage.DECLINING: 2, Stage.CHURNED: 3}
"""Order of stages by how overdue they are (for monotonicity and for 'entering a lapsed stage')."""


# ---------------------------------------------------------------- tier, RFM, preference

def tier_of(state: CustomerState | StateFacts, policy: Policy) -> str:
    tiers = policy.tier
    value, levels = ((state.spent, tiers.amount_levels) if tiers.basis == "amount"
                     else (state.orders, tiers.order_levels))
    name = levels[0].name
    for level in levels:
        if value >= level.min:
            name = level.name
    return name


def rfm_of(state: CustomerState, now: int, policy: Policy) -> tuple[int, int, int] | None:
    if state.orders <= 0 or state.last_order is None:
        return None
    cuts = policy.rfm
    recency_days = (now - state.last_order) / DAY
    recency = 5 - sum(recency_days > cut for cut in cuts.recency_days)
    frequency = 1 + sum(state.orders >= cut for cut in cuts.frequency_orders)
    monetary = 1 + sum(state.spent >= cut for cut in cuts.monetary_amount)
    return recency, frequency, monetary


def promotion_preference(state: CustomerState, policy: Policy) -> str | None:
    """The most redeemed coupon type (ties: alphabetical, to stay deterministic), once redeemed often enough."""
    best = None
    for kind, count in sorted(state.redeemed.items()):
        if count >= policy.preference.min_redemptions and (best is None or count > state.redeemed[best]):
            best = kind
    return best
