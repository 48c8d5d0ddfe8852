"""The core's words as types: a typo is an error, not a silent mismatch.

StrEnums compare, hash and serialise as their values ("declining" == Stage.DECLINING), so state,
policy files, contracts and metric labels keep their strings.
"""
from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    PROSPECT = "prospect"
    NEW = "new"
    GROWTH = "growth"
    MATURE = "mature"
    DECLINING = "declining"
    CHURNED = "churned"


class Activity(StrEnum):
    ACTIVE = "active"
    LAPSING = "lapsing"
    INACTIVE = "inactive"


class Suppression(StrEnum):
    """Why a decided message was not emitted (or, for quiet hours, emitted for later)."""

    NO_CONSENT = "no_consent"
    QUIET_HOURS_DEFERRED = "quiet_hours_deferred"  # emitted, send_after at the end of quiet hours
    FREQUENCY_CAP = "frequency_cap"  # capped, and its kind may not wait (waiting.wait_for = 0)
    RECENTLY_REMINDED = "recently_reminded"
    RECENTLY_PAID = "recently_paid"
    ONCE_PER_WINDOW = "once_per_window"
    ERASURE = "erasure"
    ORDER_PAID = "order_paid"  # moot while waiting for a slot
    ORDER_CANCELLED = "order_cancelled"
    PRODUCT_ORDERED = "product_ordered"
    STAGE_CHANGED = "stage_changed"


class Deferral(StrEnum):
    """Why a message waits for a later slot."""

    FREQUENCY_CAP = "frequency_cap"


class Expiry(StrEnum):
    """Why a waiting message gave up."""

    WAIT_OVER = "wait_over"  # no slot within its kind's waiting.wait_for
    WAITING_FULL = "waiting_full"  # limits.waiting reached: the least urgent gives way


STAGES = tuple(stage.value for stage in Stage)
