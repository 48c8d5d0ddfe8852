"""Local time: the customer's zone, quiet hours and festival windows (all in that zone)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from remarket.domain.policy import FestivalWindow, Policy, QuietHoursPolicy


@lru_cache(maxsize=1024)
def zone(name: str | None, fallback: str) -> ZoneInfo:
    """An unknown zone name (typo, retired alias) falls back rather than failing a decision."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(fallback)


def customer_zone(timezone: str | None, policy: Policy) -> ZoneInfo:
    return zone(timezone, policy.contact.default_timezone)


def _in_quiet(local: time, quiet: QuietHoursPolicy) -> bool:
    start, end = quiet.start, quiet.end
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end  # across midnight


def _local_at(day: date, at: time, tz: ZoneInfo) -> datetime:
    """`at` on `day` in `tz`; a wall time skipped by a DST jump resolves to just after it."""
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=tz)
    round_trip = aware.astimezone(ZoneInfo("UTC")).astimezone(tz)
    if round_trip.replace(tzinfo=None) != naive:  # inside a spring-forward gap
        aware = round_trip
    return aware


def local_moment(day: date, at: time, tz: ZoneInfo) -> datetime:
    """`at` on `day` in the zone `tz` (a wall time skipped by DST: just after the jump)."""
    return _local_at(day, at, tz)


def next_allowed(moment: datetime, tz: ZoneInfo, quiet: QuietHoursPolicy) -> datetime:
    """`moment` if outside quiet hours, else the end of the quiet period (in the customer's zone)."""
    local = moment.astimezone(tz)
    if not _in_quiet(local.timetz().replace(tzinfo=None), quiet):
        return moment
    day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        day += timedelta(days=1)  # evening part: quiet ends tomorrow morning
    return _local_at(day, quiet.end, tz).astimezone(moment.tzinfo)


def _md(value: str) -> tuple[int, int]:
    month, day = value.split("-")
    return int(month), int(day)


def _covers(window: FestivalWindow, day: date) -> bool:
    start, end, today = _md(window.start), _md(window.end), (day.month, day.day)
    if start <= end:
        return start <= today <= end
    return today >= start or today <= end  # wraps past the new year


def festival_on(moment: datetime, tz: ZoneInfo, policy: Policy) -> FestivalWindow | None:
    """The festival covering the customer's local date (the biggest boost if several)."""
    day = moment.astimezone(tz).date()
    covering = [w for w in policy.festivals.windows if _covers(w, day)]
    return max(covering, key=lambda w: w.coupon_boost, default=None)


def next_festival_start(moment: datetime, tz: ZoneInfo, policy: Policy, within: timedelta) -> datetime | None:
    """Local midnight starting a festival within (moment, moment + within], if any."""
    if within <= timedelta(0) or not policy.festivals.windows:
        return None
    local_day = moment.astimezone(tz).date()
    for offset in range(1, within.days + 2):
        day = local_day + timedelta(days=offset)
        for window in policy.festivals.windows:
            if _md(window.start) == (day.month, day.day):
                start = _local_at(day, time(0, 0), tz)
                if moment < start <= moment + within:
                    return start
    return None
