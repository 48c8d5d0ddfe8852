"""How and when a decided message may reach the customer: channel, quiet hours, caps, holdout.

`deliver` is the one gate every action passes: it either returns the Action (possibly deferred
past quiet hours, possibly marked holdout) or records why it was suppressed.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

from remarket.domain.actions import Action, ActionKind, Coupon, CouponUnit, Reason, Withdrawal, action_id_for
from remarket.domain.caps import capped, remember_contact
from remarket.domain.calendar import customer_zone, festival_on, next_allowed
from remarket.domain.events import Channel
from remarket.domain.lifecycle import email_activity, site_activity, tier_of
from remarket.domain.policy import Policy
from remarket.domain.score import repurchase_score
from remarket.domain.rules import withdrawals
from remarket.domain.rules.grades import concessions
from remarket.domain.store import UNKNOWN, StoreView
from remarket.domain.state import CustomerState, Offer, PendingSend, Proposal, from_ts, to_ts
from remarket.domain.vocabulary import Activity, Deferral, Expiry, Suppression


@dataclass(slots=True)  # one per call of the core: no per-instance __dict__
class Effects:
    """What one call of the core produced, besides the new state."""

    actions: list[Action] = field(default_factory=list)
    suppressions: list[tuple[str, str]] = field(default_factory=list)
    transitions: list[tuple[str, str]] = field(default_factory=list)
    withdrawals: list[Withdrawal] = field(default_factory=list)
    deferred: list[tuple[str, str]] = field(default_factory=list)  # (kind, reason): waits for a later slot
    expired: list[tuple[str, str]] = field(default_factory=list)  # (kind, reason): gave up waiting
    erased: bool = False  # an erasure request was carried out during this call

    def suppress(self, kind: str, reason: Suppression | str) -> None:
        self.suppressions.append((str(kind), Suppression(reason)))  # an unknown reason raises

    def defer(self, kind: str, reason: Deferral | str) -> None:
        self.deferred.append((str(kind), Deferral(reason)))

    def expire(self, kind: str, reason: Expiry | str) -> None:
        self.expired.append((str(kind), Expiry(reason)))


def in_holdout(customer_id: str, policy: Policy) -> bool:
    """Stable across runs, processes and policy edits other than share/salt."""
    share = policy.holdout.share
    if share <= 0:
        return False
    digest = hashlib.blake2b(f"{policy.holdout.salt}\x1f{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def consented(state: CustomerState, channel: Channel, policy: Policy) -> bool:
    granted = state.consent.get(channel.value, policy.contact.default_consent.get(channel, False))
    if channel is Channel.EMAIL and state.email_bounces >= policy.contact.email_bounce_limit:
        return False
    return granted


def choose_channel(state: CustomerState, now: int, policy: Policy) -> Channel | None:
    """Email-active customers: email first; active on the site only: in-app first; neither: SMS
    first. None: no consented channel."""
    return _channel(state, email_activity(state, now, policy), now, policy)


def _channel(state: CustomerState, email: Activity, now: int, policy: Policy) -> Channel | None:
    """`choose_channel`, the customer's email activity at `now` known already."""
    if email is Activity.ACTIVE:
        preferred = policy.contact.active_channels
    elif site_activity(state, now, policy) is Activity.ACTIVE:
        preferred = policy.contact.site_active_channels
    else:
        preferred = policy.contact.inactive_channels
    return next((c for c in preferred if consented(state, c, policy)), None)


def activity_factor(state: CustomerState, now: int, policy: Policy) -> float:
    """Active customers get smaller discounts, inactive ones bigger (every coupon). Activity here is
    email engagement: the site visits and product views that trigger a coupon would make everyone
    who gets one 'active'."""
    return _factor(email_activity(state, now, policy), policy)


def _factor(activity: Activity, policy: Policy) -> float:
    if activity is Activity.ACTIVE:
        return policy.coupon.active_factor
    if activity is Activity.INACTIVE:
        return policy.coupon.inactive_factor
    return 1.0


