"""`remarket dead-letter replay` on the real broker: selects by reason, topic and time, dry-runs by
default, redrives the original bytes, key and producer headers once, and counts every outcome.

The dead letters are produced here with the headers the worker writes (`remarket-dlq-*`, the
producer's own headers kept), so the test does not depend on which records the worker rejects.
"""
from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timedelta, timezone

import orjson
from aiokafka import AIOKafkaProducer

from tests.integration.harness import consume_all, run, wait_until

NOW_MS = int(time.time() * 1000)
THREE_DAYS_AGO_MS = NOW_MS - int(timedelta(days=3).total_seconds() * 1000)


def order(event_id: str, customer_id: str) -> bytes:
    return orjson.dumps({"event_id": event_id, "event_type": "order.paid", "customer_id": customer_id,
                         "occurred_at": datetime.now(timezone.utc).isoformat(), "schema_version": 1})


def dead_letter_headers(reason: str, topic: str, offset: int, *producer: tuple[str, bytes],
                        truncated: bool = False) -> list[tuple[str, bytes]]:
    headers = [*producer,
               ("remarket-dlq-reason", reason.encode()), ("remarket-dlq-detail", b"test"),
               ("remarket-dlq-topic", topic.encode()), ("remarket-dlq-partition", b"0"),
               ("remarket-dlq-offset", str(offset).encode()),
               ("remarket-dlq-failed-at", datetime.now(timezone.utc).isoformat().encode())]
    if truncated:
        headers += [("remarket-dlq-truncated", b"true"), ("remarket-dlq-original-size", b"900000")]
    return headers


async def produce_dead_letters(bootstrap: str, topic: str, letters: list[dict]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for letter in letters:
            await producer.send_and_wait(topic, letter["value"], key=letter["key"], headers=letter["headers"],
                                         timestamp_ms=letter.get("timestamp_ms"), partition=0)
    finally:
        await producer.stop()


def counts(stdout: str) -> dict[str, int]:
    line = next(line for line in stdout.splitlines() if line.startswith("counts:"))
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def test_dead_letter_replay_redrives_the_selected_records_once_with_their_headers(deployment):
    orders, visits = deployment.topics["orders"], deployment.topics["visits"]
    event = f"e-{uuid.uuid4()}"
    original = order(event, "c-redrive-1")
    trace = ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    letters = [
        # 0: selected and redriven
        {"key": b"c-redrive-1", "value": original,
         "headers": dead_letter_headers("schema_violation", orders, 10, trace, ("x-shop", b"berlin"))},
        # 1: the same event dead-lettered twice: redriven once
        {"key": b"c-redrive-1", "value": original, "headers": dead_letter_headers("schema_violation", orders, 11)},
        # 2: other reason: not selected
        {"key": b"c-redrive-2", "value": b"{broken", "headers": dead_letter_headers("not_json", orders, 12)},
        # 3: truncated: skipped and counted
        {"key": b"c-redrive-3", "value": order(f"e-{uuid.uuid4()}", "c-redrive-3")[:20],
         "headers": dead_letter_headers("schema_violation", orders, 13, truncated=True)},
        # 4: dead-lettered three days ago: outside --since 1d
        {"key": b"c-redrive-4", "value": order(f"e-{uuid.uuid4()}", "c-redrive-4"),
         "headers": dead_letter_headers("schema_violation", orders, 14), "timestamp_ms": THREE_DAYS_AGO_MS},
        # 5: another source topic: outside --topic orders
        {"key": b"c-redrive-5", "value": order(f"e-{uuid.uuid4()}", "c-redrive-5"),
         "headers": dead_letter_headers("schema_violation", visits, 15)},
    ]
    run(produce_dead_letters(deployment.bootstrap, deployment.topics["dead_letter"], letters))
    select = ["dead-letter", "replay", "--reason", "schema_violation", "--topic", "orders", "--since", "1d"]

    dry = deployment.cli(*select)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "dry run" in dry.stdout
    assert counts(dry.stdout) == {"would_redrive": 1, "already_redriven": 1, "truncated": 1, "unroutable": 0,
                                  "not_selected": 3}
    assert run(consume_all(deployment.bootstrap, orders, timeout=3, settle=1)) == [], "a dry run produced"

    done = deployment.cli(*select, "--execute")
    assert done.returncode == 0, done.stdout + done.stderr
    assert counts(done.stdout) == {"redriven": 1, "already_redriven": 1, "truncated": 1, "unroutable": 0,
                                   "not_selected": 3}
    [redriven] = run(consume_all(deployment.bootstrap, orders, expect=1, timeout=15, settle=1))
    assert (redriven.key, redriven.value) == (b"c-redrive-1", original)
    headers = list(redriven.headers)
    dead_letter_offset = next(line for line in done.stdout.splitlines() if line.startswith("redriven")).split()[1]
    assert headers == [trace, ("x-shop", b"berlin"),
                       ("remarket-redriven-from", dead_letter_offset.encode())], headers
    assert dead_letter_offset == f"{deployment.topics['dead_letter']}/0/0"

    # a second run, a new process (nothing in memory): the marker topic says it is done
    again = deployment.cli(*select, "--execute")
    assert again.returncode == 0, again.stdout + again.stderr
    assert counts(again.stdout)["redriven"] == 0 and counts(again.stdout)["already_redriven"] == 2
    assert len(run(consume_all(deployment.bootstrap, orders, timeout=5, settle=2))) == 1


def visit(customer_id: str) -> bytes:
    return orjson.dumps({
        "event_id": f"e-{uuid.uuid4()}", "event_type": "visit.product_view", "customer_id": customer_id,
        "occurred_at": datetime.now(timezone.utc).isoformat(), "schema_version": 1,
        "context": {"timezone": "Europe/Berlin", "country": "DE"}, "product_id": "p-0001"})


def test_a_redriven_record_is_applied_by_the_worker_like_any_other(deployment):
    """A record parked by a (since fixed) processing error reaches the customer's state once redriven."""
    visits = deployment.topics["visits"]
    worker = deployment.start_worker("w1")
    run(produce_dead_letters(deployment.bootstrap, deployment.topics["dead_letter"], [
        {"key": b"c-redrive-live", "value": visit("c-redrive-live"),
         "headers": dead_letter_headers("processing_error", visits, 3, ("traceparent", b"00-1-2-01"))}]))
    assert worker.customer("c-redrive-live") is None

    done = deployment.cli("dead-letter", "replay", "--reason", "processing_error", "--execute")
    assert done.returncode == 0 and counts(done.stdout)["redriven"] == 1, done.stdout + done.stderr

    view = wait_until(lambda: worker.customer("c-redrive-live"), timeout=30, message="the redriven visit applied")
    assert view["state"]["events_by_family"] == {"visits": 1}, view
    dead_letters = run(consume_all(deployment.bootstrap, deployment.topics["dead_letter"], timeout=5, settle=2))
    assert len(dead_letters) == 1, "the redriven record was dead-lettered again"
