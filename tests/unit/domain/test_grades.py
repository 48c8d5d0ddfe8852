"""Value segments drive decisions: each grade its concessions, referral asks for engaged top customers."""
from datetime import UTC, datetime

import pytest

from remarket.domain.policy import PolicyError

from .factories import Driver, days, event, paid, placed, policy_with

T = datetime(2025, 5, 5, 12, tzinfo=UTC)


def _win_back_value(total):
    driver = Driver().feed(paid(T, total=total)).run_until(T + days(181))
    [churned] = [a for a in driver.actions if a.kind == "lifecycle_churned"]
    return churned.reason.tier, churned.coupon.value


def test_each_grade_gets_its_coupon_concession():
    assert _win_back_value(100.0) == ("bronze", 30.0)  # 25 % x 1.2 (email-inactive)
    assert _win_back_value(2000.0) == ("gold", 30.0)  # gold: factor 1 by default
    assert _win_back_value(6000.0) == ("platinum", 33.0)  # platinum: x 1.1
    driver = Driver(policy_with(grades={"silver": {"coupon_factor": 0.5}})).feed(paid(T, total=300.0))
    driver.run_until(T + days(181))
    assert [a.coupon.value for a in driver.actions if a.kind == "lifecycle_churned"] == [15.0]


def _growth_campaign(total, opens):
    driver = Driver()
    driver.feed(paid(T, "o1", total=total / 2), paid(T + days(20), "o2", total=total / 2),
                *(event("email.open", T + days(19) - days(i)) for i in range(opens)))
    driver.run_until(T + days(21))
    return driver


def test_engaged_high_value_customers_are_asked_to_refer_friends():
    [growth] = [a for a in _growth_campaign(1500.0, opens=2).actions if a.kind == "lifecycle_growth"]
    assert growth.reason.tier == "gold" and growth.referral_ask
    [not_engaged] = [a for a in _growth_campaign(1500.0, opens=0).actions if a.kind == "lifecycle_growth"]
    assert not not_engaged.referral_ask  # inactive: a stronger incentive, not an ask
    [bronze] = [a for a in _growth_campaign(100.0, opens=2).actions if a.kind == "lifecycle_growth"]
    assert not bronze.referral_ask


def test_reminders_never_carry_a_referral_ask():
    driver = Driver().feed(paid(T - days(5), "o0", total=2000.0), event("email.open", T - days(1)),
                           event("email.open", T), placed(T, "o1"))
    driver.run_until(T + days(1))
    [reminder] = [a for a in driver.actions if a.kind == "payment_reminder"]
    assert not reminder.referral_ask


def test_a_grade_must_be_a_tier_name():
    with pytest.raises(PolicyError, match="grades.diamond: not a tier name"):
        policy_with(grades={"diamond": {"coupon_factor": 2}})


def _slow_gold_buyer(policy=None):
    """Two orders 60 days apart, 1,200 in total: gold, growth, personal cycle 60 d (declining after 90 d)."""
    driver = Driver(policy or policy_with())
    driver.feed(paid(T, "o1", total=600.0), paid(T + days(60), "o2", total=600.0))
    return driver


def test_a_high_value_customer_at_risk_gets_the_win_back_before_declining():
    from remarket.domain.score import repurchase_score
    from remarket.domain.state import to_ts

    driver = _slow_gold_buyer().run_until(T + days(60 + 95))
    [early] = [a for a in driver.actions if a.kind == "win_back_early"]
    [declining] = [a for a in driver.actions if a.kind == "lifecycle_declining"]
    assert early.reason.stage == "growth" and early.reason.tier == "gold"
    assert early.created_at < declining.created_at
    at = to_ts(early.created_at)
    score_policy = driver.policy.score
    state = driver.state  # the purchase history is unchanged since: the score is a function of time
    assert repurchase_score(state, at, score_policy) < 0.3 <= repurchase_score(state, at - 3600, score_policy)
    assert early.coupon.value == 30.0  # the churned campaign's 25 % x 1.2 (email-inactive)
    assert "repurchase score" in early.reason.detail


def test_no_early_win_back_for_grades_without_it_or_after_a_new_order():
    bronze = Driver().feed(paid(T, "o1", total=20.0), paid(T + days(60), "o2", total=20.0))
    bronze.run_until(T + days(60 + 95))
    assert [a for a in bronze.actions if a.kind == "win_back_early"] == []
    off = _slow_gold_buyer(policy_with(grades={"gold": {"early_win_back_below": None}}))
    assert [a for a in off.run_until(T + days(155)).actions if a.kind == "win_back_early"] == []
    again = _slow_gold_buyer().run_until(T + days(100))
    again.feed(paid(T + days(101), "o3", total=50.0)).run_until(T + days(110))
    assert [a for a in again.actions if a.kind == "win_back_early"] == []  # bought again before the risk


def test_the_cached_merge_of_a_grade_with_the_top_value_group_is_the_merge_itself():
    from remarket.domain.policy import NO_CONCESSIONS, GradePolicy
    from remarket.domain.rules.grades import merged

    policy = policy_with(top_value={"coupon_factor": 1.3, "cap_bonus": 2, "early_win_back_below": 0.2})
    for grade in [NO_CONCESSIONS, *policy.grades.values(), GradePolicy(early_win_back_below=0.4, cap_bonus=3)]:
        assert merged(grade, policy.top_value) == grade.merged(policy.top_value)
        assert merged(grade, policy.top_value) is merged(grade, policy.top_value)  # built once
    other = policy_with(top_value={"coupon_factor": 2.0})  # another policy: its own merge
    assert merged(NO_CONCESSIONS, other.top_value).coupon_factor == 2.0
    assert merged(NO_CONCESSIONS, policy.top_value).coupon_factor == 1.3
