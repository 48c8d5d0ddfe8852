"""An output the broker refuses is never committed past: the worker stops (exit 70) with its source
uncommitted, and once the topic is fixed a restart delivers what was refused. Before, at-least-once
counted the failed send in a metric and committed the offset: the profile (or action) was lost.

The fault is a platform team's: an output topic whose `max.message.bytes` is below the records the
worker writes there. aiokafka cannot retry RecordTooLarge; nor can it retry a missing ACL."""
from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.harness import consume_all, produce, run, wait_until
from tests.integration.test_ops_topics import set_topic_configs

EXIT_CANNOT_CARRY_OUT = 70


def committed_offsets(bootstrap: str, group: str) -> dict:
    async def read() -> dict:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return {tp: meta.offset for tp, meta in (await admin.list_consumer_group_offsets(group)).items()}
        finally:
            await admin.close()
    return run(read())


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_profile_the_broker_refuses_stops_the_worker_uncommitted_and_is_written_after_the_fix(
        make_deployment, guarantee):
    deployment = make_deployment()
    t = deployment.topics
    set_topic_configs(deployment.bootstrap, t["profiles"], {"cleanup.policy": "compact", "retention.ms": "-1",
                                                            "max.message.bytes": "64"})
    worker = deployment.start_worker(REMARKET_PROCESSING_GUARANTEE=guarantee)
    # a new customer's first event publishes its profile (~400 bytes)
    page_view = orjson.dumps({"event_id": "v-1", "event_type": "visit.page_view", "customer_id": "cust-big",
                              "occurred_at": datetime.now(timezone.utc).isoformat(), "schema_version": 1})
    run(produce(deployment.bootstrap, [(t["visits"], b"cust-big", page_view)]))
    assert worker.proc.wait(timeout=60) == EXIT_CANNOT_CARRY_OUT, worker.log_tail()
    log = worker.log_path.read_text(errors="replace")
    assert "cannot carry out" in log and "TooLarge" in log, worker.log_tail()
    visits = {tp.partition: offset for tp, offset in committed_offsets(deployment.bootstrap, deployment.app_id).items()
              if tp.topic == t["visits"]}
    assert all(offset <= 0 for offset in visits.values()), f"committed past the event: {visits}"

    set_topic_configs(deployment.bootstrap, t["profiles"], {"cleanup.policy": "compact", "retention.ms": "-1"})
    worker.start(REMARKET_PROCESSING_GUARANTEE=guarantee)
    profiles = run(consume_all(deployment.bootstrap, t["profiles"], expect=1, timeout=60))
    assert {record.key for record in profiles} == {b"cust-big"}
    # A later profile may follow as time moves the customer on; at-least-once may also write one
    # twice (its record handled again when a rebalance comes before the commit: seen once in CI,
    # on a busy machine); exactly-once never does.
    if guarantee == "exactly_once":
        assert len({record.value for record in profiles}) == len(profiles), [r.value for r in profiles]
    wait_until(lambda: (view := worker.customer("cust-big")) and view["state"]["events_by_family"] == {"visits": 1},
               message="the event handled once after the restart")
