"""Merchant policy: every threshold, window, size and cap, with defaults from the domain notes.

One frozen pydantic model with a section per concern. Durations accept "30m", "20d", "1h30m",
"2w", ISO 8601 ("P20D") or seconds. `load_policy` reads TOML and turns every validation problem
into one `PolicyError` whose lines name the field path ("lifecycle.declining_factor: ...").
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from remarket.domain.events import Channel, PromotionType
from remarket.domain.vocabulary import STAGES  # noqa: F401  (re-exported: STAGES is the policy's too)

CAMPAIGN_STAGES = ("new", "growth", "mature", "declining", "churned")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(w|d|h|m|s)")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def _parse_duration(value: Any) -> Any:
    """"1h30m" -> timedelta; anything else is left to pydantic (ISO 8601, seconds)."""
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text and _DURATION_PART.sub("", text) == "":
            return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text)))
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]
PositiveDuration = Annotated[Duration, Field(gt=timedelta(0))]
NonNegativeDuration = Annotated[Duration, Field(ge=timedelta(0))]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
MonthDay = Annotated[str, Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventsPolicy(_Section):
    future_tolerance: PositiveDuration = Field(
        timedelta(minutes=5), description="Events further ahead of their receipt time are rejected.")
    max_age: PositiveDuration = Field(
        timedelta(days=3650), description="Events older than this when received are rejected (clock errors, "
                                          "epoch-zero timestamps); history backfills within it are fine.")
    reorder_tolerance: NonNegativeDuration = Field(
        timedelta(seconds=30), description="Events are held this long so late arrivals fold in event-time order; "
                                           "also the lag of time-driven decisions behind the clock.")
    dedup_event_ids: int = Field(
        32, ge=1, le=10_000, description="Recent event ids remembered per customer (redeliveries come soon after).")


class LimitsPolicy(_Section):
    """Bounds on what one customer's state may hold (oldest entries are forgotten first)."""

    open_orders: int = Field(10, ge=1, le=1000)
    products: int = Field(20, ge=1, le=1000, description="Products with recent attention.")
    contacts: int = Field(16, ge=1, le=1000, description="Recent messages kept for frequency caps.")
    couponed_products: int = Field(20, ge=1, le=1000, description="Products remembered for once-per-window.")
    closed_ids: int = Field(20, ge=1, le=1000, description="Recently paid/cancelled order and cart ids.")
    reorder_buffer: int = Field(50, ge=1, le=10_000, description="Events held for reordering.")
    pending_sends: int = Field(16, ge=1, le=1000, description="Emitted actions not yet due, kept to withdraw them.")
    waiting: int = Field(8, ge=1, le=1000, description="Capped messages waiting for a slot.")


class ActivityPolicy(_Section):
    email_active_window: PositiveDuration = timedelta(days=30)
    email_active_min: int = Field(2, ge=1, le=100, description="Opens/clicks within the window to be active.")
    email_inactive_after: PositiveDuration = Field(timedelta(days=60), description="No open/click this long: inactive.")
    site_active_window: PositiveDuration = timedelta(days=30)
    site_active_min: int = Field(1, ge=1, le=100, description="Visits/cart events within the window to be active.")
    site_inactive_after: PositiveDuration = timedelta(days=60)

    @model_validator(mode="after")
    def _windows_nest(self) -> "ActivityPolicy":
        for kind in ("email", "site"):
            if getattr(self, f"{kind}_inactive_after") < getattr(self, f"{kind}_active_window"):
                raise ValueError(f"activity.{kind}_inactive_after: must not be shorter than {kind}_active_window")
        return self


class LifecyclePolicy(_Section):
    default_cycle: PositiveDuration = Field(
        timedelta(days=60), description="Store-wide purchase cycle, used for one-time buyers.")
    min_cycle: PositiveDuration = Field(
        timedelta(days=7), description="A personal cycle is never taken as shorter than this.")
    love_period: PositiveDuration = Field(timedelta(days=90), description="A one-order customer is 'new' this long.")
    growth_from_orders: int = Field(2, ge=2, le=10_000)
    mature_from_orders: int = Field(5, ge=2, le=10_000)
    declining_factor: float = Field(1.5, gt=1, le=100, allow_inf_nan=False)
    churned_factor: float = Field(3.0, gt=1, le=100, allow_inf_nan=False)
    churned_after_max: PositiveDuration = Field(
        timedelta(days=180), description="Churned at the latest this long after the last order.")

    @model_validator(mode="after")
    def _consistent(self) -> "LifecyclePolicy":
        if self.declining_factor >= self.churned_factor:
            raise ValueError("lifecycle.declining_factor: must be less than lifecycle.churned_factor")
        if self.mature_from_orders <= self.growth_from_orders:
            raise ValueError("lifecycle.mature_from_orders: must be greater than growth_from_orders")
        if self.min_cycle > self.default_cycle:
            raise ValueError("lifecycle.min_cycle: must not exceed default_cycle")
        return self


