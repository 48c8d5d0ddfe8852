"""Nothing moot reaches a customer: withdraw an emitted action that is not yet due.

An action deferred past quiet hours is emitted at once with a later `send_after`. Until then the
state keeps it (`CustomerState.pending`); if the customer pays the order, cancels it, orders the
product, withdraws consent for the channel, moves to another life-cycle stage, or asks to be
erased, the core emits a `Withdrawal` naming its `action_id`, and a sender holding the action
drops it. A withdrawn action also frees its place under the frequency caps.
"""
from __future__ import annotations

from typing import Callable

from remarket.domain.actions import ActionKind, Withdrawal, WithdrawalReason, action_id_for
from remarket.domain.events import ConsentEvent, EmailEvent, InboundEvent, OrderEvent
from remarket.domain.policy import Policy
from remarket.domain.rules import waiting
from remarket.domain.state import CustomerState, PendingSend, Proposal, from_ts
from remarket.domain.vocabulary import Suppression

_REMINDER = ActionKind.PAYMENT_REMINDER.value
_COUPON = ActionKind.TARGETED_COUPON.value
_EARLY_WIN_BACK = ActionKind.WIN_BACK_EARLY.value


def remember(state: CustomerState, pending: PendingSend, policy: Policy) -> None:
    """Keep an emitted action whose send_after lies ahead (the soonest due are dropped first)."""
    kept = sorted([*state.pending, pending], key=lambda p: (p.at, p.id))
    state.pending = kept[-policy.limits.pending_sends:]


def prune(state: CustomerState, t: int) -> None:
    """Actions due at or before `t` may have been sent: they can no longer be withdrawn."""
    if state.pending and state.pending[0].at <= t:
        state.pending = [p for p in state.pending if p.at > t]


def withdraw(state: CustomerState, t: int, reason: WithdrawalReason, policy: Policy, effects,
             matches: Callable[[PendingSend], bool] = lambda p: True) -> None:
    """Withdraw every pending action not yet due at `t` that `matches`."""
    if not state.pending:
        return
    kept = []
    for pending in state.pending:
        if pending.at <= t or not matches(pending):
            kept.append(pending)
            continue
        effects.withdrawals.append(Withdrawal(
            action_id=action_id_for(state.customer_id, "withdrawal", pending.id),
            withdrawn_action_id=pending.id, withdrawn_kind=ActionKind(pending.kind),
            customer_id=state.customer_id, channel=pending.ch, withdrawn_send_after=from_ts(pending.at),
            reason=reason, policy_version=policy.version, holdout=pending.hold, created_at=from_ts(t)))
        _free_contact(state, pending.at)
    state.pending = kept


def _free_contact(state: CustomerState, send_at: int) -> None:
    """The withdrawn message will not be sent: it no longer counts against the caps."""
    if send_at in state.contacts:
        contacts = list(state.contacts)
        contacts.remove(send_at)
        state.contacts = contacts


def on_event(state: CustomerState, event: InboundEvent, t: int, policy: Policy, effects) -> None:
    """What an event (already folded, at logical time `t`) makes moot."""
    if not state.pending and not state.waiting:
        return
    if isinstance(event, OrderEvent):
        _on_order(state, event, t, policy, effects)
    elif isinstance(event, EmailEvent) and event.event_type == "email.unsubscribe":
        withdraw(state, t, WithdrawalReason.CONSENT_WITHDRAWN, policy, effects, lambda p: p.ch == "email")
    elif isinstance(event, ConsentEvent) and event.event_type == "consent.updated" and event.granted is False:
        channel = event.channel.value if event.channel is not None else None
        withdraw(state, t, WithdrawalReason.CONSENT_WITHDRAWN, policy, effects, lambda p: p.ch == channel)


def _on_order(state: CustomerState, event: OrderEvent, t: int, policy: Policy, effects) -> None:
    order, cart = event.order_id, event.cart_id
    bought = {item.product_id for item in event.items}

    def about_this_order(p: PendingSend | Proposal) -> bool:
        if p.kind == _EARLY_WIN_BACK:  # any payment makes an early win-back moot
            return event.event_type == "order.paid"
        return p.kind == _REMINDER and (p.order == order or (cart is not None and p.cart == cart))

    if event.event_type == "order.placed" and cart is not None:
        # the checkout being reminded became this order: its payment or cancellation settles it
        state.pending = [p.model_copy(update={"order": order}) if p.kind == _REMINDER and p.cart == cart
                         and p.order is None else p for p in state.pending]
        state.waiting = [p.model_copy(update={"order": order}) if p.kind == _REMINDER and p.cart == cart
                         and p.order is None else p for p in state.waiting]
    reason = {"order.paid": WithdrawalReason.ORDER_PAID, "order.cancelled": WithdrawalReason.ORDER_CANCELLED}
    if event.event_type in reason:
        withdraw(state, t, reason[event.event_type], policy, effects, about_this_order)
        waiting.drop(state, Suppression(reason[event.event_type]), effects, about_this_order)
    if bought and event.event_type in ("order.placed", "order.paid"):

        def for_a_bought_product(p: PendingSend | Proposal) -> bool:
            return p.kind == _COUPON and bool(bought.intersection(p.products))

        withdraw(state, t, WithdrawalReason.PRODUCT_ORDERED, policy, effects, for_a_bought_product)
        waiting.drop(state, Suppression.PRODUCT_ORDERED, effects, for_a_bought_product)


def on_stage_change(state: CustomerState, t: int, policy: Policy, effects) -> None:
    """A campaign decided for the stage the customer just left is superseded."""

    def for_another_stage(p: PendingSend | Proposal) -> bool:
        return p.kind.startswith("lifecycle_") and p.stage != state.stage

    withdraw(state, t, WithdrawalReason.STAGE_CHANGED, policy, effects, for_another_stage)
    waiting.drop(state, Suppression.STAGE_CHANGED, effects, for_another_stage)


def on_erasure(state: CustomerState, t: int, policy: Policy, effects) -> None:
    withdraw(state, t, WithdrawalReason.ERASURE, policy, effects)
    waiting.drop(state, Suppression.ERASURE, effects)
