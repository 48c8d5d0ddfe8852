from remarket.domain.lifecycle import email_activity, promotion_preference, rfm_of, site_activity, stage_at, tier_of
from remarket.domain.policy import DEFAULT_POLICY
from remarket.domain.state import CustomerState, to_ts

from .factories import T0, Driver, days, event, paid, policy_with

DAY = 86_400


def _buyer(orders: int, first: int, last: int, spent: float = 100.0) -> CustomerState:
    return CustomerState(customer_id="c", policy_version="t", orders=orders, first_order=first, last_order=last,
                         spent=spent)


def test_no_paid_order_is_a_prospect(driver):
    driver.feed(event("visit.page_view", T0)).run_until(T0 + days(1))
    assert driver.state.stage == "prospect"


def test_first_paid_order_makes_a_new_customer(driver):
    driver.feed(paid(T0)).run_until(T0 + days(1))
    assert driver.state.stage == "new"
    assert driver.transitions == [("prospect", "new")]


def test_second_and_fifth_orders_make_growth_then_mature(driver):
    for i in range(5):
        driver.feed(paid(T0 + days(10 * i), f"o{i}")).run_until(T0 + days(10 * i + 1))
    assert [t for t in driver.transitions] == [("prospect", "new"), ("new", "growth"), ("growth", "mature")]


def test_customer_who_stops_buying_declines_then_churns_by_time_alone(driver):
    # cycle 20 days: declining after 30 days, churned after 60
    driver.feed(paid(T0, "o1"), paid(T0 + days(20), "o2"))
    driver.run_until(T0 + days(20 + 29))
    assert driver.state.stage == "growth"
    driver.run_until(T0 + days(20 + 31))
    assert driver.state.stage == "declining"
    driver.run_until(T0 + days(20 + 61))
    assert driver.state.stage == "churned"
    assert driver.transitions[-2:] == [("growth", "declining"), ("declining", "churned")]


def test_stage_move_is_late_by_at_most_the_reorder_tolerance(driver):
    driver.feed(paid(T0, "o1"), paid(T0 + days(20), "o2"))
    boundary = T0 + days(20 + 30)  # declining once recency exceeds 30 days
    assert driver.state.due_at is not None
    driver.run_until(boundary + days(0.001))
    declining_at = [o for o in driver.outcomes if ("growth", "declining") in o.transitions]
    assert declining_at and (driver.state.clock - to_ts(boundary)) <= 120


def test_one_time_buyer_is_overdue_after_the_store_wide_cycle():
    state = _buyer(1, 0, 0)
    assert stage_at(state, 89 * DAY, DEFAULT_POLICY) == "new"
    assert stage_at(state, 91 * DAY, DEFAULT_POLICY) == "declining"
    assert stage_at(state, 181 * DAY, DEFAULT_POLICY) == "churned"


def test_overdue_is_measured_against_the_personal_cycle():
    weekly, quarterly = _buyer(5, 0, 28 * DAY), _buyer(3, 0, 180 * DAY)
    assert stage_at(weekly, 28 * DAY + 12 * DAY, DEFAULT_POLICY) == "declining"
    assert stage_at(quarterly, 180 * DAY + 12 * DAY, DEFAULT_POLICY) == "growth"


def test_churned_never_later_than_180_days():
    slow = _buyer(2, 0, 200 * DAY)  # cycle 200 d: 3x would be 600 d
    assert stage_at(slow, 200 * DAY + 181 * DAY, DEFAULT_POLICY) == "churned"


def test_lapsed_customer_who_buys_again_is_reactivated(driver):
    driver.feed(paid(T0, "o1")).run_until(T0 + days(200))
    assert driver.state.stage == "churned"
    driver.feed(paid(T0 + days(201), "o2")).run_until(T0 + days(202))
    assert driver.state.stage == "growth"
    assert driver.state.reactivations == 1
    assert ("churned", "growth") in driver.transitions


def test_email_activity_needs_two_engagements_in_30_days_and_goes_inactive_after_60(driver):
    driver.feed(event("email.open", T0), event("email.click", T0 + days(1))).run_until(T0 + days(2))
    policy, at = DEFAULT_POLICY, lambda d: to_ts(T0 + days(d))
    assert email_activity(driver.state, at(2), policy) == "active"
    assert email_activity(driver.state, at(31), policy) == "lapsing"
    assert email_activity(driver.state, at(62), policy) == "inactive"


def test_one_visit_makes_site_activity_active(driver):
    driver.feed(event("visit.page_view", T0)).run_until(T0 + days(1))
    assert site_activity(driver.state, to_ts(T0 + days(1)), DEFAULT_POLICY) == "active"


def test_activity_expiry_publishes_a_profile_without_any_event(driver):
    driver.feed(event("visit.page_view", T0)).run_until(T0 + days(29))
    count = sum(o.profile is not None for o in driver.outcomes)
    driver.run_until(T0 + days(32))
    assert sum(o.profile is not None for o in driver.outcomes) == count + 1
    assert driver.outcomes[-1].state.due_at is not None  # lapsing -> inactive still to come


def test_tier_by_amount_and_by_order_count():
    state = _buyer(3, 0, 0, spent=1200)
    assert tier_of(state, DEFAULT_POLICY) == "gold"
    assert tier_of(state, policy_with(tier={"basis": "orders"})) == "silver"


def test_rfm_scores_use_the_cut_points():
    state = _buyer(5, 0, 100 * DAY, spent=250)
    assert rfm_of(state, 100 * DAY + 10 * DAY, DEFAULT_POLICY) == (5, 4, 3)
    assert rfm_of(state, 100 * DAY + 400 * DAY, DEFAULT_POLICY) == (1, 4, 3)
    assert rfm_of(CustomerState(customer_id="p", policy_version="t"), 0, DEFAULT_POLICY) is None


def test_promotion_preference_is_the_most_redeemed_coupon_type(driver):
    driver.feed(paid(T0, "o1", coupon_type="gift"), paid(T0 + days(1), "o2", coupon_type="free_shipping"),
                paid(T0 + days(2), "o3", coupon_type="free_shipping")).run_until(T0 + days(3))
    assert promotion_preference(driver.state, DEFAULT_POLICY) == "free_shipping"


def test_refund_lowers_the_amount_once():
    driver = Driver()
    driver.feed(paid(T0, "o1", total=300), event("order.refunded", T0 + days(1), order_id="o1", total=100),
                event("order.refunded", T0 + days(1), order_id="o1", total=100)).run_until(T0 + days(2))
    assert driver.state.spent == 200
