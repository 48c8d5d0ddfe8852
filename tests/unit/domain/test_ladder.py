"""The incentive ladder holds whatever the customer prefers: none < small < medium < large."""
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from remarket.domain.calendar import zone
from remarket.domain.contact import coupon_for
from remarket.domain.events import PromotionType
from remarket.domain.policy import DEFAULT_POLICY
from remarket.domain.state import Offer

from .factories import Driver, days, paid, policy_with

CAMPAIGN_LADDER = ("growth", "mature", "declining", "churned")  # none < small < medium < large
TARGETED_LADDER = ("mature", "declining", "churned")
# activity (active, lapsing, inactive) x grade (no concession, each configured grade's factor)
FACTORS = tuple(activity * grade
                for activity in (DEFAULT_POLICY.coupon.active_factor, 1.0, DEFAULT_POLICY.coupon.inactive_factor)
                for grade in (1.0, *(g.coupon_factor for g in DEFAULT_POLICY.grades.values())))
DATES = (datetime(2025, 5, 5, 12, tzinfo=UTC), datetime(2025, 3, 10, 12, tzinfo=UTC),  # none, March festival
         datetime(2025, 11, 11, 12, tzinfo=UTC))  # Double Eleven: the biggest boost
UTC_ZONE = zone("UTC", "UTC")


def _size(coupon):
    """Comparable within one type: no coupon < any coupon; then value, then the discount on top."""
    return (0, 0.0, 0.0) if coupon is None else (1, coupon.value, coupon.extra_percent)


def _strictly_increasing(sizes):
    return all(a < b for a, b in zip(sizes, sizes[1:]))


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(list(PromotionType)), factor=st.sampled_from(FACTORS), when=st.sampled_from(DATES))
def test_campaign_coupons_climb_the_ladder_in_every_promotion_type(kind, factor, when):
    sizes = []
    for stage in CAMPAIGN_LADDER:
        campaign = getattr(DEFAULT_POLICY.campaigns, stage)
        offer = Offer(type=kind, percent=campaign.coupon_percent, valid=86_400, boost=True)
        sizes.append(_size(coupon_for(offer, when, UTC_ZONE, DEFAULT_POLICY, factor)[0]))
    assert _strictly_increasing(sizes), (kind, factor, when, sizes)


@settings(max_examples=100, deadline=None)
@given(kind=st.sampled_from(list(PromotionType)), factor=st.sampled_from(FACTORS))
def test_targeted_coupons_grow_from_mature_to_churned_in_every_promotion_type(kind, factor):
    sizes = [_size(coupon_for(Offer(type=kind, percent=DEFAULT_POLICY.coupon.percent_by_stage[stage], valid=1),
                              DATES[0], UTC_ZONE, DEFAULT_POLICY, factor)[0])
             for stage in TARGETED_LADDER]
    assert _strictly_increasing(sizes), (kind, factor, sizes)


def test_free_shipping_grows_by_a_discount_on_top():
    offers = [Offer(type=PromotionType.FREE_SHIPPING, percent=p, valid=1) for p in (5, 15, 25)]
    coupons = [coupon_for(o, DATES[0], UTC_ZONE, DEFAULT_POLICY)[0] for o in offers]
    assert [(c.value, c.unit.value, c.extra_percent) for c in coupons] == [
        (0.0, "amount", 0.0), (0.0, "amount", 10.0), (0.0, "amount", 20.0)]


def test_a_gift_preferring_customer_gets_bigger_gifts_as_they_lapse():
    t = datetime(2025, 5, 5, 12, tzinfo=UTC)
    policy = policy_with(campaigns={"mature": {"cycle_min": "7d"}})
    driver = Driver(policy)
    for i in range(5):
        driver.feed(paid(t + days(10 * i), f"o{i}", coupon_type="gift"))
    driver.run_until(t + days(400))
    values = {a.kind.value: a.coupon.value for a in driver.actions if a.coupon is not None}
    assert {a.coupon.type for a in driver.actions if a.coupon is not None} == {"gift"}
    # gift 10.0 at 5 %, email-inactive x 1.2: 12, 36, 60
    assert values == {"lifecycle_mature": 12.0, "lifecycle_declining": 36.0, "lifecycle_churned": 60.0}
