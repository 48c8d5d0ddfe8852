"""Replay / backfill: run the same core as the live worker over a JSONL file of events.

Two passes keep memory modest for millions of events: the first validates every line and keeps
only (event time, file offset, customer) in compact arrays; the events are then re-read one
customer at a time, in event-time order, so only one customer's state is alive at once. Per
customer this is what the worker does (apply each event; `due_at` work fires inside `apply`, at
its own logical time), and the end is `settle(as_of)`: everything up to `as_of` processed.

Store-wide knowledge (top-value group, popular products) comes from the same `StoreTrends` the
worker keeps, fed with each customer's state before and after every step. Replay feeds it customer
by customer where the worker feeds it as events arrive, so a decision that reads it sees the
customers replayed so far (their whole history), the worker the customers it holds at that moment.
"""
from __future__ import annotations

import resource
import time
from array import array
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable

from pydantic import ValidationError

from remarket.domain.events import parse_event
from remarket.domain.policy import Policy
from remarket.domain.process import RejectedEvent, apply, check_event, settle
from remarket.domain.profile import profile_of
from remarket.domain.store import StoreTrends

PROGRESS_EVERY = 100_000
MAX_REPORTED_INVALID = 20


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def _index(input_path: Path, policy: Policy, received_at: datetime, progress: Callable[[str], None]):
    """Pass 1: validate every line and apply the worker's checks (event age, future, currency);
    keep event time, offset and customer number of the events the core accepts."""
    times, offsets, customers = array("d"), array("q"), array("l")
    customer_numbers: dict[str, int] = {}
    invalid: list[dict] = []
    rejected: list[dict] = []
    invalid_count = rejected_count = lines = 0
    with open(input_path, "rb") as source:
        offset = 0
        for lines, raw in enumerate(iter(source.readline, b""), start=1):
            here, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            try:
                event = parse_event(raw)
            except ValidationError as exc:
                invalid_count += 1
                if len(invalid) < MAX_REPORTED_INVALID:
                    invalid.append({"line": lines, "error": _first_error(exc)})
                continue
            try:
                check_event(event, policy, received_at)
            except RejectedEvent as exc:
                rejected_count += 1
                if len(rejected) < MAX_REPORTED_INVALID:
                    rejected.append({"line": lines, "error": str(exc)})
                continue
            times.append(event.occurred_at.timestamp())
            offsets.append(here)
            customers.append(customer_numbers.setdefault(event.customer_id, len(customer_numbers)))
            if lines % PROGRESS_EVERY == 0:
                progress(f"read {lines:,} lines ({len(times):,} valid events, {len(customer_numbers):,} customers)")
    return times, offsets, customers, len(customer_numbers), invalid, invalid_count, rejected, rejected_count, lines


class ReplayError(Exception):
    """A replay that cannot run as asked; the message is one line for the operator."""