class TierLevel(_Section):
    name: str = Field(min_length=1, max_length=32)
    min: float = Field(ge=0, allow_inf_nan=False)


def _levels(*pairs: tuple[str, float]) -> list[TierLevel]:
    return [TierLevel(name=n, min=m) for n, m in pairs]


class TierPolicy(_Section):
    basis: Literal["amount", "orders"] = Field("amount", description="Grade by lifetime paid amount or order count.")
    amount_levels: list[TierLevel] = Field(
        default_factory=lambda: _levels(("bronze", 0), ("silver", 200), ("gold", 1000), ("platinum", 5000)))
    order_levels: list[TierLevel] = Field(
        default_factory=lambda: _levels(("bronze", 0), ("silver", 2), ("gold", 5), ("platinum", 10)))

    @model_validator(mode="after")
    def _strictly_increasing(self) -> "TierPolicy":
        for field in ("amount_levels", "order_levels"):
            levels = getattr(self, field)
            if not levels:
                raise ValueError(f"tier.{field}: needs at least one level")
            if levels[0].min != 0:
                raise ValueError(f"tier.{field}: the first level must start at 0")
            if any(b.min <= a.min for a, b in zip(levels, levels[1:])):
                raise ValueError(f"tier.{field}: minimums must be strictly increasing")
            if len({level.name for level in levels}) != len(levels):
                raise ValueError(f"tier.{field}: level names must be unique")
        return self


def _four_increasing(path: str, cuts: list[float]) -> None:
    if len(cuts) != 4 or any(b <= a for a, b in zip(cuts, cuts[1:])):
        raise ValueError(f"rfm.{path}: needs 4 strictly increasing cut points")


class RfmPolicy(_Section):
    """Scores 1–5. Recency: 5 when the last order is at most recency_days[0] days old.
    Frequency/monetary: 1 + how many cut points the customer reaches."""

    recency_days: list[float] = Field(default_factory=lambda: [30, 90, 180, 365])
    frequency_orders: list[float] = Field(default_factory=lambda: [2, 3, 5, 8])
    monetary_amount: list[float] = Field(default_factory=lambda: [50, 200, 500, 1000])

    @model_validator(mode="after")
    def _cuts(self) -> "RfmPolicy":
        _four_increasing("recency_days", self.recency_days)
        _four_increasing("frequency_orders", self.frequency_orders)
        _four_increasing("monetary_amount", self.monetary_amount)
        return self


class ScorePolicy(_Section):
    """BG/NBD (Fader, Hardie & Lee 2005) population parameters, time unit = days.
    Defaults: the paper's CDNOW fit (r=0.243, alpha=4.414 weeks, a=0.793, b=2.426), alpha in days."""

    horizon: PositiveDuration = Field(timedelta(days=90), description="P(at least one purchase within this).")
    r: float = Field(0.243, gt=0, le=1e4, allow_inf_nan=False)
    alpha: float = Field(30.898, gt=0, le=1e6, allow_inf_nan=False)
    a: float = Field(0.793, gt=0, le=1e4, allow_inf_nan=False)
    b: float = Field(2.426, gt=0, le=1e4, allow_inf_nan=False)


class PreferencePolicy(_Section):
    min_redemptions: int = Field(1, ge=1, le=1000, description="Redemptions of a type before it counts as preferred.")
    default: PromotionType = Field(PromotionType.DISCOUNT, description="Coupon type when no preference is known.")


