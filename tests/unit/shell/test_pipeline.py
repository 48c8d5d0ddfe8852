"""The pipeline routes every record: applied, duplicate, or dead-lettered with a named reason."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

from remarket.catalog import load_catalog
from remarket.domain.policy import Policy
from remarket.domain.state import CustomerState
from remarket.shell.pipeline import (
    MAX_DEAD_LETTER_VALUE_BYTES,
    REROUTED_FROM_HEADER,
    UNCHANGED,
    DeadLetterReason,
    Pipeline,
    SourceRecord,
    owner_partition,
)
from remarket.shell.ticks import tick_value

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
CATALOG = load_catalog()
T = {spec.role: spec.name for spec in CATALOG}


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline(CATALOG, Policy())


def doc(event_type="visit.page_view", customer="c-1", event_id="e-1", at=NOW, **fields) -> bytes:
    return orjson.dumps({"event_id": event_id, "event_type": event_type, "customer_id": customer,
                         "occurred_at": at.isoformat(), "schema_version": 1, **fields})


C1 = owner_partition(b"c-1", CATALOG.partitions)  # where c-1's state lives


def record(topic_role="visits", key=b"c-1", value=None, offset=0, partition=None, headers=()) -> SourceRecord:
    partition = (owner_partition(key, CATALOG.partitions) if key else 0) if partition is None else partition
    return SourceRecord(T[topic_role], partition, offset, key, doc() if value is None else value, headers)


@pytest.mark.parametrize("role,key,value,reason", [
    ("visits", b"c-1", b"", DeadLetterReason.EMPTY),
    ("visits", b"c-1", b"x" * (300 * 1024), DeadLetterReason.TOO_LARGE),
    ("visits", b"c-1", b"{oops", DeadLetterReason.NOT_JSON),
    ("visits", b"c-1", b"\xc3\x28", DeadLetterReason.NOT_JSON),
    ("visits", b"c-1", b"[" * 5000 + b"]" * 5000, DeadLetterReason.NOT_JSON),
    ("visits", b"c-1", b'"a string"', DeadLetterReason.NOT_AN_OBJECT),
    ("visits", b"c-1", doc("visit.teleport"), DeadLetterReason.UNKNOWN_EVENT_TYPE),
    ("visits", b"c-1", b'{"event_type": 7}', DeadLetterReason.UNKNOWN_EVENT_TYPE),
    ("visits", b"c-1", doc("order.paid", order_id="o"), DeadLetterReason.WRONG_TOPIC),
    ("orders", b"c-1", doc("order.paid"), DeadLetterReason.SCHEMA_VIOLATION),
    ("orders", b"c-1", doc("order.paid", order_id="o", total="lots"), DeadLetterReason.SCHEMA_VIOLATION),
    ("visits", None, doc(), DeadLetterReason.MISSING_KEY),
    ("visits", b"c-2", doc(), DeadLetterReason.KEY_MISMATCH),
    ("visits", b"c-1", doc(at=NOW + timedelta(days=2)), DeadLetterReason.REJECTED),
])
def test_bad_input_is_dead_lettered_with_its_reason_and_original_bytes(pipeline, role, key, value, reason):
    handled = pipeline.handle(record(role, key, value, offset=41), None, NOW)
    assert handled.outcome == "dead_lettered"
    assert handled.dead_letter_reason == reason
    assert handled.state is UNCHANGED
    [dead] = handled.records
    headers = dict(dead.headers)
    assert dead.role == "dead_letter" and dead.value == value and dead.key == key
    assert headers["remarket-dlq-reason"] == reason.encode()
    assert headers["remarket-dlq-topic"] == T[role].encode()
    assert headers["remarket-dlq-offset"] == b"41"
    assert headers["remarket-dlq-detail"]


def test_schema_violation_names_the_field(pipeline):
    handled = pipeline.handle(record("orders", value=doc("order.paid", order_id="o", total=-1)), None, NOW)
    assert b"total" in dict(handled.records[0].headers)["remarket-dlq-detail"]


def test_valid_event_is_applied_and_state_written(pipeline):
    handled = pipeline.handle(record(), None, NOW)
    assert handled.outcome == "applied" and handled.customer_id == "c-1"
    assert isinstance(handled.state, bytes) and CustomerState.from_bytes(handled.state).customer_id == "c-1"


def test_repeated_event_id_is_a_duplicate_and_leaves_state_unchanged(pipeline):
    first = pipeline.handle(record(), None, NOW)
    again = pipeline.handle(record(offset=1), first.state, NOW)
    assert again.outcome == "duplicate" and again.state is UNCHANGED and again.records == []


def test_erasure_deletes_state_and_tombstones_the_profile(pipeline):
    first = pipeline.handle(record(), None, NOW)
    erase = SourceRecord(T["consent"], C1, 2, b"c-1", doc("consent.erasure_requested", event_id="e-2"))
    held = pipeline.handle(erase, first.state, NOW)  # waits out the reorder tolerance, then a tick
    tick_at = held.due_at
    handled = pipeline.handle(SourceRecord(T["ticks"], 0, 0, b"c-1", tick_value(tick_at)), held.state, tick_at)
    assert handled.state is None
    assert ("profiles", b"c-1", None) in [(r.role, r.key, r.value) for r in handled.records]


def test_tick_for_an_erased_customer_does_nothing(pipeline):
    tick = SourceRecord(T["ticks"], 0, 0, b"c-1", tick_value(NOW))
    handled = pipeline.handle(tick, None, NOW)
    assert handled.outcome == "tick_for_unknown_customer" and handled.records == []


def test_a_partition_tick_gives_its_time_only_on_its_own_partition(pipeline):
    assert pipeline.partition_tick(SourceRecord(T["ticks"], 2, 0, None, tick_value(NOW, 2))) == NOW
    elsewhere = pipeline.partition_tick(SourceRecord(T["ticks"], 1, 0, None, tick_value(NOW, 2)))
    assert elsewhere.dead_letter_reason == DeadLetterReason.BAD_TICK
    assert "partition 2 arrived on partition 1" in dict(elsewhere.records[0].headers)["remarket-dlq-detail"].decode()
    keyed = pipeline.handle(SourceRecord(T["ticks"], 2, 0, b"c-1", tick_value(NOW, 2)), None, NOW)
    assert keyed.dead_letter_reason == DeadLetterReason.BAD_TICK  # a customer tick names no partition


def test_due_work_advances_the_customer_handed_over(pipeline):
    first = pipeline.handle(record(), None, NOW)
    later = first.due_at + timedelta(seconds=1)
    advanced = pipeline.handle_due("c-1", first.new_state, later, later)
    assert advanced.outcome == "tick" and advanced.new_state.upto >= first.new_state.upto
    assert pipeline.handle_due("gone", None, later, later).outcome == "tick_for_unknown_customer"


def test_unreadable_tick_is_dead_lettered(pipeline):
    handled = pipeline.handle(SourceRecord(T["ticks"], 0, 0, b"c-1", b"{}"), b"", NOW)
    assert handled.dead_letter_reason == DeadLetterReason.BAD_TICK


def test_a_crash_in_the_core_parks_the_record_instead_of_stalling(pipeline, monkeypatch):
    import remarket.shell.pipeline as module

    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(module, "apply", boom)
    handled = pipeline.handle(record(), None, NOW)
    assert handled.dead_letter_reason == DeadLetterReason.PROCESSING_ERROR
    assert b"RuntimeError: bug" in dict(handled.records[0].headers)["remarket-dlq-detail"]


def test_actions_already_expired_by_the_wall_clock_are_recorded_but_not_published(pipeline):
    """A back-dated unpaid order decides a reminder for the past; sending it now would be stale."""
    long_ago = NOW - timedelta(days=30)
    placed = doc("order.placed", event_id="o1", at=long_ago, order_id="o-1", total=10.0)
    later = doc("visit.page_view", event_id="v1", at=NOW)
    first = pipeline.handle(SourceRecord(T["orders"], C1, 0, b"c-1", placed), None, NOW)
    handled = pipeline.handle(SourceRecord(T["visits"], C1, 1, b"c-1", later), first.state, NOW)
    reminders = [a for a in handled.core.actions if a.kind == "payment_reminder"]
    assert reminders and handled.expired == reminders
    assert not [r for r in handled.records if r.role in ("actions", "holdout")]


def test_dead_letters_keep_the_producers_headers(pipeline):
    traced = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), ("shop", b"eu-1")]
    handled = pipeline.handle(record(value=b"{oops", headers=traced), None, NOW)
    [dead] = handled.records
    assert dead.headers[:2] == traced
    assert "remarket-dlq-truncated" not in dict(dead.headers)


def test_an_input_too_big_to_copy_is_dead_lettered_cut_to_fit_with_its_original_size(pipeline):
    huge = b"x" * 1_048_300
    handled = pipeline.handle(record(value=huge, offset=7, headers=[("traceparent", b"t")]), None, NOW)
    [dead] = handled.records
    headers = dict(dead.headers)
    assert handled.dead_letter_reason == DeadLetterReason.TOO_LARGE
    assert dead.value == huge[:MAX_DEAD_LETTER_VALUE_BYTES]
    assert headers["remarket-dlq-truncated"] == b"true"
    assert headers["remarket-dlq-original-size"] == b"1048300"
    assert headers["traceparent"] == b"t" and headers["remarket-dlq-offset"] == b"7"
    assert len(dead.value) + sum(len(k) + len(v) for k, v in dead.headers) < 1_000_000


def test_oversized_headers_are_dead_lettered_and_cut(pipeline):
    heavy = [(f"h{i}", b"y" * 10_000) for i in range(20)]
    handled = pipeline.handle(record(headers=heavy), None, NOW)
    [dead] = handled.records
    headers = dict(dead.headers)
    assert handled.dead_letter_reason == DeadLetterReason.TOO_LARGE
    assert headers["remarket-dlq-truncated"] == b"true" and int(headers["remarket-dlq-dropped-headers"]) > 0


def test_a_record_on_another_partition_than_murmur2s_is_forwarded_to_its_customers_partition(pipeline):
    elsewhere = (C1 + 1) % CATALOG.partitions  # e.g. where librdkafka's CRC32 partitioner put it
    handled = pipeline.handle(record(partition=elsewhere, offset=9, headers=[("traceparent", b"t")]), None, NOW)
    assert handled.outcome == "rerouted" and handled.state is UNCHANGED
    [forward] = handled.records
    assert forward.role == "rerouted" and forward.partition == C1 and forward.key == b"c-1"
    assert forward.value == doc()
    assert dict(forward.headers)[REROUTED_FROM_HEADER] == f"{elsewhere}/9/{T['visits']}".encode()

    arrived = SourceRecord(T["rerouted"], C1, 0, forward.key, forward.value, forward.headers)
    applied = pipeline.handle(arrived, None, NOW)
    assert applied.outcome == "applied" and isinstance(applied.state, bytes)


def test_a_forwarded_record_is_judged_by_its_original_topic_and_dead_lettered_with_its_origin(pipeline):
    elsewhere = (C1 + 1) % CATALOG.partitions
    wrong = doc("order.paid", order_id="o", total=1.0)  # an order on the visits topic
    [forward] = pipeline.handle(record(value=wrong, partition=elsewhere, offset=3), None, NOW).records
    handled = pipeline.handle(SourceRecord(T["rerouted"], C1, 0, forward.key, forward.value, forward.headers),
                              None, NOW)
    headers = dict(handled.records[0].headers)
    assert handled.dead_letter_reason == DeadLetterReason.WRONG_TOPIC
    assert (headers["remarket-dlq-topic"], headers["remarket-dlq-partition"], headers["remarket-dlq-offset"]) == (
        T["visits"].encode(), str(elsewhere).encode(), b"3")
    assert REROUTED_FROM_HEADER not in headers


def test_a_record_on_the_rerouted_topic_without_its_origin_is_dead_lettered(pipeline):
    handled = pipeline.handle(SourceRecord(T["rerouted"], C1, 0, b"c-1", doc()), None, NOW)
    assert handled.dead_letter_reason == DeadLetterReason.BAD_REROUTE


def test_an_oversized_record_on_the_wrong_partition_is_dead_lettered_where_it_is(pipeline):
    elsewhere = (C1 + 1) % CATALOG.partitions
    handled = pipeline.handle(record(value=b"x" * 1_048_300, partition=elsewhere), None, NOW)
    assert handled.dead_letter_reason == DeadLetterReason.TOO_LARGE


def test_an_event_in_an_unknown_currency_is_dead_lettered_by_the_core_with_the_reason(pipeline):
    value = doc("order.paid", order_id="o", total=12000.0, currency="JPY")
    handled = pipeline.handle(record("orders", value=value), None, NOW)
    assert handled.dead_letter_reason == DeadLetterReason.REJECTED
    detail = dict(handled.records[0].headers)["remarket-dlq-detail"].decode()
    assert "currency 'JPY' has no rate in the policy" in detail


def test_a_withdrawal_is_published_like_an_action_with_its_kind_header(pipeline):
    """An order placed at 20:50 UTC is reminded at 21:20, held until 09:00; paid at 22:00: withdrawn."""
    evening = datetime(2026, 11, 2, 20, 50, tzinfo=timezone.utc)
    placed = doc("order.placed", event_id="p1", at=evening, order_id="o-1", total=10.0)
    first = pipeline.handle(SourceRecord(T["orders"], C1, 0, b"c-1", placed), None, evening)
    tick = SourceRecord(T["ticks"], C1, 0, b"c-1", tick_value(evening + timedelta(minutes=31)))
    reminded = pipeline.handle(tick, first.state, evening + timedelta(minutes=31))
    [reminder] = [orjson.loads(r.value) for r in reminded.records if r.role == "actions"]
    assert reminder["send_after"].startswith("2026-11-03T09:00")
    paid = doc("order.paid", event_id="p2", at=evening + timedelta(minutes=70), order_id="o-1", total=10.0)
    settled = pipeline.handle(SourceRecord(T["orders"], C1, 1, b"c-1", paid), reminded.state,
                              evening + timedelta(minutes=70))
    later = SourceRecord(T["ticks"], C1, 1, b"c-1", tick_value(evening + timedelta(minutes=71)))
    handled = pipeline.handle(later, settled.state, evening + timedelta(minutes=71))
    [published] = [r for r in settled.records + handled.records if r.role == "actions"]
    body = orjson.loads(published.value)
    assert body["kind"] == "withdrawal" and body["withdrawn_action_id"] == reminder["action_id"]
    assert published.key == b"c-1" and ("remarket-kind", b"withdrawal") in published.headers


def test_the_store_wide_view_follows_every_handled_customer_and_forgets_the_erased(pipeline):
    def handle(customer, event_type, event_id, stored=None, at=NOW - timedelta(minutes=5), **fields):
        key = customer.encode()
        rec = SourceRecord(T["visits" if event_type.startswith("visit") else "consent"],
                           owner_partition(key, CATALOG.partitions), 0, key,
                           doc(event_type, customer=customer, event_id=event_id, at=at, **fields))
        return pipeline.handle(rec, stored, NOW)

    stored = {}
    for customer in ("a", "b", "c"):
        first = handle(customer, "visit.favourite", f"{customer}-1", product_id="hot")
        stored[customer] = first.state
        stored[customer] = handle(customer, "visit.page_view", f"{customer}-2", stored[customer],
                                  at=NOW - timedelta(minutes=4)).state  # the favourite is folded (reorder hold)
    today = int(NOW.timestamp())
    assert pipeline.store.popular(today, 5) == ("hot",)  # three customers: min_customers by default
    erased = handle("a", "consent.erasure_requested", "a-3", stored["a"], at=NOW - timedelta(minutes=3))
    stored["a"] = handle("a", "visit.page_view", "a-4", erased.state, at=NOW).state  # past the reorder hold
    assert pipeline.store.popular(today, 5) == ()


def test_the_producers_partition_every_key_as_aiokafkas_default_partitioner_does(tmp_path):
    """Records produced for a customer land where the Java client, aiokafka and faust put that key
    (the hash is only remembered), and the worker's producers use it."""
    import asyncio
    import random

    from aiokafka.partitioner import DefaultPartitioner

    from remarket.settings import Settings
    from remarket.shell.app import Worker
    from remarket.shell.pipeline import KeyPartitioner

    partitioner, rng = KeyPartitioner(), random.Random(7)
    keys = [f"c-{i:06d}".encode() for i in range(500)] + [rng.randbytes(rng.randint(0, 40)) for _ in range(500)]
    for count in (1, 3, 4, 7, 12, 64):
        partitions = list(range(count))
        for key in keys + keys:  # the second time from what was remembered
            assert partitioner(key, partitions, partitions) == DefaultPartitioner()(key, partitions, partitions)
    assert partitioner(b"c-000001", [10, 11, 12], [12]) == DefaultPartitioner()(b"c-000001", [10, 11, 12], [12])
    assert {partitioner(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}  # no key: an available one
    assert partitioner(None, [0, 1], []) in (0, 1)

    async def producer_settings():
        worker = Worker(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path), Policy(), load_catalog())
        return worker.app.producer._settings_default()

    assert isinstance(asyncio.run(producer_settings())["partitioner"], KeyPartitioner)
