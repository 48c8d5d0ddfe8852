"""Web views on the worker's port: liveness, readiness and a routed, token-protected lookup."""
from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

import orjson

from remarket.domain.state import CustomerState

if TYPE_CHECKING:
    from remarket.shell.app import Worker

HIDDEN_STATE_FIELDS = {"recent_event_ids"}


def register(worker: "Worker") -> None:
    app = worker.app
    token = worker.settings.lookup_token

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready = worker.is_ready()
        body = {"ready": ready, "assigned_partitions": len(app.assignor.assigned_actives()),
                "tables_recovered": app.tables.recovery.completed.is_set()}
        return web.json(body, status=200 if ready else 503)

    @app.page("/customers/{customer_id}")
    @app.table_route(table=worker.table, match_info="customer_id")
    async def customer(web: Any, request: Any, customer_id: str) -> Any:
        if token is None:
            return web.json({"error": "lookup is disabled; set REMARKET_LOOKUP_TOKEN"}, status=404)
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied.encode(), token.get_secret_value().encode()):
            return web.json({"error": "missing or wrong bearer token"}, status=401)
        raw = worker.table.get(customer_id.encode())
        if not raw:
            return web.json({"error": "unknown customer", "customer_id": customer_id}, status=404)
        return web.bytes(public_view(raw), content_type="application/json")


def public_view(raw: bytes) -> bytes:
    """What a lookup may show: the state without dedup bookkeeping."""
    state = CustomerState.from_bytes(raw)
    return orjson.dumps(state.model_dump(mode="json", exclude=HIDDEN_STATE_FIELDS))
