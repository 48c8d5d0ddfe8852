"""The worker on a real broker: every input topic reaches the state, bad input is dead-lettered
with its reason, a repeated event_id changes nothing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson

from tests.integration.harness import consume_all, produce, run, wait_until

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def event(event_type: str, customer_id: str, event_id: str, minutes_ago: float = 0, **fields) -> bytes:
    at = NOW - timedelta(minutes=minutes_ago)
    return orjson.dumps({"event_id": event_id, "event_type": event_type, "customer_id": customer_id,
                         "occurred_at": at.isoformat(), "schema_version": 1, **fields})


def test_events_of_every_input_topic_reach_the_customer_state(deployment):
    t = deployment.topics
    worker = deployment.start_worker()
    key = b"cust-all"
    run(produce(deployment.bootstrap, [
        (t["visits"], key, event("visit.product_view", "cust-all", "e1", 50, product_id="p-1")),
        (t["carts"], key, event("cart.add", "cust-all", "e2", 40, cart_id="k-1",
                                items=[{"product_id": "p-1", "quantity": 1, "unit_price": 5.0}], total=5.0)),
        (t["orders"], key, event("order.placed", "cust-all", "e3", 30, order_id="o-1", total=5.0)),
        (t["orders"], key, event("order.paid", "cust-all", "e4", 29, order_id="o-1", total=5.0)),
        (t["email"], key, event("email.open", "cust-all", "e5", 20, message_id="m-1")),
        (t["consent"], key, event("consent.updated", "cust-all", "e6", 10, channel="sms", granted=True)),
    ]))
    view = wait_until(lambda: (v := worker.customer("cust-all")) and sum(v["state"]["events_by_family"].values()) == 6
                      and v, message="six events applied")
    state = view["state"]
    assert state["events_by_family"] == {"visits": 1, "carts": 1, "orders": 2, "email": 1, "consent": 1}
    assert datetime.fromisoformat(state["last_seen_by_family"]["orders"]) == NOW - timedelta(minutes=29)
    assert datetime.fromisoformat(state["last_seen_by_family"]["consent"]) == NOW - timedelta(minutes=10)

    # inspect reads the committed changelog, not the worker: visible once the transaction commits
    inspected = wait_until(lambda: (r := deployment.cli("inspect", "cust-all")).returncode == 0 and r,
                           message="state committed to the changelog")
    assert orjson.loads(inspected.stdout)["state"]["events_by_family"] == state["events_by_family"]
    assert view["profile"]["orders"] == 1 and view["profile"]["stage"] == "new"
    assert "fetch session" in worker.log_path.read_text(errors="replace"), "the worker fetches within a session"


def test_malformed_events_land_in_the_dead_letter_topic_with_reasons(deployment):
    t = deployment.topics
    worker = deployment.start_worker()
    good = event("visit.page_view", "cust-ok", "ok-1")
    bad = [
        (t["orders"], b"cust-x", b"{not json", "not_json"),
        (t["orders"], b"cust-x", b"\xff\xfe\x00garbage", "not_json"),
        (t["orders"], b"cust-x", b"[1, 2, 3]", "not_an_object"),
        (t["orders"], b"cust-x", event("order.teleported", "cust-x", "b1", order_id="o"), "unknown_event_type"),
        (t["orders"], b"cust-x", event("order.paid", "cust-x", "b2", order_id="o", total=-3), "schema_violation"),
        (t["orders"], b"cust-x", event("order.paid", "cust-x", "b3"), "schema_violation"),
        (t["visits"], b"cust-x", event("order.paid", "cust-x", "b4", order_id="o"), "wrong_topic"),
        (t["visits"], None, event("visit.page_view", "cust-x", "b5"), "missing_key"),
        (t["visits"], b"someone-else", event("visit.page_view", "cust-x", "b6"), "key_mismatch"),
        (t["visits"], b"cust-x", None, "empty_value"),
        (t["visits"], b"cust-x", event("visit.page_view", "cust-x", "b7", minutes_ago=-600), "rejected_by_core"),
    ]
    run(produce(deployment.bootstrap, [(topic, key, value) for topic, key, value, _ in bad]
                + [(t["visits"], b"cust-ok", good)]))

    dead = run(consume_all(deployment.bootstrap, t["dead_letter"], expect=len(bad)))
    assert len(dead) == len(bad)
    reasons = sorted(dict(r.headers)["remarket-dlq-reason"].decode() for r in dead)
    assert reasons == sorted(reason for *_, reason in bad)
    for record in dead:
        headers = dict(record.headers)
        assert headers["remarket-dlq-topic"].decode() in (t["orders"], t["visits"])
        assert int(headers["remarket-dlq-offset"]) >= 0
        assert headers["remarket-dlq-detail"]
    originals = {value for _, _, value, _ in bad}
    assert {r.value for r in dead} == originals  # the original bytes, untouched
    schema_details = [dict(r.headers)["remarket-dlq-detail"].decode() for r in dead
                      if dict(r.headers)["remarket-dlq-reason"] == b"schema_violation"]
    assert any("total" in d for d in schema_details) and any("order_id" in d for d in schema_details)

    shown = deployment.cli("tail", "dead-letter", "--from-beginning", "--idle-timeout", "3", "--limit", "50")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("remarket-dlq-reason:") == len(bad) and "(not JSON)" in shown.stdout

    # the worker kept going: the valid event after all the bad ones was applied
    assert wait_until(lambda: worker.customer("cust-ok"), message="valid event applied")
    assert worker.customer("cust-x") is None
    metrics = worker.get("/metrics")[1].decode()
    assert 'remarket_dead_letters_total{reason="not_json"} 2.0' in metrics


def test_a_repeated_event_id_changes_nothing(deployment):
    t = deployment.topics
    worker = deployment.start_worker()
    first = event("order.paid", "cust-dup", "dup-1", 5, order_id="o-9", total=10.0)
    run(produce(deployment.bootstrap, [(t["orders"], b"cust-dup", first)]))
    before = wait_until(lambda: worker.customer("cust-dup"), message="first event applied")

    resent_later = event("order.paid", "cust-dup", "dup-1", 1, order_id="o-9", total=10.0)
    marker = event("visit.page_view", "cust-dup", "after-dup", 0)
    run(produce(deployment.bootstrap, [(t["orders"], b"cust-dup", first), (t["orders"], b"cust-dup", resent_later),
                                       (t["visits"], b"cust-dup", marker)]))
    before = before["state"]
    after = wait_until(lambda: (v := worker.customer("cust-dup")) and "visits" in v["state"]["events_by_family"]
                       and v["state"], message="marker applied")
    assert after["events_by_family"]["orders"] == before["events_by_family"]["orders"] == 1
    assert after["last_seen_by_family"]["orders"] == before["last_seen_by_family"]["orders"]
    metrics = worker.get("/metrics")[1].decode()
    assert 'remarket_events_total{outcome="duplicate",topic="orders"} 2.0' in metrics
