"""Input as storefronts really produce it: librdkafka clients (CRC32 partitioner by default),
Kafka's own console producer, every compression codec, records near the broker's size limit.
Nothing is lost and nothing crash-loops the worker."""
from __future__ import annotations

import os
import subprocess
import tempfile
from datetime import datetime, timezone

import orjson
import pytest
from confluent_kafka import Producer

from remarket.shell.pipeline import MAX_DEAD_LETTER_VALUE_BYTES, owner_partition
from remarket.devkit.broker import resolve_jars
from tests.integration.harness import consume_all, run, wait_until

CODECS = ["gzip", "snappy", "lz4", "zstd"]


def event(event_type: str, customer: str, event_id: str, **fields) -> bytes:
    return orjson.dumps({"event_id": event_id, "event_type": event_type, "customer_id": customer,
                         "occurred_at": datetime.now(timezone.utc).isoformat(), "schema_version": 1, **fields})


def librdkafka_produce(bootstrap: str, records, **config) -> dict[bytes, int]:
    """Produce with confluent-kafka's defaults (partitioner consistent_random: CRC32 of the key);
    returns the partition each key landed on."""
    landed: dict[bytes, int] = {}
    errors: list = []

    def delivered(err, msg) -> None:
        if err is not None:
            errors.append(err)
        else:
            landed[msg.key()] = msg.partition()

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", **config})
    for topic, key, value, headers in records:
        producer.produce(topic, value=value, key=key, headers=headers, on_delivery=delivered)
    assert producer.flush(30) == 0
    assert not errors, errors
    return landed


@pytest.fixture
def fast(make_deployment):
    return make_deployment("crash")  # reminders and coupons 2 s after their trigger


def test_unpaid_orders_from_a_librdkafka_producer_all_get_their_reminder(fast):
    d = fast
    worker = d.start_worker()
    customers = [f"rk-{i}" for i in range(20)]
    landed = librdkafka_produce(d.bootstrap, [
        (d.topics["orders"], c.encode(), event("order.placed", c, f"{c}-placed", order_id=f"o-{c}", total=30.0),
         [("traceparent", b"00-abc-def-01")]) for c in customers])
    elsewhere = [k for k, p in landed.items() if p != owner_partition(k, d.partitions)]
    assert elsewhere, "no key landed off its murmur2 partition: the test would prove nothing"

    actions = run(consume_all(d.bootstrap, d.topics["actions"], expect=len(customers), timeout=90, settle=3))
    reminded = sorted(orjson.loads(r.value)["customer_id"] for r in actions)
    assert reminded == sorted(customers), f"{len(reminded)} of {len(customers)} reminded"
    for r in actions:  # each on the customer's own (murmur2) partition, with its state
        assert r.partition == owner_partition(r.key, d.partitions)
    for c in customers:
        assert worker.customer(c) is not None, f"lookup does not find {c}"
    inspected = d.cli("inspect", elsewhere[0].decode())
    assert inspected.returncode == 0 and elsewhere[0].decode() in inspected.stdout, inspected.stderr
    metrics = worker.get("/metrics")[1].decode()
    assert f'remarket_events_total{{outcome="rerouted",topic="orders"}} {len(elsewhere)}.0' in metrics


def console_producer(bootstrap: str, topic: str, lines: list[str], codec: str) -> None:
    """Kafka's own kafka-console-producer, run from the broker's jars."""
    libs = resolve_jars()
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    try:
        with open(f.name) as stdin:
            subprocess.run(
                ["java", "-Xmx256m", "-cp", f"{libs}/*", "org.apache.kafka.tools.ConsoleProducer",
                 "--bootstrap-server", bootstrap, "--topic", topic, "--compression-codec", codec,
                 "--property", "parse.key=true", "--property", "key.separator=\t"],
                stdin=stdin, check=True, capture_output=True, timeout=120)
    finally:
        os.unlink(f.name)


def test_every_codec_from_librdkafka_and_from_kafkas_console_producer_is_applied(deployment):
    """One record batch per codec and producer, on every input topic; before cramjam was a
    dependency, one lz4, snappy or zstd record crash-looped the worker (UnsupportedCodecError)."""
    d = deployment
    worker = d.start_worker()
    expected = []
    for codec in CODECS:
        customers = [f"rk-{codec}-{i}" for i in range(4)]
        librdkafka_produce(d.bootstrap, [
            (d.topics["visits"], c.encode(), event("visit.product_view", c, f"{c}-v", product_id="p-1"), None)
            for c in customers], **{"compression.type": codec, "linger.ms": 50})
        expected += customers
        for role, event_type in (("email", "email.open"), ("carts", "cart.checkout_started")):
            console = [f"cp-{role}-{codec}-{i}" for i in range(3)]
            extra = {"cart_id": "k-1", "total": 12.0} if role == "carts" else {}
            console_producer(d.bootstrap, d.topics[role], [
                f"{c}\t{event(event_type, c, f'{c}-e', **extra).decode()}" for c in console], codec)
            expected += console
    wait_until(lambda: all(worker.customer(c) for c in expected), timeout=90,
               message="every compressed record applied")
    assert worker.proc.poll() is None
    dead = run(consume_all(d.bootstrap, d.topics["dead_letter"], timeout=3, settle=1))
    assert dead == [], [dict(r.headers).get("remarket-dlq-detail") for r in dead[:3]]


def test_input_too_big_to_copy_is_dead_lettered_cut_and_counted_and_the_worker_goes_on(deployment):
    d = deployment
    worker = d.start_worker()
    near_limit = b"{" + b" " * 1_048_298 + b"}"  # 1,048,300 bytes: the broker takes it, a copy would not fit
    huge_zstd = b'{"pad": "' + b"z" * 2_000_000 + b'"}'  # fits only compressed
    librdkafka_produce(d.bootstrap, [(d.topics["visits"], b"big-1", near_limit, [("traceparent", b"t-1")])],
                       **{"message.max.bytes": 1_100_000, "partitioner": "murmur2_random"})
    librdkafka_produce(d.bootstrap, [(d.topics["visits"], b"big-2", huge_zstd, [("traceparent", b"t-2")])],
                       **{"compression.type": "zstd", "message.max.bytes": 3_000_000, "partitioner": "murmur2_random"})
    librdkafka_produce(d.bootstrap, [(d.topics["visits"], b"after", event("visit.page_view", "after", "a-1"), None)],
                       partitioner="murmur2_random")

    dead = run(consume_all(d.bootstrap, d.topics["dead_letter"], expect=2, timeout=60, settle=2))
    by_key = {r.key: r for r in dead}
    assert set(by_key) == {b"big-1", b"big-2"}
    for key, original, trace in ((b"big-1", near_limit, b"t-1"), (b"big-2", huge_zstd, b"t-2")):
        headers = dict(by_key[key].headers)
        assert headers["remarket-dlq-reason"] == b"too_large"
        assert headers["remarket-dlq-truncated"] == b"true"
        assert headers["remarket-dlq-original-size"] == str(len(original)).encode()
        assert headers["remarket-dlq-topic"] == d.topics["visits"].encode() and headers["traceparent"] == trace
        assert by_key[key].value == original[:MAX_DEAD_LETTER_VALUE_BYTES]
    wait_until(lambda: worker.customer("after"), timeout=60, message="the next event applied")
    metrics = worker.get("/metrics")[1].decode()
    assert 'remarket_dead_letters_total{reason="too_large"} 2.0' in metrics
    assert "remarket_dead_letters_truncated_total 2.0" in metrics
    assert worker.proc.poll() is None