class ReminderPolicy(_Section):
    enabled: bool = True
    delay: PositiveDuration = timedelta(minutes=30)
    valid_for: PositiveDuration = Field(timedelta(days=1), description="expires_at = send_after + this.")
    include_checkouts: bool = Field(True, description="Also remind started-but-unfinished checkouts.")
    skip_if_reminded_within: NonNegativeDuration = timedelta(days=20)
    skip_if_paid_recently: bool = Field(
        False, description="Seller option: no reminder when another order was paid within skip_if_paid_within.")
    skip_if_paid_within: NonNegativeDuration = timedelta(days=20)


class TargetedCouponPolicy(_Section):
    enabled: bool = True
    delay: PositiveDuration = Field(timedelta(hours=24), description="Attention with no order this long: coupon.")
    repeat_views: int = Field(2, ge=1, le=1000, description="Product views that count as attention.")
    attention_window: PositiveDuration = Field(timedelta(days=14), description="Views older than this are forgotten.")
    once_per: PositiveDuration = Field(timedelta(days=30), description="At most one coupon per product this long.")
    valid_for: PositiveDuration = timedelta(days=3)
    percent_by_stage: dict[str, Percent] = Field(default_factory=lambda: {
        "prospect": 10, "new": 5, "growth": 5, "mature": 5, "declining": 10, "churned": 15})
    active_factor: float = Field(0.6, gt=0, le=1, description="Email-active customers get smaller discounts "
                                                             "(every coupon: targeted and campaign).")
    inactive_factor: float = Field(1.2, ge=1, le=10, description="Email-inactive customers get bigger ones.")
    min_spend: float = Field(0, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _every_stage(self) -> "TargetedCouponPolicy":
        if set(self.percent_by_stage) != set(STAGES):
            raise ValueError(f"coupon.percent_by_stage: needs exactly the stages {', '.join(STAGES)}")
        return self


class CouponTypesPolicy(_Section):
    """How a promotion type becomes a coupon value: percent types scale; the others are fixed amounts."""

    percent_types: list[PromotionType] = Field(default_factory=lambda: [
        PromotionType.DISCOUNT, PromotionType.SPECIAL_PRICE, PromotionType.VALUE_BUNDLE])
    amount_by_type: dict[PromotionType, float] = Field(default_factory=lambda: {
        PromotionType.GIFT: 10.0, PromotionType.FREE_SHIPPING: 0.0},
        description="Value of the non-percent types at reference_percent; they grow in proportion to the "
                    "coupon's size (free shipping: 0 = the whole fee, then a discount on top grows instead).")
    reference_percent: Percent = Field(
        5, gt=0, description="The size at which amount_by_type applies (the small coupon): a 15 % offer for a "
                             "customer who prefers gifts is a gift worth 3x the amount.")
    max_percent: Percent = Field(40, description="No coupon, boosted or not, exceeds this.")

    @model_validator(mode="after")
    def _every_type(self) -> "CouponTypesPolicy":
        missing = set(PromotionType) - set(self.percent_types) - set(self.amount_by_type)
        if missing:
            raise ValueError(f"coupon_types.amount_by_type: no value rule for {', '.join(sorted(missing))}")
        return self


class CampaignPolicy(_Section):
    enabled: bool = True
    delay: NonNegativeDuration = Field(timedelta(0), description="After entering the stage.")
    cadence: Literal["once", "cycle", "fixed"] = Field(
        "once", description="once: on entry only; cycle: every personal purchase cycle; fixed: every `every`.")
    every: PositiveDuration = timedelta(days=30)
    cycle_min: PositiveDuration = timedelta(days=14)
    cycle_max: PositiveDuration = timedelta(days=90)
    coupon_percent: Percent = Field(0, description="0 = no coupon (a notice).")
    products: int = Field(3, ge=0, le=20, description="Name up to this many products the customer looked at "
                                                        "and did not buy (most recent first); 0 = none.")
    popular: int = Field(0, ge=0, le=20, description="Then up to this many of the store's popular products "
                                                      "(see [popular]); 0 = none.")
    min_spend: float = Field(0, ge=0, allow_inf_nan=False)
    valid_for: PositiveDuration = timedelta(days=7)

    @model_validator(mode="after")
    def _cycle_bounds(self) -> "CampaignPolicy":
        if self.cycle_min > self.cycle_max:
            raise ValueError("cycle_min: must not exceed cycle_max")
        return self


# One class per stage so that a file overriding one field keeps that stage's other defaults.
class NewCampaign(CampaignPolicy):
    """Love-period care: preferential information, no coupon."""

    delay: NonNegativeDuration = timedelta(days=1)
    cadence: Literal["once", "cycle", "fixed"] = "fixed"


class GrowthCampaign(CampaignPolicy):
    """New-product notices and recommendations, no coupon."""

    cadence: Literal["once", "cycle", "fixed"] = "cycle"
    popular: int = 3


class MatureCampaign(CampaignPolicy):
    """Small exclusive coupons on the customer's own rhythm."""

    cadence: Literal["once", "cycle", "fixed"] = "cycle"
    popular: int = 3
    coupon_percent: Percent = 5


class DecliningCampaign(CampaignPolicy):
    """Limited contact, medium coupon."""

    coupon_percent: Percent = 15


class ChurnedCampaign(CampaignPolicy):
    """Recall with a large win-back coupon."""

    popular: int = 3
    coupon_percent: Percent = 25
    valid_for: PositiveDuration = timedelta(days=14)


class CampaignsPolicy(_Section):
    new: NewCampaign = NewCampaign()
    growth: GrowthCampaign = GrowthCampaign()
    mature: MatureCampaign = MatureCampaign()
    declining: DecliningCampaign = DecliningCampaign()
    churned: ChurnedCampaign = ChurnedCampaign()


class FrequencyCap(_Section):
    max: int = Field(ge=1, le=1000)
    window: PositiveDuration


class ContactPolicy(_Section):
    default_consent: dict[Channel, bool] = Field(
        default_factory=lambda: {Channel.EMAIL: True, Channel.IN_APP: True, Channel.PUSH: False, Channel.SMS: False},
        description="Consent assumed until a consent event says otherwise.")
    active_channels: list[Channel] = Field(default_factory=lambda: [Channel.EMAIL, Channel.IN_APP, Channel.PUSH])
    site_active_channels: list[Channel] = Field(
        default_factory=lambda: [Channel.IN_APP, Channel.PUSH, Channel.EMAIL],
        description="Not active by email but active on the site: reach them where they are.")
    inactive_channels: list[Channel] = Field(default_factory=lambda: [Channel.SMS, Channel.PUSH, Channel.EMAIL])
    email_bounce_limit: int = Field(2, ge=1, le=100, description="Bounces (without an open since) that stop email.")
    default_timezone: str = Field("UTC", description="For customers whose time zone is unknown.")
    cap: FrequencyCap = FrequencyCap(max=1, window=timedelta(days=1))
    stage_caps: dict[str, FrequencyCap] = Field(
        default_factory=lambda: {"declining": FrequencyCap(max=1, window=timedelta(days=7))})
    cap_exempt_kinds: list[str] = Field(default_factory=lambda: ["payment_reminder"],
                                        description="Transactional kinds that are never capped (still counted).")

    @model_validator(mode="after")
    def _consistent(self) -> "ContactPolicy":
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.default_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"contact.default_timezone: unknown time zone {self.default_timezone!r}") from None
        for stage in self.stage_caps:
            if stage not in STAGES:
                raise ValueError(f"contact.stage_caps.{stage}: not a stage ({', '.join(STAGES)})")
        for kind in self.cap_exempt_kinds:
            _check_kind("contact.cap_exempt_kinds", kind)
        return self


