"""Fuzzing the worker on the real broker: thousands of generated bad events interleaved with
valid ones. Every bad one lands in the dead-letter topic with the reason its kind implies, every
valid one is applied, and the worker never stops.

    FUZZ_BAD_EVENTS=10000 (default) ; the CI run uses the default.
"""
from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import orjson
from aiokafka import AIOKafkaProducer

from tests.integration.harness import consume_all, run, wait_until

BAD_EVENTS = int(os.environ.get("FUZZ_BAD_EVENTS", "10000"))
VALID_EVERY = 4  # one valid event after every few bad ones


def base(customer: str, event_type: str = "order.paid", **fields) -> dict:
    return {"event_id": f"fz-{random.random()}", "event_type": event_type, "customer_id": customer,
            "occurred_at": datetime.now(timezone.utc).isoformat(), "schema_version": 1,
            "order_id": "o-1", "total": 10.0, **fields}


def bad_event(rng: random.Random, i: int) -> tuple[str, bytes | None, bytes | None, str]:
    """(topic role, key, value, expected dead-letter reason)."""
    c = f"fz-{i % 50}"
    key = c.encode()
    kind = rng.randrange(16)
    if kind == 0:
        doc = orjson.dumps(base(c))
        return "orders", key, doc[: rng.randrange(1, len(doc) - 1)], "not_json"  # truncated
    if kind == 1:
        return "orders", key, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))) + b"\xff", "not_json"
    if kind == 2:  # invalid UTF-8 inside an otherwise valid document
        return "orders", key, orjson.dumps(base(c)).replace(b'"o-1"', b'"o-\xc3\x28"'), "not_json"
    if kind == 3:
        return "orders", key, orjson.dumps(base(c, total=rng.choice(["ten", [1], {"a": 1}, True]))), \
            "schema_violation"
    if kind == 4:
        return "orders", key, orjson.dumps(base(c, occurred_at=rng.choice([5, 1.7e9, True, "yesterday", None,
                                                                            "2026-11-01T10:00:00"]))), \
            "schema_violation"
    if kind == 5:
        doc = base(c)
        del doc[rng.choice(["event_id", "customer_id", "occurred_at", "order_id"])]
        return "orders", key, orjson.dumps(doc), "schema_violation"
    if kind == 6:
        return "orders", None, orjson.dumps(base(c)), "missing_key"
    if kind == 7:
        return "orders", b"someone-else", orjson.dumps(base(c)), "key_mismatch"
    if kind == 8:  # huge
        return "orders", key, orjson.dumps(base(c, note="x" * 300_000)), "too_large"
    if kind == 9:  # deeply nested
        depth = rng.choice([300, 2000])
        nested = b'{"a":' * depth + b"1" + b"}" * depth
        return "orders", key, orjson.dumps(base(c))[:-1] + b',"deep":' + nested + b"}", \
            "schema_violation" if depth < 1024 else "not_json"
    if kind == 10:
        future = datetime.now(timezone.utc) + timedelta(days=rng.choice([1, 400]))
        return "orders", key, orjson.dumps(base(c, occurred_at=future.isoformat())), "rejected_by_core"
    if kind == 11:
        ancient = rng.choice(["1970-01-01T00:00:00+00:00", "1900-06-01T00:00:00+00:00"])
        return "orders", key, orjson.dumps(base(c, occurred_at=ancient)), "rejected_by_core"
    if kind == 12:
        return "orders", key, orjson.dumps(base(c, total=-rng.uniform(0.01, 1e6))), "schema_violation"
    if kind == 13:
        return "orders", key, orjson.dumps(base(c, event_type=rng.choice(["order.teleported", "ORDER.PAID", "", 7]))), \
            "unknown_event_type"
    if kind == 14:
        return "consent", key, orjson.dumps(base(c, "consent.updated", channel="carrier_pigeon", granted=True)), \
            "schema_violation"
    return "orders", key, None if rng.random() < 0.5 else b"", "empty_value"


async def produce_bulk(bootstrap: str, records) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10,
                                max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def test_every_bad_event_is_dead_lettered_with_its_reason_and_every_valid_one_applied(deployment):
    t = deployment.topics
    worker = deployment.start_worker()
    rng = random.Random(20261122)
    records, expected_reasons, valid_per_customer = [], Counter(), Counter()
    for i in range(BAD_EVENTS):
        role, key, value, reason = bad_event(rng, i)
        records.append((t[role], key, value))
        expected_reasons[reason] += 1
        if i % VALID_EVERY == 0:
            c = f"ok-{i % 40}"
            doc = {"event_id": f"ok-{i}", "event_type": "visit.page_view", "customer_id": c,
                   "occurred_at": datetime.now(timezone.utc).isoformat(), "schema_version": 1}
            records.append((t["visits"], c.encode(), orjson.dumps(doc)))
            valid_per_customer[c] += 1
    run(produce_bulk(deployment.bootstrap, records))

    dead = run(consume_all(deployment.bootstrap, t["dead_letter"], expect=BAD_EVENTS, timeout=300, settle=5))
    reasons = Counter(dict(r.headers)["remarket-dlq-reason"].decode() for r in dead)
    assert sum(reasons.values()) == BAD_EVENTS, "each bad event exactly once in the dead-letter topic"
    assert reasons == expected_reasons
    assert all(dict(r.headers).get("remarket-dlq-detail") for r in dead)

    def applied(customer: str) -> int:
        view = worker.customer(customer)
        return view["state"]["events_by_family"].get("visits", 0) if view else 0

    for customer, count in valid_per_customer.items():
        assert wait_until(lambda: applied(customer) == count, timeout=60, message=f"{customer} applied")
    assert worker.proc.poll() is None, "the worker kept running"
    assert all(worker.customer(f"fz-{i}") is None for i in range(50)), "no bad event created state"