def coupon_for(offer: Offer, send_after, tz, policy: Policy, factor: float = 1.0) -> tuple[Coupon | None, str | None]:
    """The coupon an offer becomes: sized by activity (`factor`) and festival, in the offer's type.
    Every type keeps the incentive ladder: percent types scale; amount types scale from their value
    at `reference_percent`; a type worth 0 (the whole shipping fee) adds a discount on top instead."""
    percent, note = offer.percent * factor, None
    if offer.boost and (festival := festival_on(send_after, tz, policy)) is not None:
        percent, note = percent * festival.coupon_boost, f"festival: {festival.name}"
    if percent <= 0:
        return None, note
    types = policy.coupon_types
    percent = min(percent, types.max_percent)
    valid_until = send_after + timedelta(seconds=offer.valid)
    if offer.type in types.percent_types:
        return Coupon(type=offer.type, value=round(percent, 1), unit=CouponUnit.PERCENT, min_spend=offer.min_spend,
                      valid_until=valid_until), note
    amount = types.amount_by_type.get(offer.type, 0.0)
    value = round(amount * percent / types.reference_percent, 2) if amount > 0 else 0.0
    extra = round(max(0.0, percent - types.reference_percent), 1) if amount <= 0 else 0.0
    return Coupon(type=offer.type, value=value, unit=CouponUnit.AMOUNT, min_spend=offer.min_spend,
                  valid_until=valid_until, extra_percent=extra), note


_REFERRAL_KINDS = frozenset({ActionKind.LIFECYCLE_GROWTH, ActionKind.LIFECYCLE_MATURE, ActionKind.FESTIVAL_NOTICE})


@dataclass(frozen=True)
class Capped:
    """The caps hold the message back at `send_ts` (it may wait for a later slot)."""

    send_ts: int
    bonus: int = 0  # the grade's room beyond the general cap, for finding the next slot


def deliver(state: CustomerState, effects: Effects, policy: Policy, proposal: Proposal,
            now: int, store: StoreView = UNKNOWN) -> Action | Capped | None:
    """Send `proposal` at `now` (quiet hours and caps applied): the Action, Capped, or None
    (suppressed, reason recorded). `store`: store-wide knowledge (the top-value group)."""
    kind = ActionKind(proposal.kind)
    email = email_activity(state, now, policy)  # read four times below; nothing here changes it
    channel = _channel(state, email, now, policy)
    if channel is None:
        effects.suppress(kind, Suppression.NO_CONSENT)
        return None
    tz = customer_zone(state.timezone, policy)
    decided_at = from_ts(now)
    send_after = decided_at
    deferred = False
    if kind.value not in policy.quiet_hours.exempt_kinds:
        send_after = next_allowed(decided_at, tz, policy.quiet_hours)
        deferred = send_after != decided_at
    send_ts = to_ts(send_after)
    grade = concessions(state, policy, store)
    if kind.value not in policy.contact.cap_exempt_kinds and capped(state, send_ts, policy, grade.cap_bonus):
        return Capped(send_ts, grade.cap_bonus)
    tier = tier_of(state, policy)
    top_value = store.in_top_value(state)
    offer = proposal.offer
    factor = _factor(email, policy) * grade.coupon_factor
    coupon, note = coupon_for(offer, send_after, tz, policy, factor) if offer is not None else (None, None)
    referral = (grade.referral_ask and kind in _REFERRAL_KINDS
                and email is Activity.ACTIVE)
    if deferred:
        effects.suppress(kind, Suppression.QUIET_HOURS_DEFERRED)
    # counted by whoever routes action.holdout, not here
    holdout = kind.value in policy.holdout.kinds and in_holdout(state.customer_id, policy)
    remember_contact(state, send_ts, policy)
    waited = f"waited {(now - proposal.since) // 3600} h for a slot" if now > proposal.since else None
    action = Action(
        action_id=action_id_for(state.customer_id, kind, proposal.ref),
        kind=kind,
        customer_id=state.customer_id,
        channel=channel,
        send_after=send_after,
        expires_at=send_after + timedelta(seconds=proposal.valid),
        coupon=coupon,
        product_ids=list(proposal.products),
        order_id=proposal.order,
        reason=Reason(
            rule=proposal.rule, stage=state.stage, tier=tier, top_value=top_value,
            email_activity=email,
            site_activity=site_activity(state, now, policy),
            repurchase_score=repurchase_score(state, now, policy.score),
            triggering_event_ids=list(proposal.events)[:50],
            detail="; ".join(p for p in (proposal.detail, note, waited) if p) or None,
        ),
        policy_version=policy.version,
        holdout=holdout,
        created_at=decided_at,
        referral_ask=referral,
    )
    effects.actions.append(action)
    if send_ts > now:  # held by the sender until send_after: withdrawable until then
        withdrawals.remember(state, PendingSend(
            id=action.action_id, kind=kind.value, ch=channel.value, at=send_ts, stage=state.stage,
            order=proposal.order, cart=proposal.cart, products=proposal.products, hold=holdout), policy)
    return action