Rank = Annotated[int, Field(ge=0, le=100)]


class KindPriority(_Section):
    """Who gets a free slot first when capped messages compete: lower goes first."""

    payment_reminder: Rank = 0
    lifecycle_churned: Rank = 1
    lifecycle_declining: Rank = 1
    targeted_coupon: Rank = 2
    lifecycle_new: Rank = 2
    lifecycle_growth: Rank = 2
    lifecycle_mature: Rank = 2
    festival_notice: Rank = 3
    win_back_early: Rank = 1
    holiday_greeting: Rank = 3


class KindWindow(_Section):
    """How long a capped message of each kind may wait for a slot; 0 = dropped when capped."""

    payment_reminder: NonNegativeDuration = timedelta(days=1)
    targeted_coupon: NonNegativeDuration = timedelta(days=2)
    lifecycle_new: NonNegativeDuration = timedelta(days=7)
    lifecycle_growth: NonNegativeDuration = timedelta(days=7)
    lifecycle_mature: NonNegativeDuration = timedelta(days=7)
    lifecycle_declining: NonNegativeDuration = timedelta(days=7)
    lifecycle_churned: NonNegativeDuration = timedelta(days=14)
    festival_notice: NonNegativeDuration = timedelta(days=2)
    win_back_early: NonNegativeDuration = timedelta(days=14)
    holiday_greeting: NonNegativeDuration = timedelta(days=1)


