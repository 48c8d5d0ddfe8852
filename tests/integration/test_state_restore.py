"""A worker that starts with an empty data directory (new machine, lost volume, or local tables
dropped after a crash) restores every customer's state from the changelog before it reports
ready. Regression test for faust taking changelog highwaters from a last-stable-offset that
aiokafka only knows after a fetch (remarket.shell.faust_fixes)."""
from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from remarket.domain.state import CustomerState
from remarket.shell.kafka import changelog_topic
from remarket.settings import Settings
from tests.integration.harness import produce, run, wait_until

SMALL, LARGE = 300, 20_000


def test_a_fresh_worker_restores_what_another_worker_wrote(deployment):
    first = deployment.start_worker("first")
    now = datetime.now(timezone.utc).isoformat()
    run(produce(deployment.bootstrap, [
        (deployment.topics["visits"], f"rs-{i}".encode(), orjson.dumps({
            "event_id": f"rs-{i}", "event_type": "visit.page_view", "customer_id": f"rs-{i}",
            "occurred_at": now, "schema_version": 1})) for i in range(SMALL)]))
    metrics = lambda: first.get("/metrics")[1].decode()  # noqa: E731
    wait_until(lambda: f'remarket_events_total{{outcome="applied",topic="visits"}} {SMALL}.0' in metrics(),
               message="all events applied")
    first.stop()  # clean stop: the last transaction is committed

    second = deployment.start_worker("second")  # its own, empty data directory
    missing = [i for i in range(SMALL) if second.customer(f"rs-{i}") is None]
    assert missing == [], f"{len(missing)} of {SMALL} customers not restored when ready"


async def seed_changelog(bootstrap: str, topic: str, partitions: int, customers: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs={"cleanup.policy": "compact"})])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    now = int(datetime.now(timezone.utc).timestamp())
    try:
        for i in range(customers):
            state = CustomerState(customer_id=f"big-{i}", policy_version="default-1", clock=now, upto=now)
            await producer.send(topic, state.to_bytes(), key=f"big-{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()


def test_a_fresh_worker_restores_a_large_changelog_before_it_is_ready(deployment):
    topic = changelog_topic(Settings(app_id=deployment.app_id))
    asyncio.run(seed_changelog(deployment.bootstrap, topic, deployment.partitions, LARGE))
    worker = deployment.start_worker()
    text = wait_until(lambda: (m := worker.get("/metrics")[1].decode()) and "remarket_customers{" in m and m,
                      message="customer gauges after the first index rebuild")
    restored = sum(float(v) for v in re.findall(r"^remarket_customers\{[^}]*\} ([0-9.e+]+)$", text, re.M))
    assert restored == LARGE, f"{restored:.0f} of {LARGE} customers restored"
    assert worker.customer("big-0") and worker.customer(f"big-{LARGE - 1}")
