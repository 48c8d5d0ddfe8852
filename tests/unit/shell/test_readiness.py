"""BrokerWatch: not ready while the broker does not answer; one line per change of state."""
from __future__ import annotations

import asyncio
import logging
import socket

from remarket.shell.readiness import BrokerWatch


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_broker_that_does_not_answer_is_not_reachable(caplog):
    watch = BrokerWatch({"bootstrap_servers": f"127.0.0.1:{closed_port()}"}, timeout=1.0)

    async def twice() -> list[bool]:
        try:
            return [await watch.probe(), await watch.probe()]
        finally:
            await watch.stop()

    with caplog.at_level(logging.INFO, logger="remarket.readiness"):
        assert asyncio.run(twice()) == [False, False]
    assert watch.reachable is False


def test_state_changes_are_logged_once_each(caplog):
    watch = BrokerWatch({"bootstrap_servers": "unused:1"})
    with caplog.at_level(logging.INFO, logger="remarket.readiness"):
        watch._record(True, "")
        watch._record(True, "")
        watch._record(False, "KafkaConnectionError")
        watch._record(False, "KafkaConnectionError")
        watch._record(True, "")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[1].startswith("broker unreachable") and lines[2].startswith("broker reachable again after")
