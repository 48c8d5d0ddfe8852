"""Nothing moot reaches a customer: a pending action that became moot is withdrawn by action_id."""
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings

from remarket.domain.actions import action_id_for
from remarket.domain.contact import in_holdout
from remarket.domain.process import advance, apply

from .factories import Driver, days, event, minutes, paid, placed, policy_with, view
from .test_properties import POLICY, histories

EVENING = datetime(2025, 6, 2, 20, 50, tzinfo=UTC)  # the reminder falls due at 21:20 UTC: quiet hours
MORNING = datetime(2025, 6, 3, 9, 0, tzinfo=UTC)


def _withdrawals(driver):
    return [w for o in driver.outcomes for w in o.withdrawals]


def _deferred_reminder(driver, **kw):
    driver.feed(placed(EVENING, **kw)).run_until(EVENING + minutes(40))
    [reminder] = driver.actions
    assert reminder.send_after == MORNING
    return reminder


def test_a_reminder_deferred_past_quiet_hours_is_withdrawn_when_the_order_is_paid(driver):
    reminder = _deferred_reminder(driver)
    driver.feed(paid(EVENING + minutes(70))).run_until(MORNING + days(1))
    [withdrawal] = _withdrawals(driver)
    assert withdrawal.withdrawn_action_id == reminder.action_id
    assert withdrawal.reason == "order_paid" and withdrawal.kind == "withdrawal"
    assert withdrawal.created_at == EVENING + minutes(70)
    assert withdrawal.action_id == action_id_for("c1", "withdrawal", reminder.action_id) != reminder.action_id
    assert [p.kind for p in driver.state.pending] == ["lifecycle_new"]  # the care message, due tomorrow


def test_a_cancelled_order_withdraws_its_pending_reminder(driver):
    _deferred_reminder(driver)
    driver.feed(event("order.cancelled", EVENING + minutes(80), order_id="o1")).run_until(EVENING + minutes(90))
    assert [w.reason for w in _withdrawals(driver)] == ["order_cancelled"]


def test_payment_after_the_reminder_was_due_withdraws_nothing(driver):
    _deferred_reminder(driver)
    driver.feed(paid(MORNING + minutes(5))).run_until(MORNING + days(1))
    assert _withdrawals(driver) == []


def test_an_unsubscribe_withdraws_pending_email_but_not_other_channels():
    email = Driver()
    email.feed(event("email.open", EVENING - days(2)), event("email.open", EVENING - days(1)))
    reminder = _deferred_reminder(email)
    assert reminder.channel == "email"
    email.feed(event("email.unsubscribe", EVENING + minutes(60))).run_until(EVENING + minutes(70))
    assert [(w.withdrawn_action_id, w.reason) for w in _withdrawals(email)] == [(reminder.action_id,
                                                                                  "consent_withdrawn")]
    in_app = Driver(policy_with(contact={"default_consent": {"email": False, "in_app": True}}))
    assert _deferred_reminder(in_app).channel == "in_app"
    in_app.feed(event("email.unsubscribe", EVENING + minutes(60))).run_until(EVENING + minutes(70))
    assert _withdrawals(in_app) == []
    in_app.feed(event("consent.updated", EVENING + minutes(71), channel="in_app", granted=False))
    in_app.run_until(EVENING + minutes(80))
    assert [w.reason for w in _withdrawals(in_app)] == ["consent_withdrawn"]


def test_erasure_withdraws_everything_pending(driver):
    reminder = _deferred_reminder(driver)
    driver.feed(event("consent.erasure_requested", EVENING + minutes(90))).run_until(EVENING + minutes(95))
    assert driver.state is None
    [withdrawal] = _withdrawals(driver)
    assert withdrawal.withdrawn_action_id == reminder.action_id and withdrawal.reason == "erasure"


def test_a_deferred_coupon_is_withdrawn_when_the_product_is_ordered():
    driver = Driver(policy_with(coupon={"delay": "1h"}))
    driver.feed(view(EVENING - minutes(20)), view(EVENING - minutes(15))).run_until(EVENING + minutes(60))
    [coupon] = driver.actions
    assert coupon.send_after == MORNING
    driver.feed(placed(EVENING + minutes(65), "o9", items=[{"product_id": "p1"}])).run_until(EVENING + minutes(70))
    [withdrawal] = _withdrawals(driver)
    assert (withdrawal.withdrawn_action_id, withdrawal.reason) == (coupon.action_id, "product_ordered")


