from datetime import UTC, datetime

from .factories import Driver, days, event, paid, policy_with

T = datetime(2025, 5, 5, 12, 0, tzinfo=UTC)  # far from festival windows


def _campaigns(driver, kind):
    return [a for a in driver.actions if a.kind == kind]


def test_entering_new_sends_love_period_care_a_day_later(driver):
    driver.feed(paid(T)).run_until(T + days(2))
    [care] = _campaigns(driver, "lifecycle_new")
    assert care.created_at == T + days(1) and care.coupon is None


def test_entering_growth_sends_a_notice_without_coupon(driver):
    driver.feed(paid(T, "o1"), paid(T + days(20), "o2")).run_until(T + days(21))
    [notice] = _campaigns(driver, "lifecycle_growth")
    assert notice.coupon is None


def test_mature_customers_get_a_small_coupon_on_the_cadence_of_their_cycle():
    driver = Driver(policy_with(campaigns={"mature": {"cycle_min": "7d"}}))
    for i in range(5):
        driver.feed(paid(T + days(10 * i), f"o{i}"))
    driver.run_until(T + days(40 + 25))
    mature = _campaigns(driver, "lifecycle_mature")
    assert [a.created_at for a in mature] == [T + days(40), T + days(50)]  # declining after 15 days
    assert all(a.coupon.value == 6 for a in mature)  # 5 %, x 1.2: never opened an email (inactive)


def test_entering_declining_sends_a_medium_coupon_once(driver):
    driver.feed(paid(T, "o1"), paid(T + days(20), "o2")).run_until(T + days(55))
    [declining] = _campaigns(driver, "lifecycle_declining")
    assert declining.coupon.value == 18 and declining.reason.stage == "declining"  # 15 % x 1.2 (email-inactive)


def test_entering_churned_sends_a_large_win_back_coupon(driver):
    driver.feed(paid(T)).run_until(T + days(200))
    [churned] = _campaigns(driver, "lifecycle_churned")
    assert churned.coupon.value == 30  # 25 % x 1.2 (email-inactive)


def test_campaign_ids_are_deterministic_per_stage_entry():
    first = Driver().feed(paid(T)).run_until(T + days(200))
    second = Driver().feed(paid(T)).run_until(T + days(100)).run_until(T + days(200))
    assert [a.action_id for a in first.actions] == [a.action_id for a in second.actions]


def test_festival_window_boosts_campaign_coupons():
    # last order 2025-06-04: churned (180 d) on 2025-12-01; declining for a one-time buyer at 90 d -> 2025-09-02
    driver = Driver()
    driver.feed(paid(datetime(2025, 6, 4, 12, 0, tzinfo=UTC))).run_until(datetime(2025, 9, 10, tzinfo=UTC))
    [declining] = _campaigns(driver, "lifecycle_declining")
    assert declining.coupon.value == 27  # 15 % x 1.2 (email-inactive) x 1.5 (festival)
    assert "September Procurement Festival" in declining.reason.detail


def test_cadence_campaign_due_just_before_a_festival_waits_for_it():
    driver = Driver(policy_with(campaigns={"growth": {"cadence": "fixed", "every": "30d", "coupon_percent": 4}}))
    driver.feed(paid(datetime(2025, 6, 1, 12, tzinfo=UTC), "o1"), paid(datetime(2025, 7, 28, 12, tzinfo=UTC), "o2"))
    driver.run_until(datetime(2025, 9, 2, tzinfo=UTC))
    growth = _campaigns(driver, "lifecycle_growth")
    # entry on 07-28, next due 08-27 falls within 7 days of 09-01: held to the festival start (UTC midnight)
    assert [a.created_at for a in growth] == [datetime(2025, 7, 28, 12, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC)]
    assert growth[1].send_after == datetime(2025, 9, 1, 9, tzinfo=UTC)  # then quiet hours until 09:00
    assert growth[1].coupon.value == 7.2  # 4 % x 1.2 (email-inactive) x 1.5 (festival)


def test_disabled_campaign_sends_nothing():
    driver = Driver(policy_with(campaigns={"new": {"enabled": False}})).feed(paid(T)).run_until(T + days(5))
    assert _campaigns(driver, "lifecycle_new") == []


def _engaged(driver, at, opens):
    driver.feed(*(event("email.open", at - days(i + 1)) for i in range(opens)))
    return driver


def test_campaign_coupons_take_email_activity_into_account():
    def churned_coupon(opens):
        driver = Driver().feed(paid(T))
        driver.run_until(T + days(175))
        _engaged(driver, T + days(180), opens).run_until(T + days(181))
        [churned] = _campaigns(driver, "lifecycle_churned")
        return churned.coupon.value

    assert churned_coupon(opens=2) == 15  # active: 25 % x 0.6
    assert churned_coupon(opens=1) == 25  # lapsing: the stage's size
    assert churned_coupon(opens=0) == 30  # inactive: x 1.2


def test_campaigns_name_the_products_the_customer_looked_at_and_did_not_buy():
    from .factories import minutes, placed, view

    driver = Driver(policy_with(contact={"cap": {"max": 10, "window": "1d"}}))
    driver.feed(paid(T, "o1"))
    driver.feed(view(T + days(10), "p-old"), view(T + days(11), "p-bought"), view(T + days(12), "p-new"),
                event("visit.favourite", T + days(12) + minutes(1), product_id="p-fav"))
    driver.feed(placed(T + days(13), "o2", items=[{"product_id": "p-bought"}]))
    driver.feed(paid(T + days(20), "o2", items=[{"product_id": "p-bought"}])).run_until(T + days(21))
    [growth] = _campaigns(driver, "lifecycle_growth")
    assert growth.product_ids == ["p-fav", "p-new", "p-old"]  # most recent first, the bought one left out


def test_a_couponed_product_is_named_until_it_is_bought():
    from .factories import view

    driver = Driver()
    driver.feed(paid(T, "o1"), event("visit.favourite", T + days(5), product_id="p1"), view(T + days(7), "p2"))
    driver.run_until(T + days(8))
    assert [p for a in driver.actions if a.kind == "targeted_coupon" for p in a.product_ids] == ["p1"]
    assert driver.state.products.keys() == {"p2"} and "p1" in driver.state.couponed
    driver.feed(paid(T + days(9), "o2", items=[{"product_id": "p3"}])).run_until(T + days(10))
    assert _campaigns(driver, "lifecycle_growth")[0].product_ids == ["p2", "p1"]  # p1: coupon, not bought
    driver.feed(paid(T + days(30), "o3", items=[{"product_id": "p1"}])).run_until(T + days(60))
    later = [a for a in _campaigns(driver, "lifecycle_growth") if a.created_at >= T + days(30)]
    assert later and all("p1" not in a.product_ids for a in later)