def run(input_path: Path, snapshot_path: Path, actions_path: Path | None, policy: Policy,
        as_of: datetime | None, progress: Callable[[str], None], *, received_at: datetime | None = None) -> dict:
    """`received_at` stands for the time the worker would have received the events (default: now):
    events too far ahead of it or too old are rejected as the worker rejects them."""
    started = time.monotonic()
    received_at = received_at or datetime.now(UTC)
    if as_of is not None and as_of - received_at > policy.future_tolerance:
        raise ReplayError(f"--as-of {as_of.isoformat()} is more than {policy.future_tolerance} ahead of now "
                          f"({received_at.isoformat(timespec='seconds')}): replay decides only what has happened")
    (times, offsets, customers, customer_count, invalid, invalid_count, rejected, rejected_count,
     lines) = _index(Path(input_path), policy, received_at, progress)
    for problem in invalid:
        progress(f"line {problem['line']}: invalid event: {problem['error']}")
    if invalid_count > len(invalid):
        progress(f"... and {invalid_count - len(invalid):,} more invalid lines")
    for problem in rejected:
        progress(f"line {problem['line']}: rejected by the core: {problem['error']}")
    if rejected_count > len(rejected):
        progress(f"... and {rejected_count - len(rejected):,} more rejected lines")
    if not times:
        Path(snapshot_path).write_text("")
        if actions_path is not None:
            Path(actions_path).write_text("")
        return {"lines": lines, "events": 0, "invalid_lines": invalid_count, "invalid_examples": invalid,
                "rejected_lines": rejected_count, "rejected_examples": rejected, "customers": 0, "actions": 0}
    if as_of is None:
        as_of = _latest_event_time(input_path, offsets, times)
    cutoff = as_of.timestamp()
    # time order first, then (stable) by customer: each customer's events contiguous, in time order
    order = sorted(range(len(times)), key=times.__getitem__)
    order = array("l", sorted(order, key=customers.__getitem__))
    progress(f"indexed {len(times):,} events of {customer_count:,} customers; replaying up to {as_of.isoformat()}")

    action_kinds: Counter[str] = Counter()
    suppressions: Counter[str] = Counter()
    withdrawn: Counter[str] = Counter()
    deferred: Counter[str] = Counter()
    expired: Counter[str] = Counter()
    transitions: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    holdout = after_as_of = erased = snapshot_lines = 0
    state = None
    current = -1
    done = 0
    trends = StoreTrends(policy)

    with open(input_path, "rb") as source, open(snapshot_path, "w", encoding="utf-8") as snapshot, \
            (open(actions_path, "w", encoding="utf-8") if actions_path is not None else _NoFile()) as actions_out:

        def emit(outcome) -> None:
            nonlocal holdout
            for action in outcome.actions:
                action_kinds[action.kind.value] += 1
                holdout += action.holdout
                actions_out.write(action.model_dump_json() + "\n")
            for withdrawal in outcome.withdrawals:
                withdrawn[f"{withdrawal.withdrawn_kind}:{withdrawal.reason}"] += 1
                actions_out.write(withdrawal.model_dump_json() + "\n")
            suppressions.update(f"{kind}:{reason}" for kind, reason in outcome.suppressions)
            deferred.update(f"{kind}:{reason}" for kind, reason in outcome.deferred)
            expired.update(f"{kind}:{reason}" for kind, reason in outcome.expired)
            transitions.update(f"{a}->{b}" for a, b in outcome.transitions)

        def finish_customer() -> None:
            nonlocal state, snapshot_lines, erased
            if state is None:
                return
            outcome = settle(state, as_of, policy, store=trends.excluding(state))
            trends.update(state, outcome.state)
            emit(outcome)
            state = None
            if outcome.state is None:  # an erasure request that was still held is carried out
                erased += 1
                return
            profile = profile_of(outcome.state, as_of, policy)
            stages[profile.stage] += 1
            snapshot.write(profile.model_dump_json() + "\n")
            snapshot_lines += 1
            state = None

        for index in order:
            customer = customers[index]
            if customer != current:
                if current >= 0:
                    finish_customer()
                current, state = customer, None
            done += 1
            if done % PROGRESS_EVERY == 0:
                progress(f"replayed {done:,} / {len(times):,} events ({_peak_rss_mib()} MiB peak RSS)")
            if times[index] > cutoff:
                after_as_of += 1
                continue
            source.seek(offsets[index])
            event = parse_event(source.readline())
            outcome = apply(state, event, policy, received_at=received_at, store=trends.excluding(state))
            if not outcome.duplicate:
                trends.update(state, outcome.state)
                emit(outcome)
            erased += outcome.state is None
            state = outcome.state
        finish_customer()

    elapsed = time.monotonic() - started
    summary = {
        "lines": lines,
        "events": len(times),
        "invalid_lines": invalid_count,
        "invalid_examples": invalid,
        "rejected_lines": rejected_count,
        "rejected_examples": rejected,
        "events_after_as_of": after_as_of,
        "as_of": as_of.isoformat(),
        "customers": customer_count,
        "snapshot_lines": snapshot_lines,
        "erasures": erased,
        "stages": dict(sorted(stages.items())),
        "actions": sum(action_kinds.values()),
        "actions_by_kind": dict(sorted(action_kinds.items())),
        "holdout_actions": holdout,
        "suppressions": dict(sorted(suppressions.items())),
        "withdrawals": dict(sorted(withdrawn.items())),
        "deferred": dict(sorted(deferred.items())),
        "expired": dict(sorted(expired.items())),
        "transitions": dict(sorted(transitions.items())),
        "policy_version": policy.version,
        "seconds": round(elapsed, 1),
        "events_per_second": round(len(times) / elapsed) if elapsed > 0 else None,
        "peak_rss_mib": _peak_rss_mib(),
    }
    progress(f"done: {len(times):,} events, {snapshot_lines:,} customers, {summary['actions']:,} actions "
             f"in {summary['seconds']} s, peak RSS {summary['peak_rss_mib']} MiB")
    return summary


def _latest_event_time(input_path: Path, offsets: array, times: array) -> datetime:
    """The latest event's own `occurred_at` (keeps its offset, and its exact value)."""
    latest = max(range(len(times)), key=times.__getitem__)
    with open(input_path, "rb") as source:
        source.seek(offsets[latest])
        return parse_event(source.readline()).occurred_at


class _NoFile:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def write(self, text: str) -> int:
        return 0
