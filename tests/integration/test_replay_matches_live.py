"""`remarket replay --actions` emits exactly the actions the live worker emitted for the same events."""
from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from tests.integration.harness import consume_all, produce, run

POLICIES = Path(__file__).parent / "policies"
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"]


@pytest.fixture
def equivalence(make_deployment):
    return make_deployment("equivalence")


def workload(rng: random.Random, start: datetime) -> list[tuple[str, dict]]:
    events, n = [], 0

    def add(role, event_type, customer, at, **fields):
        nonlocal n
        n += 1
        events.append((role, {"event_id": f"ev-{n}", "event_type": event_type, "customer_id": customer,
                              "occurred_at": at.isoformat(), "schema_version": 1,
                              "context": {"timezone": ZONES[hash(customer) % len(ZONES)]}, **fields}))

    for i in range(60):
        c, at = f"eq-{i}", start + timedelta(milliseconds=rng.randrange(0, 3000))
        kind = i % 6
        if kind == 0:  # unpaid order: reminder
            add("orders", "order.placed", c, at, order_id=f"o-{c}", total=25.0)
        elif kind == 1:  # repeat views, no order: coupon
            add("visits", "visit.product_view", c, at, product_id=f"p-{i}")
            add("visits", "visit.product_view", c, at + timedelta(milliseconds=200), product_id=f"p-{i}")
        elif kind == 2:  # a second paid order: growth notice
            add("orders", "order.paid", c, at - timedelta(days=40), order_id=f"o1-{c}", total=80.0)
            add("orders", "order.paid", c, at, order_id=f"o2-{c}", total=60.0, coupon_type="free_shipping")
        elif kind == 3:  # placed then paid quickly: nothing
            add("orders", "order.placed", c, at, order_id=f"o-{c}", total=25.0)
            add("orders", "order.paid", c, at + timedelta(milliseconds=300), order_id=f"o-{c}", total=25.0)
        elif kind == 4:  # attention then erasure: nothing, ever
            add("visits", "visit.favourite", c, at, product_id=f"p-{i}")
            add("consent", "consent.erasure_requested", c, at + timedelta(milliseconds=300))
        else:  # checkout started, email withdrawn, sms granted: reminder by sms or nothing
            add("consent", "consent.updated", c, at, channel="email", granted=False)
            add("consent", "consent.updated", c, at, channel="sms", granted=True)
            add("carts", "cart.checkout_started", c, at + timedelta(milliseconds=100), cart_id=f"k-{c}", total=30.0)
    return events


def test_replay_emits_the_same_actions_as_the_live_worker(equivalence, tmp_path):
    d = equivalence
    d.start_worker()
    start = datetime.now(timezone.utc)
    events = workload(random.Random(7), start)
    per_customer_order = sorted(events, key=lambda e: (e[1]["customer_id"], e[1]["occurred_at"]))
    run(produce(d.bootstrap, [(d.topics[role], doc["customer_id"].encode(), orjson.dumps(doc))
                              for role, doc in per_customer_order]))
    last_event = max(datetime.fromisoformat(doc["occurred_at"]) for _, doc in events)
    time.sleep(max(0.0, (last_event + timedelta(seconds=8) - datetime.now(timezone.utc)).total_seconds()))

    live = []
    for role in ("actions", "holdout"):
        live += [orjson.loads(r.value) for r in run(consume_all(d.bootstrap, d.topics[role], timeout=20, settle=4))]

    source = tmp_path / "events.jsonl"
    rng = random.Random(3)
    shuffled = [doc for _, doc in events]
    rng.shuffle(shuffled)  # a file in any order (all within the reorder tolerance of each customer)
    source.write_bytes(b"".join(orjson.dumps(doc) + b"\n" for doc in sorted(
        shuffled, key=lambda doc: doc["customer_id"])))
    actions_file, snapshot = tmp_path / "actions.jsonl", tmp_path / "snapshot.jsonl"
    as_of = (last_event + timedelta(seconds=5)).isoformat()
    result = d.cli("replay", "--input", str(source), "--snapshot", str(snapshot), "--actions", str(actions_file),
                   "--policy", str(POLICIES / "equivalence.toml"), "--as-of", as_of, timeout=120)
    assert result.returncode == 0, result.stderr
    replayed = [orjson.loads(line) for line in actions_file.read_bytes().splitlines() if line.strip()]

    by_id = lambda actions: {a["action_id"]: a for a in actions}  # noqa: E731
    assert len(live) == len(by_id(live)), "the live worker emitted an action twice"
    assert set(by_id(replayed)) == set(by_id(live))
    assert by_id(replayed) == by_id(live)  # every field, not just the ids
    kinds = {a["kind"] for a in live}
    assert {"payment_reminder", "targeted_coupon", "lifecycle_growth"} <= kinds
    assert any(a["holdout"] for a in live) and not all(a["holdout"] for a in live)
    assert not any(a["customer_id"] in {f"eq-{i}" for i in range(4, 60, 6)} for a in live)  # erased
