"""How each inbound event changes the facts kept about a customer (no decisions here).

`fold(state, event)` runs in event-time order (see process.py for how late arrivals are held).
"""
from __future__ import annotations

from bisect import insort

from remarket.domain.events import CartEvent, ConsentEvent, EmailEvent, InboundEvent, OrderEvent, VisitEvent, event_ts
from remarket.domain.money import to_base
from remarket.domain.policy import Policy
from remarket.domain.state import Attention, CustomerState, OpenOrder, ring_add, ring_contains


def _remember_time(times: list[int], ts: int, keep: int) -> list[int]:
    times = list(times)
    insort(times, ts)
    return times[-keep:]


def _attend(state: CustomerState, product: str, ts: int, event_id: str, policy: Policy, *, strong: bool) -> None:
    """A view counts towards `repeat_views`; a favourite or cart add qualifies at once."""
    rules = policy.coupon
    current = state.products.get(product)
    if current is not None and not current.since and ts - current.last > policy.seconds.attention_window:
        current = None  # old views are forgotten
    views = (current.views if current else 0) + (0 if strong else 1)
    since = current.since if current and current.since else 0
    if not since and (strong or views >= rules.repeat_views):
        since = ts
    last = max(ts, current.last) if current else ts
    state.products[product] = Attention(last=last, views=views, since=since,
                                        event_id=event_id if since == ts else (current.event_id if current else ""))
    if len(state.products) > policy.limits.products:
        oldest = min(state.products, key=lambda p: (state.products[p].last, p))
        del state.products[oldest]


def _forget_attention(state: CustomerState, products, policy: Policy) -> None:
    """Bought: no coupon for it, and campaigns no longer name it as looked at and not bought."""
    for product in products:
        state.products.pop(product, None)
        if product in state.couponed and not ring_contains(state.bought_couponed, product):
            state.bought_couponed = ring_add(state.bought_couponed, product, policy.limits.couponed_products)


def _visit(state: CustomerState, ts: int, policy: Policy) -> None:
    state.site_visits = _remember_time(state.site_visits, ts, policy.activity.site_active_min)


def _fold_visit(state: CustomerState, event: VisitEvent, ts: int, policy: Policy) -> None:
    _visit(state, ts, policy)
    if event.product_id is not None and policy.coupon.enabled:
        _attend(state, event.product_id, ts, event.event_id, policy,
                strong=event.event_type == "visit.favourite")


def _fold_cart(state: CustomerState, event: CartEvent, ts: int, policy: Policy) -> None:
    _visit(state, ts, policy)
    if event.event_type == "cart.add":
        if policy.coupon.enabled:
            for item in event.items:
                _attend(state, item.product_id, ts, event.event_id, policy, strong=True)
        return
    if (not policy.reminder.enabled or not policy.reminder.include_checkouts
            or ring_contains(state.closed_carts, event.cart_id) or event.cart_id in state.open_checkouts):
        return
    state.open_checkouts[event.cart_id] = OpenOrder(at=ts, event_id=event.event_id, cart_id=event.cart_id,
                                                    total=to_base(event.total, event, policy))
    _bound(state.open_checkouts, policy.limits.open_orders)


def _bound(pending: dict[str, OpenOrder], cap: int) -> None:
    while len(pending) > cap:
        del pending[min(pending, key=lambda k: (pending[k].at, k))]


def _close_cart(state: CustomerState, cart_id: str | None, policy: Policy) -> bool:
    """True if that checkout was already reminded (or otherwise closed)."""
    if cart_id is None:
        return False
    was_closed = ring_contains(state.closed_carts, cart_id)
    state.open_checkouts.pop(cart_id, None)
    if not was_closed:
        state.closed_carts = ring_add(state.closed_carts, cart_id, policy.limits.closed_ids)
    return was_closed


def _fold_order(state: CustomerState, event: OrderEvent, ts: int, policy: Policy) -> None:
    order_id, cap = event.order_id, policy.limits.closed_ids
    if event.event_type == "order.placed":
        _visit(state, ts, policy)  # placing an order is being on the site
        if ring_contains(state.paid_orders, order_id) or ring_contains(state.closed_orders, order_id):
            return  # its outcome already arrived
        _forget_attention(state, (item.product_id for item in event.items), policy)
        already_reminded = _close_cart(state, event.cart_id, policy)
        if policy.reminder.enabled and not already_reminded and order_id not in state.open_orders:
            state.open_orders[order_id] = OpenOrder(at=ts, event_id=event.event_id, cart_id=event.cart_id,
                                                    total=to_base(event.total, event, policy),
                                                    coupon_type=event.coupon_type)
            _bound(state.open_orders, policy.limits.open_orders)
    elif event.event_type == "order.paid":
        if ring_contains(state.paid_orders, order_id):
            return
        placed = state.open_orders.pop(order_id, None)
        _close_cart(state, event.cart_id or (placed.cart_id if placed else None), policy)
        _forget_attention(state, (item.product_id for item in event.items), policy)
        state.paid_orders = ring_add(state.paid_orders, order_id, cap)
        state.orders += 1
        total = to_base(event.total, event, policy)
        state.spent = round(state.spent + (total or (placed.total if placed else 0.0)), 2)
        state.first_order = ts if state.first_order is None else min(state.first_order, ts)
        state.last_order = ts if state.last_order is None else max(state.last_order, ts)
        coupon_type = event.coupon_type or (placed.coupon_type if placed else None)
        if coupon_type is not None:
            state.redeemed[coupon_type.value] = state.redeemed.get(coupon_type.value, 0) + 1
    elif event.event_type == "order.cancelled":
        state.open_orders.pop(order_id, None)
        _close_cart(state, event.cart_id, policy)
        if not ring_contains(state.paid_orders, order_id):
            state.closed_orders = ring_add(state.closed_orders, order_id, cap)
    elif event.event_type == "order.refunded":
        # a refund lowers the amount (tiers, RFM monetary); the purchase still happened
        refund_ref = f"refund:{order_id}"
        if not ring_contains(state.closed_orders, refund_ref):
            state.closed_orders = ring_add(state.closed_orders, refund_ref, cap)
            state.spent = max(0.0, round(state.spent - to_base(event.total, event, policy), 2))


def _fold_email(state: CustomerState, event: EmailEvent, ts: int, policy: Policy) -> None:
    if event.event_type in ("email.open", "email.click"):
        state.email_engagements = _remember_time(state.email_engagements, ts, policy.activity.email_active_min)
        state.email_bounces = 0  # it reached them after all
    elif event.event_type == "email.bounce":
        state.email_bounces += 1
    elif event.event_type == "email.unsubscribe":
        state.consent["email"] = False


def _fold_consent(state: CustomerState, event: ConsentEvent, ts: int, policy: Policy) -> None:
    if event.event_type == "consent.updated" and event.channel is not None and event.granted is not None:
        state.consent[event.channel.value] = event.granted
        if event.channel.value == "email" and event.granted:
            state.email_bounces = 0


_FOLDERS = {VisitEvent: _fold_visit, CartEvent: _fold_cart, OrderEvent: _fold_order,
            EmailEvent: _fold_email, ConsentEvent: _fold_consent}


def fold(state: CustomerState, event: InboundEvent, policy: Policy, ts: int | None = None) -> None:
    """Facts keep the event's own time, even for a late event (decisions then happen at once).
    `ts`: that time in epoch seconds, when the caller has it already."""
    if event.context is not None:
        state.timezone = event.context.timezone or state.timezone
        state.country = event.context.country or state.country
    _FOLDERS[type(event)](state, event, event_ts(event) if ts is None else ts, policy)
