"""Web views on the worker's port: liveness, readiness and a routed, token-protected lookup."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson

from remarket.domain.policy import Policy
from remarket.domain.profile import profile_of
from remarket.domain.state import CustomerState
from remarket.shell import auth, web_errors

if TYPE_CHECKING:
    from remarket.shell.app import Worker

VISIBLE_STATE_FIELDS = {"events_by_family", "last_seen_by_family", "timezone", "country", "consent",
                        "open_orders", "open_checkouts", "products", "stage_since", "last_reminded", "contacts",
                        "couponed", "due_at", "policy_version"}


def register(worker: "Worker") -> None:
    app = worker.app
    token = worker.settings.lookup_token
    web_errors.install()

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready = worker.is_ready()
        body = {"ready": ready, "assigned_partitions": len(app.assignor.assigned_actives()),
                "tables_recovered": worker.tables_recovered(), "broker_reachable": worker.broker_watch.reachable}
        return web.json(body, status=200 if ready else 503)

    async def lookup(web: Any, request: Any, customer_id: str) -> Any:
        raw = worker.table.get(customer_id.encode())
        if not raw:
            return web.json({"error": "unknown customer", "customer_id": customer_id}, status=404)
        body = public_view(raw, worker.pipeline.policy, datetime.now(timezone.utc))
        return web.bytes(body, content_type="application/json")

    routed_lookup = app.table_route(table=worker.table, match_info="customer_id")(lookup)

    @app.page("/customers/{customer_id}")
    async def customer(web: Any, request: Any, customer_id: str) -> Any:
        """Authenticated here, before faust forwards the request to the key's owner (which checks again)."""
        if token is None:
            return web.json({"error": "lookup is disabled; set REMARKET_LOOKUP_TOKEN"}, status=404)
        authorization = request.headers.get("Authorization")
        if not auth.token_matches(authorization, token.get_secret_value()):
            challenge = auth.INVALID_TOKEN_CHALLENGE if auth.bearer_token(authorization) else auth.CHALLENGE
            return web.json({"error": "send 'Authorization: Bearer <token>'"}, status=401,
                            headers={"WWW-Authenticate": challenge})
        return await routed_lookup(web, request, customer_id)


def public_view(raw: bytes, policy: Policy, now: datetime) -> bytes:
    """What a lookup may show: the profile as of now, and the state without raw events or dedup data."""
    state = CustomerState.from_bytes(raw)
    return orjson.dumps({
        "customer_id": state.customer_id,
        "profile": profile_of(state, now, policy).model_dump(mode="json"),
        "state": state.model_dump(mode="json", include=VISIBLE_STATE_FIELDS),
        "buffered_events": len(state.buffer),
    })
