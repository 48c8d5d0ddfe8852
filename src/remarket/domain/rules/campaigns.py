"""Life-cycle campaigns: on entering a stage, that stage's message (new: love-period care, growth:
notices, mature: small coupons, declining: a medium coupon, churned: the win-back), repeated on
the customer's own cycle or a fixed cadence where the policy says so.

Pending: `campaign_due` / `campaign_seq`, set on entering a stage (`start`). A repeat due shortly
before a festival waits for it. Campaigns name the products the customer looked at and did not
buy. A campaign held past quiet hours is withdrawn when the customer leaves its stage.
"""
from __future__ import annotations

from remarket.domain.actions import ActionKind
from remarket.domain.calendar import customer_zone, next_festival_start
from remarket.domain.lifecycle import personal_cycle
from remarket.domain.policy import CampaignPolicy, Policy
from remarket.domain.rules.coupons import offer_type
from remarket.domain.store import UNKNOWN, StoreView
from remarket.domain.state import CustomerState, Offer, Proposal, from_ts, ring_contains, to_ts
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


def start(state: CustomerState, t: int, policy: Policy) -> None:
    """The customer entered `state.stage` at `t`: its campaign falls due after the stage's delay."""
    campaign = campaign_policy(state.stage, policy)
    state.campaign_due = t + _secs(campaign.delay) if campaign is not None and campaign.enabled else None


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


def with_popular(own: tuple[str, ...], t: int, count: int, store: StoreView) -> tuple[str, ...]:
    """The customer's own products, then up to `count` of the store's popular ones not already named."""
    if count <= 0:
        return own
    extra = [p for p in store.popular(t, count + len(own)) if p not in own][:count]
    return (*own, *extra)


def products_for(state: CustomerState, t: int, campaign: CampaignPolicy, store: StoreView) -> tuple[str, ...]:
    return with_popular(looked_not_bought(state, campaign.products), t, campaign.popular, store)


def due(state: CustomerState, t: int, policy: Policy, effects, store: StoreView = UNKNOWN) -> list[Proposal]:
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
        products=products_for(state, t, campaign, store),
        detail=f"stage {state.stage} since {from_ts(state.stage_since).isoformat()}, message {state.campaign_seq + 1}",
        since=t)
    state.campaign_seq += 1
    state.campaign_due = t + cadence if cadence is not None else None
    return [proposal]


def next_due(state: CustomerState, policy: Policy) -> int | None:
    return state.campaign_due


def sent(state: CustomerState, proposal: Proposal, t: int) -> None:
    return None


def on_erasure(state: CustomerState, effects) -> None:
    if state.campaign_due is not None and (kind := campaign_kind(state.stage)) is not None:
        effects.suppress(kind, Suppression.ERASURE)
