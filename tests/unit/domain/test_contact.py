from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from remarket.domain.calendar import next_allowed
from remarket.domain.contact import in_holdout
from remarket.domain.policy import DEFAULT_POLICY

from .factories import T0, Driver, days, event, minutes, placed, policy_with, view

BERLIN = ZoneInfo("Europe/Berlin")


def test_quiet_hours_defer_across_midnight_in_non_utc_zone():
    driver = Driver()
    at = datetime(2025, 6, 2, 20, 50, tzinfo=UTC)  # 05:50 next day in Tokyo; the reminder is due at 06:20
    driver.feed(placed(at, context={"timezone": "Asia/Tokyo"})).run_until(at + days(1))
    [reminder] = driver.actions
    assert reminder.created_at == at + minutes(30)
    assert reminder.send_after == datetime(2025, 6, 3, 0, 0, tzinfo=UTC)  # 09:00 JST
    assert ("payment_reminder", "quiet_hours_deferred") in driver.suppressions


def test_evening_decision_waits_until_next_morning_local_time():
    evening = datetime(2025, 6, 2, 21, 30, tzinfo=BERLIN)  # Monday 21:30 CEST
    assert next_allowed(evening, BERLIN, DEFAULT_POLICY.quiet_hours) == datetime(2025, 6, 3, 9, 0, tzinfo=BERLIN)
    after_midnight = datetime(2025, 6, 3, 0, 30, tzinfo=BERLIN)
    assert next_allowed(after_midnight, BERLIN, DEFAULT_POLICY.quiet_hours) == datetime(2025, 6, 3, 9, 0, tzinfo=BERLIN)
    daytime = datetime(2025, 6, 3, 12, 0, tzinfo=BERLIN)
    assert next_allowed(daytime, BERLIN, DEFAULT_POLICY.quiet_hours) == daytime


def test_quiet_hours_across_a_dst_change():
    before_spring_forward = datetime(2025, 3, 29, 22, 0, tzinfo=BERLIN)  # Saturday, clocks jump that night
    deferred = next_allowed(before_spring_forward, BERLIN, DEFAULT_POLICY.quiet_hours)
    assert deferred == datetime(2025, 3, 30, 9, 0, tzinfo=BERLIN)
    assert deferred.utcoffset().total_seconds() == 7200


def test_unknown_time_zone_falls_back_to_the_policy_zone():
    driver = Driver(policy_with(contact={"default_timezone": "America/New_York"}))
    at = datetime(2025, 6, 2, 2, 0, tzinfo=UTC)  # 22:00 in New York
    driver.feed(placed(at, context={"timezone": "Nowhere/Atlantis"})).run_until(at + days(1))
    assert driver.actions[0].send_after == datetime(2025, 6, 2, 13, 0, tzinfo=UTC)  # 09:00 EDT


def test_inactive_customer_is_reached_by_sms_when_consented():
    driver = Driver(policy_with(reminder={"delay": "61d"}, activity={"site_active_min": 3}))
    driver.feed(event("consent.updated", T0, channel="sms", granted=True), placed(T0)).run_until(T0 + days(62))
    assert driver.actions[0].channel == "sms"


def test_active_customer_is_reached_by_email():
    driver = Driver().feed(event("email.open", T0 - days(1)), event("email.click", T0), placed(T0))
    driver.run_until(T0 + days(1))
    assert driver.actions[0].channel == "email"


def test_no_consented_channel_suppresses_the_action():
    driver = Driver(policy_with(contact={"default_consent": {"email": False, "in_app": False}}))
    driver.feed(placed(T0)).run_until(T0 + days(1))
    assert driver.actions == []
    assert ("payment_reminder", "no_consent") in driver.suppressions


def test_unsubscribe_stops_email(driver):
    driver.feed(event("email.unsubscribe", T0), placed(T0)).run_until(T0 + days(1))
    assert [a.channel for a in driver.actions] == ["in_app"]


def test_repeated_bounces_stop_email_until_an_open(driver):
    driver.feed(event("email.bounce", T0), event("email.bounce", T0), placed(T0)).run_until(T0 + days(1))
    assert [a.channel for a in driver.actions] == ["in_app"]


def test_daily_cap_defers_the_second_message_to_the_next_allowed_slot_and_counts_it():
    driver = Driver(policy_with(reminder={"delay": "1h"}, coupon={"delay": "1h"}))
    driver.feed(placed(T0), view(T0, "p9"), view(T0 + minutes(1), "p9")).run_until(T0 + days(2))
    assert driver.kinds() == ["payment_reminder", "targeted_coupon"]
    reminder, coupon = driver.actions
    assert coupon.created_at == coupon.send_after == reminder.send_after + days(1)
    assert driver.deferred == [("targeted_coupon", "frequency_cap")]
    assert ("targeted_coupon", "frequency_cap") not in driver.suppressions


def test_a_kind_with_no_wait_window_is_dropped_when_capped():
    driver = Driver(policy_with(reminder={"delay": "1h"}, coupon={"delay": "1h"},
                                waiting={"wait_for": {"targeted_coupon": "0s"}}))
    driver.feed(placed(T0), view(T0, "p9"), view(T0 + minutes(1), "p9")).run_until(T0 + days(2))
    assert driver.kinds() == ["payment_reminder"]
    assert ("targeted_coupon", "frequency_cap") in driver.suppressions and driver.deferred == []


