from remarket.domain.actions import action_id_for

from .factories import T0, Driver, days, event, minutes, paid, placed, policy_with


def test_unpaid_order_gets_exactly_one_reminder(driver):
    driver.feed(placed(T0)).run_until(T0 + days(3)).tick(T0 + days(3))
    reminders = [a for a in driver.actions if a.kind == "payment_reminder"]
    assert len(reminders) == 1
    reminder = reminders[0]
    assert reminder.order_id == "o1"
    assert reminder.created_at == T0 + minutes(30)
    assert reminder.send_after == T0 + minutes(30)
    assert reminder.action_id == action_id_for("c1", "payment_reminder", "order:o1")


def test_paid_before_delay_gets_no_reminder(driver):
    driver.feed(placed(T0), paid(T0 + minutes(29))).run_until(T0 + days(1))
    assert "payment_reminder" not in driver.kinds()


def test_cancelled_before_delay_gets_no_reminder(driver):
    driver.feed(placed(T0), event("order.cancelled", T0 + minutes(10), order_id="o1")).run_until(T0 + days(1))
    assert "payment_reminder" not in driver.kinds()


def test_paid_after_reminder_changes_nothing_already_sent(driver):
    driver.feed(placed(T0)).run_until(T0 + minutes(45)).feed(paid(T0 + minutes(50)))
    assert driver.kinds().count("payment_reminder") == 1


def test_second_reminder_within_20_days_is_suppressed(driver):
    driver.feed(placed(T0, "o1")).run_until(T0 + days(1))
    driver.feed(placed(T0 + days(10), "o2")).run_until(T0 + days(12))
    assert driver.kinds().count("payment_reminder") == 1
    assert ("payment_reminder", "recently_reminded") in driver.suppressions


def test_reminder_after_20_days_is_sent_again(driver):
    driver.feed(placed(T0, "o1")).run_until(T0 + days(1))
    driver.feed(placed(T0 + days(21), "o2")).run_until(T0 + days(22))
    assert driver.kinds().count("payment_reminder") == 2


def test_a_repeat_buyer_who_paid_another_order_recently_is_still_reminded_by_default(driver):
    driver.feed(paid(T0, "o0"), placed(T0 + days(5), "o1")).run_until(T0 + days(6))
    assert driver.kinds().count("payment_reminder") == 1
    assert ("payment_reminder", "recently_paid") not in driver.suppressions


def test_skip_if_paid_recently_is_a_sellers_option():
    driver = Driver(policy_with(reminder={"skip_if_paid_recently": True}))
    driver.feed(paid(T0, "o0"), placed(T0 + days(5), "o1")).run_until(T0 + days(6))
    assert "payment_reminder" not in driver.kinds()
    assert ("payment_reminder", "recently_paid") in driver.suppressions
    driver.feed(placed(T0 + days(26), "o2")).run_until(T0 + days(27))  # 21 days after the last payment
    assert driver.kinds().count("payment_reminder") == 1


def test_started_checkout_unpaid_gets_one_reminder(driver):
    driver.feed(event("cart.checkout_started", T0, cart_id="k1", total=30)).run_until(T0 + days(1))
    reminders = [a for a in driver.actions if a.kind == "payment_reminder"]
    assert len(reminders) == 1 and reminders[0].reason.rule == "unpaid_checkout_reminder"


def test_checkout_that_became_an_order_gets_no_second_reminder(driver):
    driver.feed(event("cart.checkout_started", T0, cart_id="k1")).run_until(T0 + minutes(40))
    driver.feed(placed(T0 + minutes(45), "o1", cart_id="k1")).run_until(T0 + days(1))
    assert driver.kinds().count("payment_reminder") == 1


def test_checkout_turned_order_before_delay_reminds_once_for_the_order(driver):
    driver.feed(event("cart.checkout_started", T0, cart_id="k1"), placed(T0 + minutes(5), "o1", cart_id="k1"))
    driver.run_until(T0 + days(1))
    reminders = [a for a in driver.actions if a.kind == "payment_reminder"]
    assert [r.order_id for r in reminders] == ["o1"]


def test_reminder_delay_comes_from_policy():
    driver = Driver(policy_with(reminder={"delay": "2h"}))
    driver.feed(placed(T0)).run_until(T0 + days(1))
    assert driver.actions[0].created_at == T0 + minutes(120)
