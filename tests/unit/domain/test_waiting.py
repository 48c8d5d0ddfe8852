"""Capped messages wait for the next allowed slot, by priority, until their kind's window ends."""
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings

from remarket.domain.process import advance, apply

from .factories import Driver, days, event, minutes, paid, placed, policy_with
from .test_properties import histories

T = datetime(2025, 5, 5, 12, 0, tzinfo=UTC)  # far from festival windows
CHURNS = T + days(180) + timedelta(seconds=1)  # a one-time buyer's win-back falls due


def _of(driver, kind):
    return [a for a in driver.actions if a.kind == kind]


def test_a_declining_campaign_capped_by_a_coupon_the_day_before_is_sent_when_the_week_cap_allows():
    declines = T + days(90) + timedelta(seconds=1)  # a one-time buyer's love period is over
    driver = Driver().feed(paid(T))
    driver.feed(event("visit.favourite", declines - days(1) - minutes(60), product_id="p1"))
    driver.run_until(declines + days(10))
    [coupon] = _of(driver, "targeted_coupon")
    [declining] = _of(driver, "lifecycle_declining")
    assert coupon.send_after == declines - minutes(60)
    assert declining.send_after == coupon.send_after + days(7)  # the declining stage cap: one a week
    assert declining.coupon.value == 18 and "waited" in declining.reason.detail  # 15 % x 1.2 (email-inactive)
    assert ("lifecycle_declining", "frequency_cap") in driver.deferred
    assert driver.expired == []


def _competing(**policy):
    """A reminder goes out; a targeted coupon and then the win-back fall due right after it (no
    weekly cap for declining customers here, so that only the daily cap holds them back)."""
    reminder_at = CHURNS - minutes(20)
    driver = Driver(policy_with(contact={"stage_caps": {}}, **policy))
    driver.feed(paid(T, "o1"))
    driver.feed(event("visit.favourite", reminder_at + minutes(10) - days(1), product_id="p1"))
    driver.feed(placed(reminder_at - minutes(30), "o2"))
    driver.run_until(CHURNS + days(5))
    return driver, reminder_at


def test_at_the_next_slot_the_win_back_goes_before_a_coupon_that_waited_longer():
    driver, reminder_at = _competing()
    [reminder] = _of(driver, "payment_reminder")
    [win_back] = _of(driver, "lifecycle_churned")
    [coupon] = _of(driver, "targeted_coupon")
    assert reminder.send_after == reminder_at
    assert win_back.send_after == reminder_at + days(1)
    assert coupon.send_after == reminder_at + days(2)  # waited its full two days, then went out
    assert sorted(driver.deferred) == [("lifecycle_churned", "frequency_cap"), ("targeted_coupon", "frequency_cap")]


def test_a_message_that_waits_past_its_kinds_window_expires_and_is_counted():
    driver, _ = _competing(waiting={"wait_for": {"targeted_coupon": "1d"}})
    assert _of(driver, "targeted_coupon") == []
    assert driver.expired == [("targeted_coupon", "wait_over")]
    assert len(_of(driver, "lifecycle_churned")) == 1


def test_priority_is_the_merchants_choice():
    driver, reminder_at = _competing(waiting={"priority": {"targeted_coupon": 0}})
    [coupon] = _of(driver, "targeted_coupon")
    [win_back] = _of(driver, "lifecycle_churned")
    assert coupon.send_after == reminder_at + days(1) and win_back.send_after == reminder_at + days(2)


def test_a_waiting_coupon_is_dropped_when_the_product_is_ordered():
    driver = Driver(policy_with(reminder={"delay": "1h"}, coupon={"delay": "1h"}))
    driver.feed(placed(T, "o1"), event("visit.favourite", T + minutes(1), product_id="p9"))
    driver.run_until(T + days(0.5))
    assert [p.kind for p in driver.state.waiting] == ["targeted_coupon"]
    driver.feed(placed(T + days(0.5), "o2", items=[{"product_id": "p9"}])).run_until(T + days(3))
    assert driver.kinds() == ["payment_reminder"]  # o2's reminder: recently reminded
    assert ("targeted_coupon", "product_ordered") in driver.suppressions
    assert driver.state.waiting == []


def test_erasure_drops_waiting_messages():
    driver = Driver(policy_with(reminder={"delay": "1h"}, coupon={"delay": "1h"}))
    driver.feed(placed(T, "o1"), event("visit.favourite", T + minutes(1), product_id="p9")).run_until(T + days(0.5))
    driver.feed(event("consent.erasure_requested", T + days(0.5))).run_until(T + days(3))
    assert driver.state is None and driver.kinds() == ["payment_reminder"]
    assert ("targeted_coupon", "erasure") in driver.suppressions


def test_a_waiting_message_keeps_its_action_id():
    capped = Driver(policy_with(reminder={"delay": "1h"}, coupon={"delay": "1h"}))
    capped.feed(placed(T, "o1"), event("visit.favourite", T + minutes(1), product_id="p9")).run_until(T + days(3))
    free = Driver(policy_with(coupon={"delay": "1h"}))
    free.feed(event("visit.favourite", T + minutes(1), product_id="p9")).run_until(T + days(3))
    assert _of(capped, "targeted_coupon")[0].action_id == _of(free, "targeted_coupon")[0].action_id


POLICY = policy_with()


def _run(events):
    state, actions, withdrawn = None, [], set()
    for e in events:
        while state is not None and state.due_at is not None and state.due_at <= e.occurred_at:
            outcome = advance(state, state.due_at, POLICY)
            state = outcome.state
            actions += outcome.actions
            withdrawn |= {w.withdrawn_action_id for w in outcome.withdrawals}
        outcome = apply(state, e, POLICY)
        state = outcome.state
        actions += outcome.actions
        withdrawn |= {w.withdrawn_action_id for w in outcome.withdrawals}
    end = events[-1].occurred_at + days(60)
    while state is not None and state.due_at is not None and state.due_at <= end:
        outcome = advance(state, state.due_at, POLICY)
        state = outcome.state
        actions += outcome.actions
        withdrawn |= {w.withdrawn_action_id for w in outcome.withdrawals}
    return [a for a in actions if a.action_id not in withdrawn]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_waiting_never_breaks_the_daily_cap(events):
    """Whatever waited, no capped message goes out within a day of another message (reminders are
    exempt themselves, but count against the others)."""
    sent = _run(events)
    for later in sent:
        if later.kind == "payment_reminder":
            continue
        for earlier in sent:
            if earlier is not later and earlier.created_at <= later.created_at:
                assert abs(later.send_after - earlier.send_after) >= days(1), (earlier, later)


def test_when_the_queue_is_full_the_least_urgent_gives_way_and_is_counted():
    driver, _ = _competing(limits={"waiting": 1})
    competing = ("payment_reminder", "targeted_coupon", "lifecycle_churned")
    assert [a.kind.value for a in driver.actions if a.kind in competing] == ["payment_reminder", "lifecycle_churned"]
    assert ("targeted_coupon", "waiting_full") in driver.expired
