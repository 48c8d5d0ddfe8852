"""Time-driven rules: what falls due at a moment, and when the next thing will.

`evaluate(state, t)` handles everything due at or before `t` (stage moves, payment reminders,
targeted coupons, life-cycle campaigns); `next_due(state)` is the earliest later moment at which
`evaluate` would do anything. Items are removed or rescheduled once decided, so evaluating the
same moment twice does nothing the second time.
"""
from __future__ import annotations

from remarket.domain.actions import ActionKind
from remarket.domain.calendar import customer_zone, next_festival_start
from remarket.domain.contact import Capped, Effects, deliver
from remarket.domain.events import PromotionType
from remarket.domain.lifecycle import (
    LAPSED_STAGES, is_active, next_activity_change, next_stage_change, personal_cycle, promotion_preference,
    stage_at,
)
from remarket.domain.policy import CampaignPolicy, Policy
from remarket.domain.rules import festivals, waiting, withdrawals
from remarket.domain.state import CustomerState, Offer, Proposal, from_ts, ring_add, ring_contains, to_ts
from remarket.domain.vocabulary import Stage, Suppression

_CAMPAIGN_KIND = {
    Stage.NEW: ActionKind.LIFECYCLE_NEW, Stage.GROWTH: ActionKind.LIFECYCLE_GROWTH,
    Stage.MATURE: ActionKind.LIFECYCLE_MATURE, Stage.DECLINING: ActionKind.LIFECYCLE_DECLINING,
    Stage.CHURNED: ActionKind.LIFECYCLE_CHURNED,
}


def _secs(duration) -> int:
    return int(duration.total_seconds())


def campaign_policy(stage: str, policy: Policy) -> CampaignPolicy | None:
    return getattr(policy.campaigns, stage, None) if stage in _CAMPAIGN_KIND else None


def campaign_kind(stage: str) -> ActionKind | None:
    return _CAMPAIGN_KIND.get(stage)


def offer_type(state: CustomerState, policy: Policy) -> PromotionType:
    preferred = promotion_preference(state, policy)
    return PromotionType(preferred) if preferred else policy.preference.default


# ---------------------------------------------------------------- stage

def update_stage(state: CustomerState, t: int, policy: Policy, effects: Effects) -> None:
    stage = stage_at(state, t, policy)
    if stage == state.stage:
        festivals.schedule(state, t, policy)
        return
    effects.transitions.append((state.stage, stage))
    if state.stage in LAPSED_STAGES and stage not in LAPSED_STAGES:
        state.reactivations += 1
    state.stage, state.stage_since, state.campaign_seq = stage, t, 0
    withdrawals.on_stage_change(state, t, policy, effects)
    campaign = campaign_policy(stage, policy)
    state.campaign_due = t + _secs(campaign.delay) if campaign is not None and campaign.enabled else None
    festivals.schedule(state, t, policy)


# ---------------------------------------------------------------- payment reminders

def _remind(state: CustomerState, key: str, order, t: int, policy: Policy, effects: Effects,
            *, checkout: bool) -> Proposal | None:
    rules = policy.reminder
    kind = ActionKind.PAYMENT_REMINDER
    if order.cart_id:
        state.closed_carts = ring_add(state.closed_carts, order.cart_id, policy.limits.closed_ids)
    if not checkout:  # one reminder decision per order, even if it is placed again
        state.closed_orders = ring_add(state.closed_orders, key, policy.limits.closed_ids)
    if state.last_reminded is not None and t - state.last_reminded <= policy.seconds.skip_if_reminded_within:
        effects.suppress(kind, Suppression.RECENTLY_REMINDED)
        return None
    if (rules.skip_if_paid_recently and state.last_order is not None
            and t - state.last_order <= policy.seconds.skip_if_paid_within):
        effects.suppress(kind, Suppression.RECENTLY_PAID)
        return None
    return Proposal(kind=kind.value, ref=f"cart:{key}" if checkout else f"order:{key}",
                    rule="unpaid_checkout_reminder" if checkout else "unpaid_order_reminder",
                    valid=_secs(rules.valid_for), stage=state.stage, order=None if checkout else key,
                    cart=order.cart_id, events=(order.event_id,),
                    detail=f"cart {order.cart_id}" if checkout else None, since=t)


