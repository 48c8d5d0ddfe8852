"""Dead-letter redrive: which dead letters go back to their topic, and as what. Pure: no Kafka.

A dead letter is the original record (bytes, key, the producer's own headers) plus
`remarket-dlq-*` headers naming why and where from. Redriving one re-produces the original to
the topic it came from, with the producer's headers and `remarket-redriven-from` naming the dead
letter (topic/partition/offset). Each redrive leaves a marker keyed by the event id (or, for a
record without one, by the dead letter's coordinates): a dead letter whose marker exists is
skipped, so a second run, or a run after a crash, redrives nothing twice. Records stored
truncated (too large to keep whole) cannot be redriven byte for byte and are skipped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable

import orjson

DLQ_HEADER_PREFIX = "remarket-dlq-"
REASON = "remarket-dlq-reason"
SOURCE_TOPIC = "remarket-dlq-topic"
TRUNCATED = "remarket-dlq-truncated"
REDRIVEN_FROM = "remarket-redriven-from"

OUTCOMES = ("redriven", "would_redrive", "already_redriven", "truncated", "unroutable", "not_selected")


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        value = next((v for k, v in self.headers if k == name), None)
        return value.decode(errors="replace") if value is not None else None

    @property
    def coordinates(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def reason(self) -> str:
        return self.header(REASON) or "unknown"

    @property
    def source_topic(self) -> str | None:
        return self.header(SOURCE_TOPIC)

    @property
    def event_id(self) -> str | None:
        try:
            event_id = orjson.loads(self.value).get("event_id") if self.value else None
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return event_id if isinstance(event_id, str) and event_id else None

    @property
    def marker_key(self) -> str:
        """What makes a redrive unique: the event id, else the dead letter's own coordinates."""
        return f"event:{self.event_id}" if self.event_id else f"dead-letter:{self.coordinates}"


@dataclass(frozen=True)
class Selection:
    reasons: frozenset[str] = frozenset()  # empty: any
    topics: frozenset[str] = frozenset()  # source topic names; empty: any
    since: datetime | None = None  # when the record was dead-lettered (its Kafka timestamp)
    until: datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        at = datetime.fromtimestamp(letter.timestamp_ms / 1000, timezone.utc)
        return ((not self.reasons or letter.reason in self.reasons)
                and (not self.topics or letter.source_topic in self.topics)
                and (self.since is None or at >= self.since)
                and (self.until is None or at < self.until))


@dataclass(frozen=True)
class Redrive:
    """One record to produce: the original, back where it came from."""
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    marker_key: str


@dataclass
class Decision:
    outcome: str
    letter: DeadLetter
    redrive: Redrive | None = None


@dataclass
class Plan:
    decisions: list[Decision] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = {outcome: 0 for outcome in OUTCOMES}
        for decision in self.decisions:
            counts[decision.outcome] += 1
        return counts

    @property
    def redrives(self) -> list[Redrive]:
        return [d.redrive for d in self.decisions if d.redrive is not None]


def plan(letters: Iterable[DeadLetter], selection: Selection, already: set[str], existing_topics: set[str]) -> Plan:
    """Decide every dead letter once. `already`: marker keys of earlier redrives."""
    result, seen = Plan(), set(already)
    for letter in letters:
        result.decisions.append(decide(letter, selection, seen, existing_topics))
        if result.decisions[-1].redrive is not None:
            seen.add(letter.marker_key)  # the same event twice in the dead letters: once
    return result


def decide(letter: DeadLetter, selection: Selection, already: set[str], existing_topics: set[str]) -> Decision:
    if not selection.matches(letter):
        return Decision("not_selected", letter)
    if letter.marker_key in already:
        return Decision("already_redriven", letter)
    if (letter.header(TRUNCATED) or "").lower() == "true":
        return Decision("truncated", letter)
    target = letter.source_topic
    if not target or target not in existing_topics:
        return Decision("unroutable", letter)
    headers = [(k, v) for k, v in letter.headers
               if not k.startswith(DLQ_HEADER_PREFIX) and k != REDRIVEN_FROM]
    headers.append((REDRIVEN_FROM, letter.coordinates.encode()))
    return Decision("would_redrive", letter, Redrive(target, letter.key, letter.value, headers, letter.marker_key))


def marker_value(letter: DeadLetter, now: datetime) -> bytes:
    return orjson.dumps({"dead_letter": letter.coordinates, "topic": letter.source_topic,
                         "reason": letter.reason, "event_id": letter.event_id, "redriven_at": now.isoformat()})


_AGO = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, now: datetime) -> datetime:
    """ISO-8601 with a UTC offset, or an age such as 30m, 2h, 7d (that long before now)."""
    if match := _AGO.match(text.strip()):
        return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    hint = "an ISO time with a UTC offset, e.g. 2026-11-01T00:00:00+00:00, or an age: 30m, 2h, 7d"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not {hint}") from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset: use {hint}")
    return when
