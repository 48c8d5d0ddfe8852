"""From raw Kafka record to state change and outbound records, without Faust.

The Faust agent hands every consumed record here and carries out what comes back (write or
delete the customer's state, send the records). Keeping this free of Faust lets the benchmark
and the unit tests drive the exact code the worker runs.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from typing import Any, Final, NamedTuple, Sequence

from aiokafka.partitioner import murmur2

import orjson
from pydantic import ValidationError

from remarket.catalog import Catalog
from remarket.domain.actions import Action, Withdrawal, message_json
from remarket.domain.events import EventType, family_of, inbound_event_adapter
from remarket.domain.policy import Policy
from remarket.domain.process import Outcome, RejectedEvent, advance, apply
from remarket.domain.profile import profile_json, segment_key
from remarket.domain.state import CustomerState, StateFacts
from remarket.domain.store import StoreTrends
from remarket.shell.ticks import Tick

log = logging.getLogger("remarket.pipeline")

MAX_EVENT_BYTES: Final = 256 * 1024
MAX_DEAD_LETTER_VALUE_BYTES: Final = 512 * 1024
"""A dead-letter copy must always fit in one produce request (the broker's default
message.max.bytes is ~1 MiB, and a 2 MB zstd input decompresses to more): longer bodies are
cut here, and the headers say so and give the original size."""
MAX_HEADER_BYTES: Final = 64 * 1024
REROUTED_FROM_HEADER: Final = "remarket-rerouted-from"
KNOWN_EVENT_TYPES: Final = frozenset(t.value for t in EventType)
ACTION_KIND_HEADER: Final = "remarket-kind"
JSON_HEADERS: Final = [("content-type", b"application/json")]


class DeadLetterReason:
    """Why a record went to the dead-letter topic; bounded values (also a metric label)."""

    EMPTY = "empty_value"
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    WRONG_TOPIC = "wrong_topic"
    SCHEMA_VIOLATION = "schema_violation"
    MISSING_KEY = "missing_key"
    KEY_MISMATCH = "key_mismatch"
    REJECTED = "rejected_by_core"
    BAD_TICK = "bad_tick"
    PROCESSING_ERROR = "processing_error"  # a bug or corrupt state: parked, not lost, partition keeps moving
    BAD_REROUTE = "bad_reroute"  # a record on the internal rerouted topic without its origin header

    ALL: Final = (EMPTY, TOO_LARGE, NOT_JSON, NOT_AN_OBJECT, UNKNOWN_EVENT_TYPE, WRONG_TOPIC,
                  SCHEMA_VIOLATION, MISSING_KEY, KEY_MISMATCH, REJECTED, BAD_TICK, PROCESSING_ERROR,
                  BAD_REROUTE)


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()
"""State write marker: leave the table as it is (dead letters, duplicates)."""


Headers = Sequence[tuple[str, bytes]]


class SourceRecord(NamedTuple):  # one per record consumed: a frozen dataclass's __init__ cost ~1 µs
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()  # the producer's own (traceparent and the like): dead letters keep them
    # For the worker's shell, which hands this same tuple from its fetch loop to the handler
    # (shell.delivery): the producer's timestamp in seconds, and faust's topic-partition.
    timestamp: float | None = None
    tp: Any = None


class OutRecord(NamedTuple):  # one per record produced: a frozen dataclass's __init__ cost ~1 µs
    role: str  # catalog role: actions, holdout, profiles, dead_letter, ticks, rerouted
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    partition: int | None = None  # None: the producer's (murmur2) partitioner


@lru_cache(maxsize=1 << 16)
def key_hash(key: bytes) -> int:
    """murmur2 of a key, as Kafka's partitioners use it (positive). Remembered: aiokafka's pure-Python
    murmur2 costs ~3 µs for a customer id, and the same customers come back (their input records,
    then each record produced for them)."""
    return murmur2(key) & 0x7FFFFFFF


@lru_cache(maxsize=1 << 16)  # asked for every record consumed: a hit costs no Python frame
def owner_partition(key: bytes, partitions: int) -> int:
    """Where Kafka's Java client, aiokafka and faust put `key` (murmur2): where its state lives.

    librdkafka clients (PHP, Node's node-rdkafka, Go, .NET, kcat) hash with CRC32 by default,
    so their records can arrive elsewhere; the worker forwards those here (see `rerouted`).
    """
    return key_hash(key) % partitions


class KeyPartitioner:
    """aiokafka's DefaultPartitioner (murmur2 of the key; a random available partition for no key),
    with the key's hash remembered (`key_hash`): the worker's producers partition every action,
    profile and holdout record by its customer id."""

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available) if available else random.choice(all_partitions)
        return all_partitions[key_hash(key) % len(all_partitions)]


@dataclass
class Handled:
    """What the shell must do for one consumed record."""

    outcome: str  # applied | duplicate | dead_lettered | rerouted | tick | tick_for_unknown_customer
    new_state: CustomerState | None | _Unchanged = UNCHANGED  # None: delete the key (erasure tombstone)
    records: list[OutRecord] = field(default_factory=list)
    customer_id: str | None = None
    due_at: datetime | None = None
    dead_letter_reason: str | None = None
    core: Outcome | None = None
    event_type: str | None = None
    expired: list[Action] = field(default_factory=list)  # decided already past expiry: not published
    segment_change: tuple[tuple[str, str] | None, tuple[str, str] | None] | None = None  # (stage, tier) before/after

    @cached_property
    def state(self) -> bytes | None | _Unchanged:
        """The new state as stored (encoded once, when asked: the worker's write cache encodes at commit)."""
        new = self.new_state
        return new.to_bytes() if isinstance(new, CustomerState) else new


class Pipeline:
    def __init__(self, catalog: Catalog, policy: Policy) -> None:
        self.catalog = catalog
        self.policy = policy
        self._families_by_topic = catalog.families_by_topic()
        self._ticks_topic = catalog["ticks"].name
        self._rerouted_topic = catalog["rerouted"].name
        self._partitions = catalog.partitions
        self.store = StoreTrends(policy)  # derived from the states this worker holds (domain/store.py)

    def handle(self, record: SourceRecord, stored: bytes | CustomerState | None, received_at: datetime) -> Handled:
        """`stored`: the customer's state as stored, or already decoded (the worker's write cache)."""
        try:
            if record.topic == self._ticks_topic:
                return self.handle_tick(record, stored, received_at)
            if record.topic == self._rerouted_topic:
                record = self._origin_of(record)
            elif (record.key is not None and record.topic in self._families_by_topic
                  and record.partition != owner_partition(record.key, self._partitions)
                  and _fits(record)):  # an oversized one is dead-lettered where it is
                return self._reroute(record)
            return self.handle_event(record, stored, received_at)
        except _BadReroute as exc:
            return self._dead_letter(record, DeadLetterReason.BAD_REROUTE, str(exc))
        except Exception as exc:  # one poison record must not stall its partition forever
            log.exception("processing failed for %s[%d]@%d", record.topic, record.partition, record.offset)
            return self._dead_letter(record, DeadLetterReason.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")

    def _reroute(self, record: SourceRecord) -> Handled:
        """Forward the record, bytes and headers as they came, to its customer's own partition.

        Under exactly-once the forward and this record's offset commit together, so it is
        handled once there; the dead letters of a forwarded record still name where it came from.
        """
        assert record.key is not None
        origin = f"{record.partition}/{record.offset}/{record.topic}".encode()
        headers = [*record.headers, (REROUTED_FROM_HEADER, origin)]
        partition = owner_partition(record.key, self._partitions)
        return Handled("rerouted", records=[OutRecord("rerouted", record.key, record.value, headers, partition)])

    def _origin_of(self, record: SourceRecord) -> SourceRecord:
        """A forwarded record as it was on its input topic (its topic decides what it may carry)."""
        origin = [value for name, value in record.headers if name == REROUTED_FROM_HEADER]
        try:
            partition, offset, topic = origin[-1].decode().split("/", 2)
            if topic not in self._families_by_topic:
                raise ValueError(f"{topic} is not an input topic")
            return SourceRecord(topic, int(partition), int(offset), record.key, record.value,
                                [h for h in record.headers if h[0] != REROUTED_FROM_HEADER])
        except (IndexError, ValueError, UnicodeDecodeError) as exc:
            raise _BadReroute(f"no valid {REROUTED_FROM_HEADER} header ({exc})") from None

    def handle_event(self, record: SourceRecord, stored: bytes | CustomerState | None,
                     received_at: datetime) -> Handled:
        families = self._families_by_topic.get(record.topic)
        if families is None:
            return self._dead_letter(record, DeadLetterReason.WRONG_TOPIC, f"{record.topic} is not an input topic")
        value = record.value
        if not value:
            return self._dead_letter(record, DeadLetterReason.EMPTY, "the record has no value")
        if len(value) > MAX_EVENT_BYTES:
            return self._dead_letter(
                record, DeadLetterReason.TOO_LARGE, f"{len(value)} bytes is over the {MAX_EVENT_BYTES}-byte limit")
        if (header_bytes := _header_bytes(record.headers)) > MAX_HEADER_BYTES:
            return self._dead_letter(
                record, DeadLetterReason.TOO_LARGE,
                f"{header_bytes} bytes of headers is over the {MAX_HEADER_BYTES}-byte limit")
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return self._dead_letter(record, DeadLetterReason.NOT_JSON, str(exc))
        if not isinstance(document, dict):
            return self._dead_letter(
                record, DeadLetterReason.NOT_AN_OBJECT, f"expected a JSON object, got {type(document).__name__}")
        event_type = document.get("event_type")
        if not isinstance(event_type, str) or event_type not in KNOWN_EVENT_TYPES:
            return self._dead_letter(
                record, DeadLetterReason.UNKNOWN_EVENT_TYPE, f"event_type {event_type!r} is not one of the documented types")
        if family_of(event_type) not in families:
            return self._dead_letter(
                record, DeadLetterReason.WRONG_TOPIC,
                f"{event_type} does not belong on {record.topic} (accepts {', '.join(sorted(families))})")
        try:
            event = inbound_event_adapter.validate_python(document)
        except ValidationError as exc:
            return self._dead_letter(record, DeadLetterReason.SCHEMA_VIOLATION, _summarise(exc))
        if record.key is None:
            return self._dead_letter(record, DeadLetterReason.MISSING_KEY, "the record has no key (customer id)")
        if record.key != event.customer_id.encode():
            return self._dead_letter(
                record, DeadLetterReason.KEY_MISMATCH,
                f"key {record.key[:128]!r} differs from customer_id {event.customer_id!r}")
        state = _decoded(stored)
        try:
            outcome = apply(state, event, self.policy, received_at=received_at, store=self.store.excluding(state))
        except RejectedEvent as exc:
            return self._dead_letter(record, DeadLetterReason.REJECTED, str(exc))
        if outcome.duplicate:
            return Handled("duplicate", customer_id=event.customer_id, event_type=event_type,
                           due_at=state.due_at if state else None, core=outcome)
        return self._carry_out(outcome, state, event.customer_id, "applied", event_type, received_at)

    def handle_tick(self, record: SourceRecord, stored: bytes | CustomerState | None,
                    received_at: datetime) -> Handled:
        """A tick keyed by one customer (the earlier form of ticks): advance that customer."""
        tick = self._tick_of(record)
        if isinstance(tick, Handled):
            return tick
        if tick.partition is not None or not record.key:
            return self._dead_letter(record, DeadLetterReason.BAD_TICK,
                                     "a partition tick has no key; a customer tick names no partition")
        return self.handle_due(record.key.decode(), stored, tick.now, received_at)

    def partition_tick(self, record: SourceRecord) -> datetime | Handled:
        """The time of a partition tick (a tick without a key), or why it is dead-lettered."""
        tick = self._tick_of(record)
        if isinstance(tick, Handled):
            return tick
        if tick.partition != record.partition:
            return self._dead_letter(record, DeadLetterReason.BAD_TICK,
                                     f"a tick for partition {tick.partition} arrived on partition {record.partition}")
        return tick.now

    def handle_due(self, customer_id: str, stored: bytes | CustomerState | None, now: datetime,
                   received_at: datetime) -> Handled:
        """Advance one customer to `now` (due work: stages drift, held events fold, actions fire)."""
        if not stored:  # erased since it was scheduled: nothing to do
            return Handled("tick_for_unknown_customer", customer_id=customer_id)
        before = _decoded(stored)
        assert before is not None
        outcome = advance(before, now, self.policy, store=self.store.excluding(before))
        return self._carry_out(outcome, before, customer_id, "tick", None, received_at)

    def _tick_of(self, record: SourceRecord) -> Tick | Handled:
        try:
            return Tick.model_validate_json(record.value or b"")
        except ValidationError as exc:
            return self._dead_letter(record, DeadLetterReason.BAD_TICK, _summarise(exc))

    def _carry_out(self, outcome: Outcome, before: CustomerState | None, customer_id: str, label: str,
                   event_type: str | None, received_at: datetime) -> Handled:
        key = customer_id.encode()
        self.store.update(before, outcome.state)
        # Backfills and catch-up after downtime decide actions for the past (event time); the
        # core records them, but one whose expiry has passed by the wall clock is not published.
        live: list[Action] = []
        expired: list[Action] = []
        for action in outcome.actions:
            (live if action.expires_at > received_at else expired).append(action)
        records = [action_record(action) for action in live]
        records += [action_record(withdrawal) for withdrawal in outcome.withdrawals]  # kind "withdrawal"
        if outcome.state is None:
            records.append(OutRecord("profiles", key, None))  # compacted away: erasure reaches consumers
            return Handled(label, new_state=None, records=records, customer_id=customer_id, core=outcome,
                           event_type=event_type, expired=expired,
                           segment_change=(self.segment(before), None) if before is not None else None)
        change = None
        if outcome.profile is not None:
            records.append(OutRecord("profiles", key, profile_json(outcome.profile), JSON_HEADERS))
            change = (self.segment(before), (outcome.profile.stage, outcome.profile.tier))
        return Handled(label, new_state=outcome.state, records=records, customer_id=customer_id,
                       due_at=outcome.state.due_at, core=outcome, event_type=event_type, expired=expired,
                       segment_change=change)

    def segment(self, state: CustomerState | StateFacts | None) -> tuple[str, str] | None:
        """(stage, tier) as last published, for the per-worker customer gauges."""
        if state is None or state.upto is None:
            return None
        return segment_key(state, state.upto, self.policy)[:2]

    @staticmethod
    def _dead_letter(record: SourceRecord, reason: str, detail: str) -> Handled:
        return Handled("dead_lettered", records=[dead_letter_record(record, reason, detail)],
                       dead_letter_reason=reason)


class _BadReroute(ValueError):
    pass


def _decoded(stored: bytes | CustomerState | None) -> CustomerState | None:
    if isinstance(stored, CustomerState):
        return stored
    return CustomerState.from_bytes(stored) if stored else None


def dead_letter_record(record: SourceRecord, reason: str, detail: str) -> OutRecord:
    """The record as it came (key, bytes, the producer's headers) plus why and from where.

    It must always fit in one produce request, or the worker could not park the record and
    would lose it: the value is cut to MAX_DEAD_LETTER_VALUE_BYTES, the key and the producer's
    headers to a budget of their own, and the cut is stated in the headers.
    """
    value, key = record.value, record.key
    producer_headers = _fit_headers(record.headers)
    headers = [
        *producer_headers,
        ("remarket-dlq-reason", reason.encode()),
        ("remarket-dlq-detail", detail[:2000].encode(errors="replace")),
        ("remarket-dlq-topic", record.topic.encode()),
        ("remarket-dlq-partition", str(record.partition).encode()),
        ("remarket-dlq-offset", str(record.offset).encode()),
        ("remarket-dlq-failed-at", datetime.now(timezone.utc).isoformat().encode()),
    ]
    cut = []
    if value is not None and len(value) > MAX_DEAD_LETTER_VALUE_BYTES:
        cut.append(("remarket-dlq-original-size", str(len(value)).encode()))
        value = value[:MAX_DEAD_LETTER_VALUE_BYTES]
    if key is not None and len(key) > MAX_HEADER_BYTES:
        cut.append(("remarket-dlq-original-key-size", str(len(key)).encode()))
        key = key[:MAX_HEADER_BYTES]
    if len(producer_headers) != len(record.headers):
        cut.append(("remarket-dlq-dropped-headers", str(len(record.headers) - len(producer_headers)).encode()))
    if cut:
        headers += [("remarket-dlq-truncated", b"true"), *cut]
    return OutRecord("dead_letter", key, value, headers)


def _header_bytes(headers: Headers) -> int:
    if not headers:  # most records: no generator to sum
        return 0
    return sum(len(name) + len(value or b"") for name, value in headers)


def _fits(record: SourceRecord) -> bool:
    return len(record.value or b"") <= MAX_EVENT_BYTES and _header_bytes(record.headers) <= MAX_HEADER_BYTES


def _fit_headers(headers: Headers) -> list[tuple[str, bytes]]:
    kept, size = [], 0
    for name, value in headers:
        size += len(name) + len(value or b"")
        if size > MAX_HEADER_BYTES:
            break
        kept.append((name, value))
    return kept


def action_record(action: Action | Withdrawal) -> OutRecord:
    return OutRecord(
        "holdout" if action.holdout else "actions",
        action.customer_id.encode(),
        message_json(action),
        [*JSON_HEADERS, (ACTION_KIND_HEADER, str(action.kind).encode())],
    )


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