def _due_reminders(state: CustomerState, t: int, policy: Policy, effects: Effects) -> list[Proposal]:
    delay = policy.seconds.reminder_delay
    proposals = []
    for checkout, pending in ((True, state.open_checkouts), (False, state.open_orders)):
        due = sorted((o.at, key) for key, o in pending.items() if o.at + delay <= t)
        for _, key in due:
            if (proposal := _remind(state, key, pending.pop(key), t, policy, effects, checkout=checkout)):
                proposals.append(proposal)
    return proposals


# ---------------------------------------------------------------- targeted coupons

def _due_coupons(state: CustomerState, t: int, policy: Policy, effects: Effects) -> list[Proposal]:
    rules = policy.coupon
    delay, once_per = policy.seconds.coupon_delay, policy.seconds.coupon_once_per
    due = sorted((a.since, product) for product, a in state.products.items() if a.since and a.since + delay <= t)
    waiting_for = {p for w in state.waiting if w.kind == ActionKind.TARGETED_COUPON for p in w.products}
    proposals = []
    for _, product in due:
        attention = state.products.pop(product)
        last = state.couponed.get(product)
        if (last is not None and t - last < once_per) or product in waiting_for:
            effects.suppress(ActionKind.TARGETED_COUPON, Suppression.ONCE_PER_WINDOW)
            continue
        offer = Offer(type=offer_type(state, policy), percent=rules.percent_by_stage.get(state.stage, 0.0),
                      min_spend=rules.min_spend, valid=_secs(rules.valid_for))
        proposals.append(Proposal(
            kind=ActionKind.TARGETED_COUPON.value, ref=f"product:{product}:{attention.since}",
            rule="product_attention_coupon", valid=_secs(rules.valid_for), stage=state.stage, offer=offer,
            products=(product,), events=(attention.event_id,) if attention.event_id else (), since=t))
    if state.couponed and (due or min(state.couponed.values()) <= t - once_per):
        kept = {p: at for p, at in state.couponed.items() if t - at < once_per}
        state.couponed = dict(sorted(kept.items(), key=lambda kv: kv[1])[-policy.limits.couponed_products:])
    return proposals


# ---------------------------------------------------------------- life-cycle campaigns

def _cadence(state: CustomerState, campaign: CampaignPolicy, policy: Policy) -> int | None:
    if campaign.cadence == "once":
        return None
    if campaign.cadence == "fixed":
        return _secs(campaign.every)
    cycle = personal_cycle(state, policy)
    return min(max(cycle, _secs(campaign.cycle_min)), _secs(campaign.cycle_max))


def looked_not_bought(state: CustomerState, limit: int) -> tuple[str, ...]:
    """Products the customer looked at (viewed, favourited, carted) and did not buy since, most
    recent first (by the last view, or the coupon sent for it): current attention and products
    couponed recently and not bought after."""
    if limit <= 0:
        return ()
    latest = {p: a.last for p, a in state.products.items()}
    for product, at in state.couponed.items():
        if not ring_contains(state.bought_couponed, product):
            latest[product] = max(at, latest.get(product, at))
    return tuple(p for p, _ in sorted(latest.items(), key=lambda kv: (-kv[1], kv[0]))[:limit])


