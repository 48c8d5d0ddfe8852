from remarket.domain.events import LineItem

from .factories import T0, Driver, days, event, minutes, paid, placed, policy_with, view


def _coupons(driver):
    return [a for a in driver.actions if a.kind == "targeted_coupon"]


def test_repeat_views_without_an_order_get_one_coupon_after_the_delay(driver):
    driver.feed(view(T0), view(T0 + minutes(5))).run_until(T0 + days(3))
    coupons = _coupons(driver)
    assert len(coupons) == 1
    assert coupons[0].product_ids == ["p1"]
    assert coupons[0].created_at == T0 + minutes(5) + days(1)
    assert coupons[0].coupon.valid_until == coupons[0].send_after + days(3)


def test_a_single_view_is_not_attention_enough(driver):
    driver.feed(view(T0)).run_until(T0 + days(3))
    assert _coupons(driver) == []


def test_favourite_and_cart_add_qualify_at_once(driver):
    driver.feed(event("visit.favourite", T0, product_id="p1"),
                event("cart.add", T0 + minutes(1), cart_id="k1", items=[LineItem(product_id="p2").model_dump()]))
    driver.run_until(T0 + days(3))
    assert sorted(p for a in _coupons(driver) for p in a.product_ids) in (["p1"], ["p1", "p2"])
    assert len(_coupons(driver)) + driver.suppressions.count(("targeted_coupon", "frequency_cap")) == 2


def test_ordering_the_product_within_the_delay_cancels_the_coupon(driver):
    driver.feed(view(T0), view(T0 + minutes(1)),
                placed(T0 + days(0.5), items=[{"product_id": "p1"}]), paid(T0 + days(0.5) + minutes(2)))
    driver.run_until(T0 + days(3))
    assert _coupons(driver) == []


def test_one_coupon_per_product_per_window():
    driver = Driver(policy_with(contact={"cap": {"max": 10, "window": "1d"}}))
    driver.feed(view(T0), view(T0 + minutes(1))).run_until(T0 + days(2))
    driver.feed(view(T0 + days(3)), view(T0 + days(3) + minutes(1))).run_until(T0 + days(6))
    assert len(_coupons(driver)) == 1
    assert ("targeted_coupon", "once_per_window") in driver.suppressions
    driver.feed(view(T0 + days(40)), view(T0 + days(40) + minutes(1))).run_until(T0 + days(43))
    assert len(_coupons(driver)) == 2


def test_email_active_customers_get_a_smaller_coupon_and_inactive_ones_a_bigger_one():
    # default policy: the product views that trigger the coupon make both customers site-active;
    # that must not shrink the coupon, only email engagement decides
    inactive = Driver().feed(view(T0, customer="a"), view(T0 + minutes(1), customer="a"))
    active = Driver().feed(event("email.open", T0 - days(1), customer="b"), event("email.open", T0, customer="b"),
                           view(T0, customer="b"), view(T0 + minutes(1), customer="b"))
    lapsing = Driver().feed(event("email.open", T0 - days(40), customer="c"),
                            view(T0, customer="c"), view(T0 + minutes(1), customer="c"))
    for d in (inactive, active, lapsing):
        d.run_until(T0 + days(3))
    assert _coupons(inactive)[0].coupon.value == 12  # prospect size 10 % x 1.2
    assert _coupons(active)[0].coupon.value == 6  # x 0.6
    assert _coupons(lapsing)[0].coupon.value == 10  # opened once, 40 days ago: neither
    assert _coupons(inactive)[0].reason.site_activity == "active"


def test_coupon_type_follows_the_customers_promotion_preference():
    driver = Driver(policy_with(contact={"cap": {"max": 10, "window": "1d"}}))
    driver.feed(paid(T0 - days(40), "o1", coupon_type="special_price"))
    driver.feed(view(T0), view(T0 + minutes(1))).run_until(T0 + days(3))
    assert _coupons(driver)[0].coupon.type == "special_price"


def test_coupon_size_depends_on_stage():
    policy = policy_with(contact={"cap": {"max": 10, "window": "1d"}},
                         activity={"site_active_min": 5})  # keep the viewer inactive on site
    churned = Driver(policy).feed(paid(T0 - days(300), "o1", customer="x"))
    churned.feed(view(T0, customer="x"), view(T0 + minutes(1), customer="x")).run_until(T0 + days(3))
    prospect = Driver(policy).feed(view(T0, customer="y"), view(T0 + minutes(1), customer="y"))
    prospect.run_until(T0 + days(3))
    assert _coupons(churned)[0].coupon.value == 18  # 15 % x 1.2 (email-inactive)
    assert _coupons(prospect)[0].coupon.value == 12  # 10 % x 1.2