def test_reminders_are_exempt_from_the_cap_but_count_against_others():
    driver = Driver(policy_with(coupon={"delay": "5m"}))
    driver.feed(view(T0, "p9"), view(T0, "p9", event_id="v2"), placed(T0)).run_until(T0 + days(2))
    assert driver.kinds() == ["targeted_coupon", "payment_reminder"]


def test_declining_customers_get_at_most_one_message_a_week():
    driver = Driver(policy_with(coupon={"delay": "1h"}))
    driver.feed(event("visit.page_view", T0 - days(200)))
    from .factories import paid
    driver.feed(paid(T0 - days(120), "o1"), paid(T0 - days(80), "o2"))  # cycle 40 d: declining from day -20
    driver.run_until(T0)
    for day in (0, 2, 4, 9):
        at = T0 + days(day)
        driver.feed(view(at, f"p{day}"), view(at + minutes(1), f"p{day}")).run_until(at + days(1))
    assert driver.state.stage == "declining"
    coupons = [a for a in driver.actions if a.kind == "targeted_coupon"]
    sent = sorted(a.send_after for a in coupons)
    assert all((b - a) >= days(7) for a, b in zip(sent, sent[1:]))
    # a capped coupon waits at most two days: a week-long cap leaves no slot in time, so it expires
    assert driver.expired == [("targeted_coupon", "wait_over")] * 2 and len(coupons) == 2


def test_holdout_share_is_stable_and_close_to_the_policy_share():
    policy = policy_with(holdout={"share": 0.2})
    members = [in_holdout(f"customer-{i}", policy) for i in range(5000)]
    assert members == [in_holdout(f"customer-{i}", policy) for i in range(5000)]
    assert 0.17 < sum(members) / len(members) < 0.23
    assert not any(in_holdout(f"customer-{i}", policy_with(holdout={"share": 0})) for i in range(1000))


def test_holdout_applies_to_marketing_but_not_to_payment_reminders_by_default():
    policy = policy_with(holdout={"share": 0.5}, coupon={"delay": "1h"}, contact={"cap": {"max": 5, "window": "1d"}})
    customer = next(f"h{i}" for i in range(100) if in_holdout(f"h{i}", policy))
    driver = Driver(policy).feed(placed(T0, customer=customer), view(T0, customer=customer),
                                 view(T0 + minutes(1), customer=customer)).run_until(T0 + days(1))
    assert sorted((a.kind.value, a.holdout) for a in driver.actions) == [("payment_reminder", False),
                                                                          ("targeted_coupon", True)]


def test_holdout_actions_are_recorded_with_holdout_true():
    policy = policy_with(holdout={"share": 0.5, "kinds": ["payment_reminder"]})  # the merchant opted in
    customer = next(f"h{i}" for i in range(100) if in_holdout(f"h{i}", policy))
    driver = Driver(policy).feed(placed(T0, customer=customer)).run_until(T0 + days(1))
    assert [a.holdout for a in driver.actions] == [True]
    assert not any(reason == "holdout" for _, reason in driver.suppressions)  # the shell counts it from the action


def test_an_email_inactive_customer_active_on_the_site_is_reached_in_app_by_default(driver):
    driver.feed(event("visit.page_view", T0), placed(T0)).run_until(T0 + days(1))
    [reminder] = driver.actions
    assert reminder.channel == "in_app"
    assert (reminder.reason.email_activity, reminder.reason.site_activity) == ("inactive", "active")


def test_an_email_inactive_customer_inactive_on_the_site_gets_sms_where_consented_else_email():
    policy = policy_with(reminder={"delay": "61d"})  # decided long after the order: inactive everywhere
    sms = Driver(policy).feed(event("consent.updated", T0, channel="sms", granted=True), placed(T0))
    no_sms = Driver(policy).feed(placed(T0))
    for d in (sms, no_sms):
        d.run_until(T0 + days(62))
    assert [a.channel for a in sms.actions] == ["sms"]
    assert [a.channel for a in no_sms.actions] == ["email"]


def test_the_caps_with_a_grade_bonus_count_as_the_general_cap_raised_by_it():
    from remarket.domain.caps import capped
    from remarket.domain.state import new_state

    def reference(state, send_at, policy, bonus):  # the general cap copied with max + bonus, then each cap
        general = policy.contact.cap
        caps = [general.model_copy(update={"max": general.max + bonus}) if bonus else general]
        if (stage_cap := policy.contact.stage_caps.get(state.stage)) is not None:
            caps.append(stage_cap)
        return any(sum(abs(send_at - sent) < int(cap.window.total_seconds()) for sent in state.contacts) >= cap.max
                   for cap in caps)

    policy = policy_with(contact={"cap": {"max": 2, "window": "1d"}})
    hour = 3_600
    for stage in ("new", "declining", "churned"):
        state = new_state("c1", policy.version)
        state.stage = stage
        for contacts in ([], [0], [0, 5 * hour], [0, 5 * hour, 30 * hour], [-8 * 24 * hour, 0, 2 * hour, 3 * hour]):
            state.contacts = contacts
            for send_at in range(-2 * 24 * hour, 9 * 24 * hour, 7_919):
                for bonus in (0, 1, 2):
                    assert capped(state, send_at, policy, bonus) == reference(state, send_at, policy, bonus)
