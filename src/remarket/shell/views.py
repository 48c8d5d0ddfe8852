"""Web views on the worker's port: liveness, readiness and a routed, token-protected lookup."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import faust
import orjson
from pydantic import SecretStr

from remarket.domain.policy import Policy
from remarket.domain.profile import public_view
from remarket.domain.state import CustomerState
from remarket.shell import auth, web_errors
from remarket.shell.readiness import Readiness


def register(app: faust.App, table: Any, policy: Policy, readiness: Readiness, token: SecretStr | None) -> None:
    web_errors.install()

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        body = readiness.details()
        ready = body["ready"]
        return web.json(body, status=200 if ready else 503)

    async def lookup(web: Any, request: Any, customer_id: str) -> Any:
        raw = table.get(customer_id.encode())
        if not raw:
            return web.json({"error": "unknown customer", "customer_id": customer_id}, status=404)
        view = public_view(CustomerState.from_bytes(raw), datetime.now(timezone.utc), policy)
        body = orjson.dumps(view)
        return web.bytes(body, content_type="application/json")

    routed_lookup = app.table_route(table=table, match_info="customer_id")(lookup)

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
