"""Timed targeted coupon: attention to a product (repeat views, a favourite, a cart add) and no
order for `coupon.delay` brings a coupon for it, once per product per `coupon.once_per`.

Pending: `products` (attention, filled by fold.py; ordering the product forgets it). Sized by
stage here, by email activity, grade and festival at delivery (contact.coupon_for); in the
customer's preferred promotion type.
"""
from __future__ import annotations

from remarket.domain.actions import ActionKind
from remarket.domain.events import PromotionType
from remarket.domain.lifecycle import promotion_preference
from remarket.domain.policy import Policy
from remarket.domain.store import UNKNOWN, StoreView
from remarket.domain.state import CustomerState, Offer, Proposal
from remarket.domain.vocabulary import Suppression

KIND = ActionKind.TARGETED_COUPON


def offer_type(state: CustomerState, policy: Policy) -> PromotionType:
    """The customer's promotion preference (learned from redemptions), or the policy's default."""
    preferred = promotion_preference(state, policy)
    return PromotionType(preferred) if preferred else policy.preference.default


def due(state: CustomerState, t: int, policy: Policy, effects, store: StoreView = UNKNOWN) -> list[Proposal]:
    rules = policy.coupon
    if not rules.enabled:
        return []
    delay, once_per = policy.seconds.coupon_delay, policy.seconds.coupon_once_per
    due_now = sorted((a.since, product) for product, a in state.products.items() if a.since and a.since + delay <= t)
    waiting_for = {p for w in state.waiting if w.kind == KIND for p in w.products}
    valid = int(rules.valid_for.total_seconds())
    proposals = []
    for _, product in due_now:
        attention = state.products.pop(product)
        last = state.couponed.get(product)
        if (last is not None and t - last < once_per) or product in waiting_for:
            effects.suppress(KIND, Suppression.ONCE_PER_WINDOW)
            continue
        offer = Offer(type=offer_type(state, policy), percent=rules.percent_by_stage.get(state.stage, 0.0),
                      min_spend=rules.min_spend, valid=valid)
        proposals.append(Proposal(
            kind=KIND.value, ref=f"product:{product}:{attention.since}", rule="product_attention_coupon",
            valid=valid, stage=state.stage, offer=offer, products=(product,),
            events=(attention.event_id,) if attention.event_id else (), since=t))
    if state.couponed and (due_now or min(state.couponed.values()) <= t - once_per):
        kept = {p: at for p, at in state.couponed.items() if t - at < once_per}
        state.couponed = dict(sorted(kept.items(), key=lambda kv: kv[1])[-policy.limits.couponed_products:])
    return proposals


def next_due(state: CustomerState, policy: Policy) -> int | None:
    # Asked after every folded event: a plain loop over the (few) products with attention.
    if not policy.coupon.enabled or not state.products:
        return None
    earliest = None
    for attention in state.products.values():
        if attention.since and (earliest is None or attention.since < earliest):
            earliest = attention.since
    return None if earliest is None else earliest + policy.seconds.coupon_delay


def sent(state: CustomerState, proposal: Proposal, t: int) -> None:
    for product in proposal.products:
        state.couponed[product] = t


def on_erasure(state: CustomerState, effects) -> None:
    for _ in range(sum(1 for a in state.products.values() if a.since)):
        effects.suppress(KIND, Suppression.ERASURE)
