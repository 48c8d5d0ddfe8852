"""Is the broker answering? Readiness must say no while it is not.

faust keeps its consumer and producer retrying through an outage and says nothing a probe could
read, so /readyz stayed 200 through a 60 s broker outage. BrokerWatch asks the cluster for its
metadata every few seconds with its own client; the answer (and how long it has been gone) goes
into readiness, a gauge and one log line per change of state, plus a summary while it stays away.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka.client import AIOKafkaClient

log = logging.getLogger("remarket.readiness")

PROBE_TIMEOUT_SECONDS = 5.0
SUMMARY_EVERY_SECONDS = 30.0


def tables_recovered(app: Any) -> bool:
    """This generation's tables are restored. `recovery.completed` alone stays set from the
    previous recovery while the next one runs: a due-work index built then misses every
    customer still being restored, and their reminders never fire."""
    return bool(app.tables.recovery.completed.is_set() and app.tables.actives_ready and not app.rebalancing)


class Readiness:
    """Ready = the broker answers, this generation's tables are restored, partitions are assigned."""

    def __init__(self, app: Any, broker: "BrokerWatch") -> None:
        self.app, self.broker = app, broker

    def tables_recovered(self) -> bool:
        return tables_recovered(self.app)

    def is_ready(self) -> bool:
        return bool(self.broker.reachable and self.tables_recovered() and self.app.assignor.assigned_actives())

    def details(self) -> dict[str, Any]:
        return {"ready": self.is_ready(), "assigned_partitions": len(self.app.assignor.assigned_actives()),
                "tables_recovered": self.tables_recovered(), "broker_reachable": self.broker.reachable}


class BrokerWatch:
    def __init__(self, client_config: dict[str, Any], timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
        self._config = client_config
        self._timeout = timeout
        self._client: AIOKafkaClient | None = None
        self.reachable = False
        self._since = time.monotonic()  # of the current state
        self._summarised = self._since
        self._seen_once = False

    async def probe(self) -> bool:
        try:
            if self._client is None:
                self._client = AIOKafkaClient(**self._config, request_timeout_ms=int(self._timeout * 1000))
                await asyncio.wait_for(self._client.bootstrap(), self._timeout)
            await asyncio.wait_for(self._client.fetch_all_metadata(), self._timeout)
            ok, why = True, ""
        except Exception as exc:  # unreachable, timed out, refused: all mean "not ready"
            ok, why = False, f"{type(exc).__name__}: {exc}".strip()
            if self._client is not None and not self._seen_once:
                await self._close()  # bootstrap again next time
        self._record(ok, why)
        return ok

    def _record(self, ok: bool, why: str) -> None:
        now = time.monotonic()
        if ok != self.reachable:
            if ok and self._seen_once:
                log.warning("broker reachable again after %.0f s", now - self._since)
            elif ok:
                log.info("broker reachable")
            elif self._seen_once:
                log.error("broker unreachable (%s): not ready until it answers", why)
            self.reachable, self._since, self._summarised = ok, now, now
            self._seen_once |= ok
        elif not ok and self._seen_once and now - self._summarised >= SUMMARY_EVERY_SECONDS:
            log.error("broker still unreachable after %.0f s (%s)", now - self._since, why)
            self._summarised = now

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.close()
            except Exception:
                pass

    async def stop(self) -> None:
        await self._close()