def _due_campaign(state: CustomerState, t: int, policy: Policy, effects: Effects) -> list[Proposal]:
    if state.campaign_due is None or state.campaign_due > t:
        return []
    campaign, kind = campaign_policy(state.stage, policy), campaign_kind(state.stage)
    if campaign is None or kind is None or not campaign.enabled:
        state.campaign_due = None
        return []
    cadence = _cadence(state, campaign, policy)
    if cadence is not None and state.campaign_seq > 0:  # a repeat can wait a few days for a festival
        festival = next_festival_start(from_ts(t), customer_zone(state.timezone, policy), policy,
                                       policy.festivals.hold_cadence_within)
        if festival is not None:
            state.campaign_due = to_ts(festival)
            return []
    offer = None
    if campaign.coupon_percent > 0:
        offer = Offer(type=offer_type(state, policy), percent=campaign.coupon_percent,
                      min_spend=campaign.min_spend, valid=_secs(campaign.valid_for), boost=True)
    proposal = Proposal(
        kind=kind.value, ref=f"stage:{state.stage}:{state.stage_since}:{state.campaign_seq}",
        rule=f"{state.stage}_campaign", valid=_secs(campaign.valid_for), stage=state.stage, offer=offer,
        products=looked_not_bought(state, campaign.products),
        detail=f"stage {state.stage} since {from_ts(state.stage_since).isoformat()}, message {state.campaign_seq + 1}",
        since=t)
    state.campaign_seq += 1
    state.campaign_due = t + cadence if cadence is not None else None
    return [proposal]


# ---------------------------------------------------------------- sending, by priority

def _sent(state: CustomerState, proposal: Proposal, t: int) -> None:
    """What a rule remembers once its message went out."""
    if proposal.kind == ActionKind.PAYMENT_REMINDER:
        state.last_reminded = t
    elif proposal.kind == ActionKind.TARGETED_COUPON:
        for product in proposal.products:
            state.couponed[product] = t


def _send_all(state: CustomerState, proposals: list[Proposal], t: int, policy: Policy, effects: Effects) -> None:
    """Fresh and waiting messages compete for the slot at `t` by priority; the capped ones wait."""
    for proposal in sorted(proposals, key=lambda p: waiting.order_key(p, policy)):
        result = deliver(state, effects, policy, proposal, t)
        if isinstance(result, Capped):
            waiting.park(state, proposal, result.send_ts, policy, effects)
        elif result is not None:
            _sent(state, proposal, t)


# ---------------------------------------------------------------- the two entry points

def evaluate(state: CustomerState, t: int, policy: Policy, effects: Effects) -> None:
    """Everything due at or before `t`, decided at `t`; then `t` becomes the processed time."""
    withdrawals.prune(state, t)
    update_stage(state, t, policy, effects)
    proposals = waiting.take_due(state, t)
    if policy.reminder.enabled:
        proposals += _due_reminders(state, t, policy, effects)
    if policy.coupon.enabled:
        proposals += _due_coupons(state, t, policy, effects)
    proposals += _due_campaign(state, t, policy, effects)
    proposals += festivals.due(state, t, policy)
    if proposals:
        _send_all(state, proposals, t, policy, effects)
    state.upto = t if state.upto is None else max(state.upto, t)


def next_due(state: CustomerState, policy: Policy) -> int | None:
    """Earliest moment after the processed time at which `evaluate` would change something."""
    upto = state.upto if state.upto is not None else -(2**62)
    best = None

    def consider(t: int | None) -> None:
        nonlocal best
        if t is not None and t > upto and (best is None or t < best):
            best = t

    consider(state.campaign_due)
    consider(state.festival_due)
    consider(waiting.next_due(state))
    consider(next_stage_change(state, upto, policy))
    consider(next_activity_change(state, upto, policy))
    if policy.reminder.enabled:
        delay = policy.seconds.reminder_delay
        for pending in (state.open_orders, state.open_checkouts):
            for order in pending.values():
                consider(order.at + delay)
    if policy.coupon.enabled:
        delay = policy.seconds.coupon_delay
        for attention in state.products.values():
            if attention.since:
                consider(attention.since + delay)
    return best
