"""One-click payment reminder: an order placed (or a checkout started) and not paid is reminded
once after `reminder.delay`.

Pending: `open_orders` / `open_checkouts`, filled by fold.py. Cancelled by payment or
cancellation before the delay (fold.py), withdrawn if it becomes moot while held past quiet hours
(withdrawals.py), suppressed when the customer was reminded within `skip_if_reminded_within`, or
(a seller's option) paid another order within `skip_if_paid_within`.
"""
from __future__ import annotations

from remarket.domain.actions import ActionKind
from remarket.domain.policy import Policy
from remarket.domain.store import UNKNOWN, StoreView
from remarket.domain.state import CustomerState, Proposal, ring_add
from remarket.domain.vocabulary import Suppression

KIND = ActionKind.PAYMENT_REMINDER


def _remind(state: CustomerState, key: str, order, t: int, policy: Policy, effects, *,
            checkout: bool) -> Proposal | None:
    rules = policy.reminder
    if order.cart_id:
        state.closed_carts = ring_add(state.closed_carts, order.cart_id, policy.limits.closed_ids)
    if not checkout:  # one reminder decision per order, even if it is placed again
        state.closed_orders = ring_add(state.closed_orders, key, policy.limits.closed_ids)
    if state.last_reminded is not None and t - state.last_reminded <= policy.seconds.skip_if_reminded_within:
        effects.suppress(KIND, Suppression.RECENTLY_REMINDED)
        return None
    if (rules.skip_if_paid_recently and state.last_order is not None
            and t - state.last_order <= policy.seconds.skip_if_paid_within):
        effects.suppress(KIND, Suppression.RECENTLY_PAID)
        return None
    return Proposal(kind=KIND.value, ref=f"cart:{key}" if checkout else f"order:{key}",
                    rule="unpaid_checkout_reminder" if checkout else "unpaid_order_reminder",
                    valid=int(rules.valid_for.total_seconds()), stage=state.stage, order=None if checkout else key,
                    cart=order.cart_id, events=(order.event_id,),
                    detail=f"cart {order.cart_id}" if checkout else None, since=t)


def due(state: CustomerState, t: int, policy: Policy, effects, store: StoreView = UNKNOWN) -> list[Proposal]:
    if not policy.reminder.enabled:
        return []
    delay = policy.seconds.reminder_delay
    proposals = []
    for checkout, pending in ((True, state.open_checkouts), (False, state.open_orders)):
        for _, key in sorted((o.at, key) for key, o in pending.items() if o.at + delay <= t):
            if (proposal := _remind(state, key, pending.pop(key), t, policy, effects, checkout=checkout)):
                proposals.append(proposal)
    return proposals


def next_due(state: CustomerState, policy: Policy) -> int | None:
    # Asked after every folded event: a plain loop, and most customers have nothing open at all.
    if not policy.reminder.enabled or not (state.open_orders or state.open_checkouts):
        return None
    earliest = None
    for pending in (state.open_orders, state.open_checkouts):
        for order in pending.values():
            if earliest is None or order.at < earliest:
                earliest = order.at
    return None if earliest is None else earliest + policy.seconds.reminder_delay


def sent(state: CustomerState, proposal: Proposal, t: int) -> None:
    state.last_reminded = t


def on_erasure(state: CustomerState, effects) -> None:
    for _ in range(len(state.open_orders) + len(state.open_checkouts)):
        effects.suppress(KIND, Suppression.ERASURE)
