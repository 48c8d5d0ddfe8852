"""Frequency caps: how many messages a window allows, and the next moment one is allowed."""
from __future__ import annotations

from remarket.domain.policy import Policy
from remarket.domain.state import CustomerState


def _full(contacts: list[int], send_at: int, window: int, allowed: int) -> bool:
    """`allowed` messages or more already within `window` seconds of `send_at`, either side."""
    return sum(abs(send_at - sent) < window for sent in contacts) >= allowed


def capped(state: CustomerState, send_at: int, policy: Policy, bonus: int = 0) -> bool:
    """`bonus`: messages the customer's grade may get beyond contact.cap (stage caps still hold)."""
    general = policy.contact.cap  # with the grade's bonus: no copy of the cap model per call
    if _full(state.contacts, send_at, int(general.window.total_seconds()), general.max + bonus):
        return True
    stage_cap = policy.contact.stage_caps.get(state.stage)
    return stage_cap is not None and _full(state.contacts, send_at, int(stage_cap.window.total_seconds()),
                                           stage_cap.max)


def remember_contact(state: CustomerState, send_at: int, policy: Policy) -> None:
    horizon = send_at - policy.seconds.longest_cap_window
    kept = sorted(t for t in state.contacts if t > horizon)
    kept.append(send_at)
    state.contacts = sorted(kept)[-policy.limits.contacts:]


def next_free_slot(state: CustomerState, at: int, policy: Policy, bonus: int = 0) -> int:
    """The earliest moment from `at` on at which no cap blocks a message."""
    windows = {int(c.window.total_seconds()) for c in (policy.contact.cap, *policy.contact.stage_caps.values())}
    candidates = sorted({at} | {sent + w for sent in state.contacts for w in windows if sent + w > at})
    return next((c for c in candidates if not capped(state, c, policy, bonus)), candidates[-1])