class WaitingPolicy(_Section):
    """A capped message waits for the next allowed slot, by priority, until its kind's window ends."""

    priority: KindPriority = KindPriority()
    wait_for: KindWindow = KindWindow()


class QuietHoursPolicy(_Section):
    start: time = Field(time(21, 0), description="Local time quiet hours begin (customer's zone).")
    end: time = Field(time(9, 0), description="Local time they end; may be on the next day. start == end: none.")
    exempt_kinds: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> "QuietHoursPolicy":
        for name in ("start", "end"):
            if getattr(self, name).tzinfo is not None:
                raise ValueError(f"quiet_hours.{name}: must be a local time without offset")
        for kind in self.exempt_kinds:
            _check_kind("quiet_hours.exempt_kinds", kind)
        return self


class FestivalWindow(_Section):
    name: str = Field(min_length=1, max_length=64)
    start: MonthDay = Field(description="MM-DD, first day, customer's local date, every year.")
    end: MonthDay = Field(description="MM-DD, last day (may wrap past the new year).")
    coupon_boost: float = Field(1.5, ge=1, le=10, description="Campaign coupon values are multiplied by this.")
    notice: bool = Field(True, description="Send the platform's promotion notice on the first day.")


class Greeting(_Section):
    name: str = Field(min_length=1, max_length=64)
    date: MonthDay = Field(description="MM-DD, customer's local date, every year.")


class FestivalPolicy(_Section):
    hold_cadence_within: NonNegativeDuration = Field(
        timedelta(days=7), description="A cadence campaign due this close before a festival waits for it.")
    notice_stages: list[str] = Field(
        default_factory=lambda: ["new", "growth", "mature", "declining", "churned"],
        description="Who gets festival notices and greetings: every customer, the churned included.")
    notice_time: time = Field(time(10, 0), description="Local time on the day that notices and greetings go out.")
    notice_valid_for: PositiveDuration = timedelta(days=3)
    greetings: list[Greeting] = Field(default_factory=list,
                                      description="Non-promotional holiday greetings (none unless configured).")
    windows: list[FestivalWindow] = Field(default_factory=lambda: [
        FestivalWindow(name="March New Trade Festival", start="03-01", end="03-31", coupon_boost=1.5),
        FestivalWindow(name="September Procurement Festival", start="09-01", end="09-30", coupon_boost=1.5),
        FestivalWindow(name="Double Eleven", start="11-11", end="11-11", coupon_boost=2.0),
    ])

    @model_validator(mode="after")
    def _stages(self) -> "FestivalPolicy":
        for stage in self.notice_stages:
            if stage not in STAGES:
                raise ValueError(f"festivals.notice_stages: {stage!r} is not a stage ({', '.join(STAGES)})")
        if self.notice_time.tzinfo is not None:
            raise ValueError("festivals.notice_time: must be a local time without offset")
        return self


CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class MoneyPolicy(_Section):
    """Amounts in other currencies are converted to the base currency; unknown ones are rejected."""

    base_currency: CurrencyCode = Field("EUR", description="Tiers, RFM and spend are kept in this currency.")
    rates: dict[CurrencyCode, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: {"EUR": 1.0},
        description="Value of 1 unit of each accepted currency in the base currency.")

    @model_validator(mode="after")
    def _base_is_one(self) -> "MoneyPolicy":
        if self.rates.get(self.base_currency, 1.0) != 1.0:
            raise ValueError(f"money.rates.{self.base_currency}: the base currency's rate must be 1")
        return self


class HoldoutPolicy(_Section):
    share: Share = Field(0.05, description="Share of customers in the control group (stable hash of the id).")
    salt: str = Field("remarket-holdout-1", min_length=1, max_length=64, description="Change to redraw the group.")
    kinds: list[str] = Field(
        default_factory=lambda: ["targeted_coupon", "lifecycle_new", "lifecycle_growth", "lifecycle_mature",
                                 "lifecycle_declining", "lifecycle_churned", "festival_notice", "win_back_early"],
        description="Action kinds withheld from the control group: marketing by default; add "
                    "payment_reminder only as an explicit choice.")

    @model_validator(mode="after")
    def _known_kinds(self) -> "HoldoutPolicy":
        for kind in self.kinds:
            _check_kind("holdout.kinds", kind)
        return self


