"""GET /customers/{id} on either of two workers in one group answers for any customer: faust's
table_route forwards the request to the worker that owns the key's partition. Authorization follows
RFC 6750 (the Bearer scheme required, case-insensitive); an over-long URL is answered 400/414 quietly."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import orjson

from tests.integration.harness import produce, run, wait_until

CUSTOMERS = [f"c-route-{i:03d}" for i in range(24)]


def _product_view(customer_id: str) -> bytes:
    return orjson.dumps({
        "event_id": str(uuid.uuid4()), "event_type": "visit.product_view", "customer_id": customer_id,
        "occurred_at": datetime.now(timezone.utc).isoformat(), "schema_version": 1,
        "context": {"timezone": "Europe/Berlin", "country": "DE"}, "product_id": "p-0001"})


def _assigned(worker) -> int:
    status, body = worker.get("/readyz")
    return orjson.loads(body)["assigned_partitions"] if status == 200 else 0


def test_either_worker_answers_a_lookup_for_any_customer_and_refuses_without_token(deployment):
    w1 = deployment.start_worker("w1")
    w2 = deployment.start_worker("w2")
    # both own partitions (the group rebalanced), so some lookups must be forwarded
    wait_until(lambda: _assigned(w1) > 0 and _assigned(w2) > 0 and
               w1.get("/readyz")[0] == 200 and w2.get("/readyz")[0] == 200,
               timeout=60, message="both workers own partitions")

    run(produce(deployment.bootstrap,
                [(deployment.topics["visits"], cid.encode(), _product_view(cid)) for cid in CUSTOMERS]))

    def all_found(worker) -> bool:
        return all(worker.customer(cid) is not None for cid in CUSTOMERS)

    wait_until(lambda: all_found(w1), timeout=60, message="every customer found through w1")
    for worker in (w1, w2):
        for cid in CUSTOMERS:
            view = worker.customer(cid)
            assert view is not None, f"{worker.name} did not answer for {cid}"
            assert view["customer_id"] == cid
            assert view["state"]["events_by_family"], view
            assert "buffer" not in view["state"]  # raw events and dedup data stay inside

    # each worker owns one of the two partitions, so half of those answers were forwarded
    status, _ = w1.get(f"/customers/{CUSTOMERS[0]}")
    assert status == 401
    assert w2.get(f"/customers/{CUSTOMERS[0]}", token="wrong-token")[0] == 401
    assert w1.get("/customers/c-nobody-here", token="test-token")[0] == 404

    # RFC 6750: the scheme is case-insensitive, and required
    for worker in (w1, w2):
        for cid in CUSTOMERS:  # half of them forwarded to the other worker, with the header
            status, body = worker.get(f"/customers/{cid}", authorization="bearer test-token")
            assert status == 200 and orjson.loads(body)["customer_id"] == cid, (worker.name, cid, status)
        assert worker.get(f"/customers/{CUSTOMERS[1]}", authorization="BEARER test-token")[0] == 200
        for refused in ("test-token", "Basic test-token", "Bearer", "Bearer test-token extra", "Bearer test-tokenx"):
            assert worker.get(f"/customers/{CUSTOMERS[1]}", authorization=refused)[0] == 401, refused


def test_a_very_long_url_is_answered_400_or_414_without_an_error_in_the_log(deployment):
    worker = deployment.start_worker("w1")
    status, _ = worker.get("/customers/" + "x" * 100_000, token="test-token")
    assert status in (400, 414)
    assert worker.get("/healthz")[0] == 200  # and the server still answers
    log = worker.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "Error handling request" not in log, worker.log_tail()
    assert "rejected a malformed request" in log
