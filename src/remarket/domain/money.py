"""Money in one currency: every amount is converted to the policy's base currency on arrival.

An event whose currency the rate table does not know is refused by the core (the shell
dead-letters it as `rejected_by_core` with the message below): adding a 12,000 JPY order as if
it were 12,000 EUR would rank the customer platinum.
"""
from __future__ import annotations

from remarket.domain.events import CartEvent, InboundEvent, OrderEvent
from remarket.domain.policy import Policy


def currency_of(event: CartEvent | OrderEvent, policy: Policy) -> str:
    """The event's currency; an event that does not name one is in the base currency."""
    return event.currency if "currency" in event.model_fields_set else policy.money.base_currency


def unknown_currency(event: InboundEvent, policy: Policy) -> str | None:
    """Why the event's amounts cannot be converted, or None when they can."""
    if not isinstance(event, (CartEvent, OrderEvent)):
        return None
    currency = currency_of(event, policy)
    if currency in policy.money.rates or currency == policy.money.base_currency:
        return None
    known = ", ".join(sorted({policy.money.base_currency, *policy.money.rates}))
    return (f"currency {currency!r} has no rate in the policy (money.rates knows {known}): "
            f"add {currency} = <value of 1 {currency} in {policy.money.base_currency}> under [money.rates]")


def to_base(amount: float, event: CartEvent | OrderEvent, policy: Policy) -> float:
    currency = currency_of(event, policy)
    if currency == policy.money.base_currency:
        return amount
    return round(amount * policy.money.rates[currency], 2)