def _check_kind(path: str, kind: str) -> None:
    from remarket.domain.actions import ActionKind

    if kind not in {k.value for k in ActionKind}:
        raise ValueError(f"{path}: {kind!r} is not an action kind")


class GradePolicy(_Section):
    """What a membership grade (tier) gets on top of its stage and activity."""

    coupon_factor: float = Field(1.0, ge=0.5, le=3, allow_inf_nan=False,
                                 description="Every coupon of this grade is multiplied by this.")
    referral_ask: bool = Field(False, description="Email-active customers of this grade are asked to refer "
                                                  "friends in their growth / mature campaigns and festival notices.")
    early_win_back_below: Share | None = Field(
        None, description="A growth / mature customer of this grade whose repurchase score falls below this "
                          "gets the win-back (the churned campaign's coupon) early, once per purchase.")
    cap_bonus: int = Field(0, ge=0, le=10, description="Messages this grade may get beyond contact.cap in each "
                                                       "cap window (stage caps still hold): its capped messages "
                                                       "wait less.")
    festival_coupon_percent: Percent = Field(
        0, description="An offer exclusive to this grade: its festival notices carry a coupon of this size "
                       "(sized by activity and the grade's factor like any coupon, boosted by the festival); "
                       "everyone else gets the notice alone. 0: the notice alone.")

    def merged(self, other: "GradePolicy") -> "GradePolicy":
        """The more generous of two sets of concessions, field by field."""
        thresholds = [t for t in (self.early_win_back_below, other.early_win_back_below) if t is not None]
        return GradePolicy(coupon_factor=max(self.coupon_factor, other.coupon_factor),
                           referral_ask=self.referral_ask or other.referral_ask,
                           early_win_back_below=max(thresholds, default=None),
                           cap_bonus=max(self.cap_bonus, other.cap_bonus),
                           festival_coupon_percent=max(self.festival_coupon_percent, other.festival_coupon_percent))


NO_CONCESSIONS = GradePolicy()


class TopValuePolicy(GradePolicy):
    """The top share of buyers by lifetime value, kept live from the customers a worker holds, and
    its concessions (combined with the grade's: the more generous of each)."""

    share: Share = Field(0.2, gt=0, description="The group: buyers whose lifetime value is in this top share.")
    min_buyers: int = Field(100, ge=1, le=10_000_000,
                            description="Fewer buyers known than this: no group yet (a threshold from a few "
                                        "customers means little).")
    coupon_factor: float = Field(1.1, ge=0.5, le=3, allow_inf_nan=False)
    referral_ask: bool = True
    early_win_back_below: Share | None = 0.3
    cap_bonus: int = Field(1, ge=0, le=10)