def test_a_win_back_deferred_overnight_is_withdrawn_when_the_customer_buys():
    last = datetime(2025, 5, 1, 21, 30, tzinfo=UTC)
    driver = Driver().feed(paid(last, "o1"))
    churned_at = last + days(180)  # a one-time buyer churns 180 days after the last order: 21:30, quiet hours
    driver.run_until(churned_at + minutes(5))
    [win_back] = [a for a in driver.actions if a.kind == "lifecycle_churned"]
    assert win_back.send_after == (churned_at + days(1)).replace(hour=9, minute=0)
    driver.feed(paid(churned_at + minutes(30), "o2")).run_until(churned_at + minutes(40))
    [withdrawal] = _withdrawals(driver)
    assert (withdrawal.withdrawn_action_id, withdrawal.reason) == (win_back.action_id, "stage_changed")


def test_a_withdrawn_message_frees_its_place_under_the_daily_cap():
    driver = Driver(policy_with(coupon={"delay": "1h"}))
    driver.feed(view(EVENING - minutes(20)), view(EVENING - minutes(15))).run_until(EVENING + minutes(60))
    assert len(driver.state.contacts) == 1
    driver.feed(placed(EVENING + minutes(65), "o9", items=[{"product_id": "p1"}])).run_until(EVENING + minutes(70))
    assert driver.state.contacts == []


def test_the_withdrawal_of_a_holdout_action_is_marked_holdout_too():
    policy = policy_with(holdout={"share": 0.5, "kinds": ["payment_reminder"]})
    customer = next(f"h{i}" for i in range(100) if in_holdout(f"h{i}", policy))
    driver = Driver(policy)
    driver.feed(placed(EVENING, customer=customer)).run_until(EVENING + minutes(40))
    driver.feed(paid(EVENING + minutes(50), customer=customer)).run_until(EVENING + minutes(60))
    assert [a.holdout for a in driver.actions] == [True]
    assert [w.holdout for w in _withdrawals(driver)] == [True]


def _live_with_withdrawals(events):
    state, actions, withdrawals = None, [], []
    for e in events:
        while state is not None and state.due_at is not None and state.due_at <= e.occurred_at:
            outcome = advance(state, state.due_at, POLICY)
            state = outcome.state
            actions += outcome.actions
            withdrawals += outcome.withdrawals
        outcome = apply(state, e, POLICY)
        state = outcome.state
        actions += outcome.actions
        withdrawals += outcome.withdrawals
    if state is not None:
        outcome = advance(state, events[-1].occurred_at + days(30), POLICY)
        actions += outcome.actions
        withdrawals += outcome.withdrawals
    return actions, withdrawals


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_no_reminder_for_an_order_paid_before_it_was_due_stays_unwithdrawn(events):
    actions, withdrawals = _live_with_withdrawals(events)
    emitted = {a.action_id: a for a in actions}
    withdrawn = [w.withdrawn_action_id for w in withdrawals]
    assert len(withdrawn) == len(set(withdrawn))  # each action withdrawn at most once
    for w in withdrawals:  # only actions emitted earlier and not yet due
        assert w.withdrawn_action_id in emitted
        assert emitted[w.withdrawn_action_id].created_at <= w.created_at < emitted[w.withdrawn_action_id].send_after
    for reminder in (a for a in actions if a.kind == "payment_reminder" and a.order_id):
        paid_while_held = [e for e in events if e.event_type == "order.paid" and e.order_id == reminder.order_id
                           and reminder.created_at <= e.occurred_at < reminder.send_after]
        if paid_while_held:
            assert reminder.action_id in withdrawn


def test_a_held_early_win_back_is_withdrawn_by_any_payment():
    t = datetime(2025, 5, 5, 12, tzinfo=UTC)
    night = {"start": "00:00", "end": "23:59"}  # practically always quiet: the win-back is held
    probe = Driver(policy_with(quiet_hours=night))
    probe.feed(paid(t, "o1", total=600.0), paid(t + days(60), "o2", total=600.0)).run_until(t + days(150))
    [early] = [a for a in probe.actions if a.kind == "win_back_early"]
    assert early.send_after > early.created_at + minutes(10)
    driver = Driver(policy_with(quiet_hours=night))  # the same customer, stopped just after the decision
    driver.feed(paid(t, "o1", total=600.0), paid(t + days(60), "o2", total=600.0)).run_until(
        early.created_at + minutes(1))
    driver.feed(paid(early.created_at + minutes(5), "o3", total=10.0)).run_until(early.created_at + minutes(10))
    assert [(w.withdrawn_action_id, w.reason) for w in _withdrawals(driver)] == [(early.action_id, "order_paid")]
