"""Money in one currency: amounts are converted through the policy's rate table; unknown currencies are refused."""
import pytest

from remarket.domain.lifecycle import tier_of
from remarket.domain.policy import PolicyError
from remarket.domain.process import RejectedEvent, apply

from .factories import T0, Driver, minutes, paid, placed, policy_with

YEN = policy_with(money={"rates": {"EUR": 1.0, "JPY": 0.0061}})


def test_an_order_in_another_currency_is_counted_in_the_base_currency():
    driver = Driver(YEN).feed(paid(T0, "o1", total=12_000.0, currency="JPY")).run_until(T0 + minutes(5))
    assert driver.state.spent == 73.2
    assert tier_of(driver.state, YEN) == "bronze"  # not platinum: 12,000 yen is about 73 euros


def test_refunds_and_unpaid_orders_are_converted_too():
    driver = Driver(YEN).feed(placed(T0, "o1", total=10_000.0, currency="JPY"),
                              paid(T0 + minutes(1), "o1", total=10_000.0, currency="JPY"),
                              paid(T0 + minutes(2), "o2", total=20.0),
                              placed(T0 + minutes(3), "o3", total=5_000.0, currency="JPY"))
    driver.run_until(T0 + minutes(10))
    assert driver.state.open_orders["o3"].total == 30.5
    from .factories import event
    driver.feed(event("order.refunded", T0 + minutes(11), order_id="o1", total=10_000.0, currency="JPY"))
    driver.run_until(T0 + minutes(20))
    assert driver.state.spent == 20.0


def test_an_unknown_currency_is_rejected_with_a_message_that_says_how_to_fix_it():
    with pytest.raises(RejectedEvent) as caught:
        apply(None, paid(T0, total=12_000.0, currency="JPY"), policy_with())
    message = str(caught.value)
    assert "'JPY'" in message and "money.rates" in message and "EUR" in message
    assert "JPY = <value of 1 JPY in EUR>" in message


def test_an_event_that_names_no_currency_is_in_the_base_currency():
    dollars = policy_with(money={"base_currency": "USD", "rates": {"USD": 1.0}})
    assert apply(None, paid(T0, total=10.0), dollars).state is not None
    with pytest.raises(RejectedEvent, match="'EUR'"):
        apply(None, paid(T0, total=10.0, currency="EUR"), dollars)


def test_the_base_currencys_rate_must_be_one():
    with pytest.raises(PolicyError, match="money.rates.EUR: the base currency's rate must be 1"):
        policy_with(money={"rates": {"EUR": 2.0}})
