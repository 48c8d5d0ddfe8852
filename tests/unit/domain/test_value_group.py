"""The top-value group is live and acts: its concessions, its room within the caps, and what campaigns
name from the store (its popular products)."""
from datetime import UTC, datetime, timedelta

from remarket.domain.store import StoreSnapshot

from .factories import Driver, days, event, minutes, paid, placed, policy_with, view

T = datetime(2025, 5, 5, 12, 0, tzinfo=UTC)  # far from festival windows
CHURNS = T + days(180) + timedelta(seconds=1)  # a one-time buyer's win-back falls due
TOP_FROM_100 = StoreSnapshot(top_value=100.0)


def _of(driver, kind):
    return [a for a in driver.actions if a.kind == kind]


def _win_back(total, store=None, policy=None):
    driver = Driver(policy, **({"store": store} if store else {})).feed(paid(T, total=total))
    [churned] = _of(driver.run_until(CHURNS + days(1)), "lifecycle_churned")
    return churned


def test_the_top_value_group_gets_its_coupon_concession_whatever_its_grade():
    plain = _win_back(150.0)
    top = _win_back(150.0, TOP_FROM_100)
    assert (plain.reason.tier, plain.reason.top_value, plain.coupon.value) == ("bronze", False, 30.0)
    assert (top.reason.tier, top.reason.top_value, top.coupon.value) == ("bronze", True, 33.0)  # x 1.1
    assert not _win_back(90.0, TOP_FROM_100).reason.top_value  # under the threshold


def test_the_more_generous_of_grade_and_group_applies_not_both():
    platinum = _win_back(6000.0, TOP_FROM_100)
    assert platinum.reason.tier == "platinum" and platinum.coupon.value == 33.0  # 1.1, not 1.21
    generous = policy_with(top_value={"coupon_factor": 1.5})
    assert _win_back(6000.0, TOP_FROM_100, generous).coupon.value == 40.0  # 25 x 1.2 x 1.5 = 45, max 40 %


def test_a_top_value_customer_at_risk_gets_the_win_back_early_even_in_a_grade_without_it():
    def slow_bronze(store=None):
        driver = Driver(**({"store": store} if store else {}))
        driver.feed(paid(T, "o1", total=60.0), paid(T + days(60), "o2", total=60.0))
        return _of(driver.run_until(T + days(60 + 95)), "win_back_early")

    assert slow_bronze() == []
    [early] = slow_bronze(TOP_FROM_100)
    assert early.reason.tier == "bronze" and early.reason.top_value and "top value" in early.reason.detail


def test_engaged_top_value_customers_are_asked_to_refer_friends():
    def growth(store=None):
        driver = Driver(**({"store": store} if store else {}))
        driver.feed(paid(T, "o1", total=60.0), paid(T + days(20), "o2", total=60.0),
                    event("email.open", T + days(18)), event("email.open", T + days(19)))
        [campaign] = _of(driver.run_until(T + days(21)), "lifecycle_growth")
        return campaign

    assert not growth().referral_ask
    assert growth(TOP_FROM_100).referral_ask


def _competing(store=None):
    """A reminder goes out; a targeted coupon and then the win-back fall due right after it (no weekly
    cap for declining customers, so only the daily cap of one message holds them back)."""
    reminder_at = CHURNS - minutes(20)
    driver = Driver(policy_with(contact={"stage_caps": {}}), **({"store": store} if store else {}))
    driver.feed(paid(T, "o1", total=150.0))
    driver.feed(event("visit.favourite", reminder_at + minutes(10) - days(1), product_id="p1"))
    driver.feed(placed(reminder_at - minutes(30), "o2"))
    driver.run_until(CHURNS + days(5))
    return driver, reminder_at


def test_the_top_value_group_has_room_for_one_more_message_a_day_so_less_waits():
    driver, reminder_at = _competing()
    [coupon] = _of(driver, "targeted_coupon")
    assert coupon.send_after == reminder_at + days(2)  # everyone else: both wait, the coupon two days
    assert len(driver.deferred) == 2
    driver, reminder_at = _competing(TOP_FROM_100)
    [win_back] = _of(driver, "lifecycle_churned")
    [coupon] = _of(driver, "targeted_coupon")
    assert coupon.send_after == reminder_at + minutes(10)  # the bonus slot: sent when due
    assert win_back.send_after == reminder_at + days(1)  # the third message of the day still waits
    assert driver.deferred == [("lifecycle_churned", "frequency_cap")]


def test_a_grade_can_be_given_room_within_the_caps_too():
    reminder_at = CHURNS - minutes(20)
    driver = Driver(policy_with(contact={"stage_caps": {}}, grades={"silver": {"cap_bonus": 1}}))
    driver.feed(paid(T, "o1", total=300.0), placed(reminder_at - minutes(30), "o2"))
    [win_back] = _of(driver.run_until(CHURNS + days(2)), "lifecycle_churned")
    assert win_back.reason.tier == "silver" and win_back.send_after < reminder_at + minutes(30)


def test_campaigns_name_what_the_customer_looked_at_then_what_is_popular_in_the_store():
    store = StoreSnapshot(products=("p-hot", "p-mine", "p-new", "p-more", "p-extra"))
    driver = Driver(store=store)
    driver.feed(paid(T, "o1"), view(T + days(19), "p-mine"), paid(T + days(20), "o2"))
    [growth] = _of(driver.run_until(T + days(21)), "lifecycle_growth")
    assert growth.product_ids == ["p-mine", "p-hot", "p-new", "p-more"]  # own first, 3 popular, no repeat
    [churned] = _of(driver.run_until(T + days(200)), "lifecycle_churned")
    assert churned.product_ids[-3:] == ["p-hot", "p-new", "p-more"]  # the win-back too


def test_stages_without_popular_products_and_a_store_that_knows_none():
    store = StoreSnapshot(products=("p-hot",))
    driver = Driver(store=store).feed(paid(T, "o1"))
    driver.run_until(T + days(100))
    assert all(a.product_ids == [] for a in driver.actions if a.kind in ("lifecycle_new", "lifecycle_declining"))
    driver = Driver().feed(paid(T, "o1"), paid(T + days(20), "o2")).run_until(T + days(21))
    [growth] = _of(driver, "lifecycle_growth")
    assert growth.product_ids == []