class PopularPolicy(_Section):
    """The store's popular products: looked at (viewed, favourited, carted, not bought since) by the most
    customers lately; campaigns name them after the customer's own (campaigns.<stage>.popular)."""

    window: PositiveDuration = Field(timedelta(days=7), description="Attention within this counts.")
    min_customers: int = Field(3, ge=1, le=1_000_000, description="A product needs this many customers' attention.")


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field("default-1", min_length=1, max_length=64, description="Recorded with state and actions.")
    events: EventsPolicy = EventsPolicy()
    limits: LimitsPolicy = LimitsPolicy()
    activity: ActivityPolicy = ActivityPolicy()
    lifecycle: LifecyclePolicy = LifecyclePolicy()
    tier: TierPolicy = TierPolicy()
    rfm: RfmPolicy = RfmPolicy()
    score: ScorePolicy = ScorePolicy()
    preference: PreferencePolicy = PreferencePolicy()
    reminder: ReminderPolicy = ReminderPolicy()
    coupon: TargetedCouponPolicy = TargetedCouponPolicy()
    coupon_types: CouponTypesPolicy = CouponTypesPolicy()
    campaigns: CampaignsPolicy = CampaignsPolicy()
    contact: ContactPolicy = ContactPolicy()
    waiting: WaitingPolicy = WaitingPolicy()
    quiet_hours: QuietHoursPolicy = QuietHoursPolicy()
    festivals: FestivalPolicy = FestivalPolicy()
    money: MoneyPolicy = MoneyPolicy()
    grades: dict[str, GradePolicy] = Field(
        default_factory=lambda: {"gold": GradePolicy(referral_ask=True, early_win_back_below=0.3),
                                 "platinum": GradePolicy(coupon_factor=1.1, referral_ask=True,
                                                         early_win_back_below=0.3, festival_coupon_percent=5)},
        description="Concessions per tier name (tiers not listed: factor 1, no referral ask).")
    top_value: TopValuePolicy = TopValuePolicy()
    popular: PopularPolicy = PopularPolicy()
    holdout: HoldoutPolicy = HoldoutPolicy()

    @model_validator(mode="after")
    def _grades_are_tiers(self) -> "Policy":
        names = {level.name for level in (*self.tier.amount_levels, *self.tier.order_levels)}
        for grade in self.grades:
            if grade not in names:
                raise ValueError(f"grades.{grade}: not a tier name ({', '.join(sorted(names))})")
        return self

    @cached_property
    def seconds(self) -> "PolicySeconds":
        """The durations the hot path compares against, as whole seconds, computed once."""
        return PolicySeconds.of(self)

    # The shell reads these two directly.
    @property
    def future_tolerance(self) -> timedelta:
        return self.events.future_tolerance

    @property
    def dedup_event_ids(self) -> int:
        return self.events.dedup_event_ids


def _s(duration: timedelta) -> int:
    return int(duration.total_seconds())


@dataclass(frozen=True)
class PolicySeconds:
    reorder_tolerance: int
    email_active_window: int
    email_inactive_after: int
    site_active_window: int
    site_inactive_after: int
    default_cycle: int
    min_cycle: int
    love_period: int
    churned_after_max: int
    reminder_delay: int
    skip_if_reminded_within: int
    skip_if_paid_within: int
    coupon_delay: int
    coupon_once_per: int
    attention_window: int
    longest_cap_window: int

    @classmethod
    def of(cls, policy: "Policy") -> "PolicySeconds":
        a, lc, r, c = policy.activity, policy.lifecycle, policy.reminder, policy.coupon
        caps = [policy.contact.cap, *policy.contact.stage_caps.values()]
        return cls(
            reorder_tolerance=_s(policy.events.reorder_tolerance),
            email_active_window=_s(a.email_active_window), email_inactive_after=_s(a.email_inactive_after),
            site_active_window=_s(a.site_active_window), site_inactive_after=_s(a.site_inactive_after),
            default_cycle=_s(lc.default_cycle), min_cycle=_s(lc.min_cycle), love_period=_s(lc.love_period),
            churned_after_max=_s(lc.churned_after_max),
            reminder_delay=_s(r.delay), skip_if_reminded_within=_s(r.skip_if_reminded_within),
            skip_if_paid_within=_s(r.skip_if_paid_within),
            coupon_delay=_s(c.delay), coupon_once_per=_s(c.once_per), attention_window=_s(c.attention_window),
            longest_cap_window=max(_s(cap.window) for cap in caps),
        )


DEFAULT_POLICY = Policy()


class PolicyError(ValueError):
    """A policy file that cannot be used; each line names the field path and the problem."""


_PHRASES = (("Input should be ", "must be "), ("Extra inputs are not permitted", "unknown field"),
            ("Field required", "required"), ("Value error, ", ""))


def _describe(error: dict[str, Any]) -> str:
    message = error["msg"]
    for old, new in _PHRASES:
        message = message.replace(old, new)
    path = ".".join(str(part) for part in error["loc"])
    if error["type"] == "value_error":
        # our own checks name the path from the section down; pydantic's loc is where they ran
        if "." in message.split(":", 1)[0]:
            return message
        return f"{path}.{message}" if path else message
    return f"{path}: {message}" if path else message


def policy_from_dict(document: dict[str, Any]) -> Policy:
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        raise PolicyError("\n".join(_describe(e) for e in exc.errors())) from None


def load_policy(path: Path) -> Policy:
    """Read a TOML policy file; missing fields take their defaults."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"not valid TOML: {exc}") from None
    return policy_from_dict(document)
