"""Stages move with time alone: growth -> declining -> churned with no new event (real broker)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

from tests.integration.harness import consume_all, produce, run, wait_until



@pytest.fixture
def fast_lifecycle(make_deployment):
    return make_deployment("fast_lifecycle")


def paid_order(customer: str, order: str, at: datetime) -> bytes:
    return orjson.dumps({"event_id": f"{order}-paid", "event_type": "order.paid", "customer_id": customer,
                         "occurred_at": at.isoformat(), "schema_version": 1, "order_id": order, "total": 30.0})


def test_a_customer_who_stops_buying_declines_then_churns_without_any_event(fast_lifecycle):
    d = fast_lifecycle
    worker = d.start_worker()
    now = datetime.now(timezone.utc)
    run(produce(d.bootstrap, [(d.topics["orders"], b"c-time", paid_order("c-time", "o-1", now - timedelta(seconds=10))),
                              (d.topics["orders"], b"c-time", paid_order("c-time", "o-2", now))]))
    last_order = now

    stage = lambda: (v := worker.customer("c-time")) and v["profile"]["stage"]  # noqa: E731
    assert wait_until(lambda: stage() == "growth", timeout=30, interval=0.2, message="growth")
    wait_until(lambda: stage() == "declining", timeout=40, interval=0.2, message="declining")
    declined_at = datetime.now(timezone.utc)
    wait_until(lambda: stage() == "churned", timeout=40, interval=0.2, message="churned")
    churned_at = datetime.now(timezone.utc)

    # 1.5 x and 3 x the 10 s personal cycle, each reached within the worker's 1 s tick resolution
    assert timedelta(seconds=14) <= declined_at - last_order <= timedelta(seconds=25)
    assert timedelta(seconds=29) <= churned_at - last_order <= timedelta(seconds=40)

    # other systems see the segments move on the compacted profile topic, in order, once committed
    def published_stages():
        records = run(consume_all(d.bootstrap, d.topics["profiles"], timeout=5, settle=1))
        stages = [orjson.loads(r.value)["stage"] for r in records if r.key == b"c-time"]
        return stages if stages and stages[-1] == "churned" else None

    stages = wait_until(published_stages, timeout=30, message="churned profile committed")
    assert stages[-3:] == ["growth", "declining", "churned"]
    metrics = worker.get("/metrics")[1].decode()
    assert 'remarket_stage_transitions_total{from_stage="declining",to_stage="churned"} 1.0' in metrics
