"""Festivals are for everyone: the platform's promotion notice and holiday greetings.

On the first day of a festival window marked `notice` (March New Trade Festival, September
Procurement Festival, Double Eleven by default), every customer in `festivals.notice_stages`
(the churned included: a reason to come back) gets a festival notice at the local
`notice_time`; on a configured greeting date, a non-promotional holiday greeting. Both go through
the same gate as every message (consent, quiet hours, caps: they wait, by the lowest priority).
A grade (or the top-value group) with `festival_coupon_percent` gets a coupon with its notice:
an offer exclusive to it.
The state keeps one number, the next such moment (`festival_due`); campaign coupons are boosted
inside festival windows elsewhere (contact.coupon_for).
"""
from __future__ import annotations

from bisect import bisect_right
from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

from remarket.domain.actions import ActionKind
from remarket.domain.calendar import customer_zone, local_moment
from remarket.domain.policy import Policy
from remarket.domain.store import UNKNOWN, StoreView
from remarket.domain.lifecycle import tier_of
from remarket.domain.rules.coupons import offer_type
from remarket.domain.rules.grades import concessions
from remarket.domain.state import CustomerState, Offer, Proposal, from_ts, to_ts


def _occasions(policy: Policy) -> list[tuple[ActionKind, str, str]]:
    """(kind, name, MM-DD) of every notice and greeting."""
    notices = [(ActionKind.FESTIVAL_NOTICE, w.name, w.start) for w in policy.festivals.windows if w.notice]
    greetings = [(ActionKind.HOLIDAY_GREETING, g.name, g.date) for g in policy.festivals.greetings]
    return notices + greetings


def _day(year: int, month_day: str) -> date | None:
    month, day = (int(part) for part in month_day.split("-"))
    try:
        return date(year, month, day)
    except ValueError:  # 02-29 in a common year
        return None


@lru_cache(maxsize=1024)  # zones x years x policies in use: a handful each
def occasion_moments(month_days: tuple[str, ...], at: time, tz: ZoneInfo, year: int) -> tuple[int, ...]:
    """The moments (epoch s, ascending) of `at` local time on each MM-DD of `month_days` in `year`,
    in the zone `tz` (a day missing that year, 02-29, has none). Depends on nothing else: cached."""
    return tuple(sorted(to_ts(local_moment(day, at, tz))
                        for month_day in month_days if (day := _day(year, month_day)) is not None))


def next_occasion(after: int, tz: ZoneInfo, policy: Policy) -> int | None:
    """The first notice or greeting moment strictly after `after` (epoch s), in the zone `tz`.
    A later local day is a later moment, so the first year with one after `after` has the answer."""
    festivals = policy.festivals  # the MM-DDs of `_occasions`, in its order
    month_days = (*(w.start for w in festivals.windows if w.notice), *(g.date for g in festivals.greetings))
    if not month_days:
        return None
    year = datetime.fromtimestamp(after, tz).year  # local year: one conversion, as from_ts(after).astimezone(tz)
    for candidate_year in (year, year + 1, year + 2):
        moments = occasion_moments(month_days, policy.festivals.notice_time, tz, candidate_year)
        if (index := bisect_right(moments, after)) < len(moments):
            return moments[index]
    return None


def schedule(state: CustomerState, t: int, policy: Policy) -> None:
    """Keep `festival_due` for customers who get notices (none for the others: no idle ticks)."""
    if state.stage in policy.festivals.notice_stages:
        if state.festival_due is None:  # a passed moment is `due`'s to fire, then it reschedules
            state.festival_due = next_occasion(t, customer_zone(state.timezone, policy), policy)
    elif state.festival_due is not None:  # asked after every folded event: assign only a change
        state.festival_due = None


def due(state: CustomerState, t: int, policy: Policy, effects=None, store: StoreView = UNKNOWN) -> list[Proposal]:
    """The notices and greetings of the day whose moment has come; then schedule the next."""
    at = state.festival_due
    if at is None or at > t:
        schedule(state, t, policy)
        return []
    tz = customer_zone(state.timezone, policy)
    local_day = from_ts(at).astimezone(tz).date()
    today = f"{local_day.month:02d}-{local_day.day:02d}"
    proposals = []
    fresh = t - at < int(policy.festivals.notice_valid_for.total_seconds())  # not after a long outage
    # once per local day, even if a new time zone brings the same day round again
    if fresh and state.stage in policy.festivals.notice_stages and local_day.toordinal() > state.festival_done:
        valid = int(policy.festivals.notice_valid_for.total_seconds())
        for kind, name, month_day in _occasions(policy):
            if month_day != today:
                continue
            rule = "festival_notice" if kind is ActionKind.FESTIVAL_NOTICE else "holiday_greeting"
            offer, detail = None, f"{name} {local_day.year}"
            if kind is ActionKind.FESTIVAL_NOTICE:
                offer, detail = _members_offer(state, policy, store, valid, detail)
            proposals.append(Proposal(kind=kind.value, ref=f"{rule}:{name}:{local_day.year}", rule=rule,
                                      valid=valid, stage=state.stage, offer=offer, detail=detail, since=t))
    if proposals:
        state.festival_done = local_day.toordinal()
    state.festival_due = None
    schedule(state, max(t, at), policy)
    return proposals


def _members_offer(state: CustomerState, policy: Policy, store: StoreView, valid: int,
                   detail: str) -> tuple[Offer | None, str]:
    """The grade's (or the top-value group's) exclusive coupon on a festival notice, if it has one."""
    percent = concessions(state, policy, store).festival_coupon_percent
    if percent <= 0:
        return None, detail
    return (Offer(type=offer_type(state, policy), percent=percent, valid=valid, boost=True),
            f"{detail}; a members' offer ({tier_of(state, policy)}{', top value' if store.in_top_value(state) else ''})")


def next_due(state: CustomerState, policy: Policy) -> int | None:
    return state.festival_due


def sent(state: CustomerState, proposal: Proposal, t: int) -> None:
    return None


def on_erasure(state: CustomerState, effects) -> None:
    return None  # nothing pending but a date: the fresh state schedules its own
