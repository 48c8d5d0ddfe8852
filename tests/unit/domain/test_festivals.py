"""Festivals reach everyone, the churned included; greetings where the merchant configures them."""
from datetime import UTC, datetime, timedelta

from remarket.domain.contact import in_holdout

from .factories import Driver, event, paid, policy_with

ONLY_DOUBLE_ELEVEN = {"windows": [{"name": "Double Eleven", "start": "11-11", "end": "11-11", "coupon_boost": 2.0}]}


def _of(driver, kind):
    return [a for a in driver.actions if a.kind == kind]


def test_a_churned_customer_gets_the_platforms_festival_notice_in_the_morning_of_the_first_day():
    last = datetime(2025, 1, 10, 12, tzinfo=UTC)
    driver = Driver().feed(paid(last, context={"timezone": "Asia/Tokyo"}))
    driver.run_until(datetime(2025, 9, 3, tzinfo=UTC))
    march, september = _of(driver, "festival_notice")
    assert (march.reason.stage, september.reason.stage) == ("new", "churned")
    assert september.coupon is None and september.reason.rule == "festival_notice"
    assert september.send_after == datetime(2025, 9, 1, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
    assert "September Procurement Festival 2025" in september.reason.detail


def test_every_festival_with_a_notice_once_a_year_for_every_stage():
    driver = Driver(policy_with(contact={"cap": {"max": 5, "window": "1d"}}))
    driver.feed(paid(datetime(2025, 2, 1, 12, tzinfo=UTC)))
    driver.run_until(datetime(2026, 11, 12, tzinfo=UTC))
    notices = _of(driver, "festival_notice")
    assert [a.created_at.date().isoformat() for a in notices] == [
        "2025-03-01", "2025-09-01", "2025-11-11", "2026-03-01", "2026-09-01", "2026-11-11"]
    assert len({a.action_id for a in notices}) == 6
    assert {a.reason.stage for a in notices} >= {"new", "churned"}


def test_prospects_get_no_notice_unless_the_merchant_says_so():
    visit = event("visit.page_view", datetime(2025, 11, 1, tzinfo=UTC))
    default = Driver(policy_with(festivals=ONLY_DOUBLE_ELEVEN)).feed(visit).run_until(datetime(2025, 11, 12, tzinfo=UTC))
    assert _of(default, "festival_notice") == []
    everyone = Driver(policy_with(festivals={**ONLY_DOUBLE_ELEVEN, "notice_stages": ["prospect"]}))
    everyone.feed(visit).run_until(datetime(2025, 11, 12, tzinfo=UTC))
    assert len(_of(everyone, "festival_notice")) == 1


def test_a_window_without_notice_sends_none():
    festivals = {"windows": [{"name": "Double Eleven", "start": "11-11", "end": "11-11", "notice": False}]}
    driver = Driver(policy_with(festivals=festivals)).feed(paid(datetime(2025, 11, 1, 12, tzinfo=UTC)))
    driver.run_until(datetime(2025, 11, 12, tzinfo=UTC))
    assert _of(driver, "festival_notice") == []


def test_a_configured_greeting_is_non_promotional_care_and_not_withheld_from_the_control_group():
    policy = policy_with(festivals={**ONLY_DOUBLE_ELEVEN, "greetings": [{"name": "New Year", "date": "01-01"}]},
                         holdout={"share": 0.5})
    customer = next(f"h{i}" for i in range(100) if in_holdout(f"h{i}", policy))
    driver = Driver(policy).feed(paid(datetime(2025, 11, 1, 12, tzinfo=UTC), customer=customer))
    driver.run_until(datetime(2026, 1, 2, tzinfo=UTC))
    [greeting] = _of(driver, "holiday_greeting")
    [notice] = _of(driver, "festival_notice")
    assert greeting.send_after == datetime(2026, 1, 1, 10, tzinfo=UTC) and greeting.coupon is None
    assert (greeting.holdout, notice.holdout) == (False, True)


def test_a_notice_respects_consent_and_waits_behind_other_messages():
    no_consent = Driver(policy_with(festivals=ONLY_DOUBLE_ELEVEN,
                                    contact={"default_consent": {"email": False, "in_app": False}}))
    no_consent.feed(paid(datetime(2025, 11, 1, 12, tzinfo=UTC))).run_until(datetime(2025, 11, 12, tzinfo=UTC))
    assert _of(no_consent, "festival_notice") == [] and ("festival_notice", "no_consent") in no_consent.suppressions
    # a one-time buyer's love-period care falls due the same morning: it goes first, the notice a day later
    capped = Driver(policy_with(festivals=ONLY_DOUBLE_ELEVEN, campaigns={"new": {"delay": "1h", "every": "1000d"}}))
    capped.feed(paid(datetime(2025, 11, 11, 9, tzinfo=UTC))).run_until(datetime(2025, 11, 14, tzinfo=UTC))
    [care] = _of(capped, "lifecycle_new")
    [notice] = _of(capped, "festival_notice")
    assert notice.send_after == care.send_after + timedelta(days=1)
    assert ("festival_notice", "frequency_cap") in capped.deferred


def test_an_erased_customer_gets_no_notice():
    driver = Driver(policy_with(festivals=ONLY_DOUBLE_ELEVEN)).feed(paid(datetime(2025, 11, 1, 12, tzinfo=UTC)))
    driver.feed(event("consent.erasure_requested", datetime(2025, 11, 2, tzinfo=UTC))).run_until(
        datetime(2025, 11, 2, 1, tzinfo=UTC))
    assert driver.state is None
    assert _of(driver, "festival_notice") == []


def test_a_customer_who_changes_time_zone_gets_each_notice_once():
    driver = Driver(policy_with(festivals=ONLY_DOUBLE_ELEVEN))
    driver.feed(paid(datetime(2025, 11, 1, 12, tzinfo=UTC)))  # scheduled for 10:00 UTC on 11-11
    driver.feed(event("visit.page_view", datetime(2025, 11, 10, 12, tzinfo=UTC),
                      context={"timezone": "America/Los_Angeles"}))
    driver.run_until(datetime(2025, 11, 13, tzinfo=UTC))
    assert len(_of(driver, "festival_notice")) == 1


def test_a_grade_with_a_members_offer_gets_a_coupon_with_its_notice_and_no_one_else_does():
    def notice(total, store=None):
        driver = Driver(policy_with(festivals=ONLY_DOUBLE_ELEVEN), **({"store": store} if store else {}))
        driver.feed(paid(datetime(2025, 11, 1, 12, tzinfo=UTC), total=total))
        [notice] = _of(driver.run_until(datetime(2025, 11, 12, tzinfo=UTC)), "festival_notice")
        return notice

    bronze, platinum = notice(60.0), notice(6000.0)
    assert bronze.coupon is None and "members' offer" not in bronze.reason.detail
    assert platinum.reason.tier == "platinum" and platinum.coupon is not None
    assert "a members' offer (platinum)" in platinum.reason.detail
    # the festival boosts it like a campaign coupon: Double Eleven doubles the grade's 5 %
    plain = policy_with(festivals={"windows": [{"name": "Double Eleven", "start": "11-11", "end": "11-11",
                                                "coupon_boost": 1.0}]})
    unboosted = Driver(plain).feed(paid(datetime(2025, 11, 1, 12, tzinfo=UTC), total=6000.0))
    [flat] = _of(unboosted.run_until(datetime(2025, 11, 12, tzinfo=UTC)), "festival_notice")
    assert platinum.coupon.value > flat.coupon.value


def test_the_top_value_group_gets_the_members_offer_where_the_policy_gives_it_one():
    from remarket.domain.store import StoreSnapshot

    policy = policy_with(festivals=ONLY_DOUBLE_ELEVEN, top_value={"festival_coupon_percent": 10})
    driver = Driver(policy, store=StoreSnapshot(top_value=100.0))
    driver.feed(paid(datetime(2025, 11, 1, 12, tzinfo=UTC), total=150.0))
    [notice] = _of(driver.run_until(datetime(2025, 11, 12, tzinfo=UTC)), "festival_notice")
    assert notice.reason.tier == "bronze" and notice.reason.top_value and notice.coupon is not None
    assert "top value" in notice.reason.detail


# ---------------------------------------------------------------- the cached occasion moments

def _next_occasion_uncached(after, tz, policy):
    """The search `next_occasion` did before its moments were cached: every day converted each time."""
    from remarket.domain.calendar import local_moment
    from remarket.domain.rules.festivals import _day, _occasions
    from remarket.domain.state import from_ts, to_ts

    year, best = from_ts(after).astimezone(tz).year, None
    for candidate_year in (year, year + 1, year + 2):
        for _, _, month_day in _occasions(policy):
            if (day := _day(candidate_year, month_day)) is None:
                continue
            moment = to_ts(local_moment(day, policy.festivals.notice_time, tz))
            if moment > after and (best is None or moment < best):
                best = moment
        if best is not None:
            return best
    return best


ZONES = ("UTC", "Europe/Berlin", "America/New_York", "America/Sao_Paulo", "Australia/Lord_Howe",
         "Asia/Kathmandu", "Pacific/Kiritimati", "Pacific/Pago_Pago")


def test_cached_occasion_moments_match_the_day_by_day_search_across_zones_and_dst_changes():
    from zoneinfo import ZoneInfo

    from remarket.domain.rules.festivals import next_occasion
    from remarket.domain.state import to_ts

    # 02:30 on the last Sunday of March 2025 and 2026 is skipped in Berlin; 01:30 on 2 and 1 Nov in New York
    # happens twice; 02-29 exists one year in four; 12-31 and 01-01 test the turn of the year.
    greetings = [{"name": n, "date": d} for n, d in (("Gap", "03-30"), ("Gap 2026", "03-29"), ("Fold", "11-02"),
                                                      ("Fold 2026", "11-01"), ("Leap", "02-29"),
                                                      ("Eve", "12-31"), ("New Year", "01-01"))]
    policies = [policy_with(), policy_with(festivals={"greetings": greetings, "notice_time": "02:30"}),
                policy_with(festivals={"greetings": greetings, "notice_time": "01:30"}),
                policy_with(festivals={"windows": [], "greetings": [{"name": "Leap", "date": "02-29"}]})]
    start = to_ts(datetime(2023, 12, 30, tzinfo=UTC))
    checked = 0
    for policy in policies:
        for name in ZONES:
            tz = ZoneInfo(name)
            for after in range(start, start + 3 * 366 * 86_400, 61 * 3_600 + 1_234):
                expected = _next_occasion_uncached(after, tz, policy)
                assert next_occasion(after, tz, policy) == expected, (name, after)
                if expected is not None:  # exactly at a moment: the next one, strictly after
                    assert next_occasion(expected, tz, policy) == _next_occasion_uncached(expected, tz, policy)
                checked += 1
    assert checked > 5_000


def test_no_occasions_no_moment():
    from zoneinfo import ZoneInfo

    from remarket.domain.rules.festivals import next_occasion

    policy = policy_with(festivals={"windows": [], "greetings": []})
    assert next_occasion(0, ZoneInfo("UTC"), policy) is None
