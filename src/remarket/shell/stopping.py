"""How the worker process ends: the one way out when a handled record's outcome cannot be
written or sent, and a clean stop that does not linger."""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from remarket.shell.observe_logs import Worker as LoggingWorker

log = logging.getLogger("remarket.worker")

EXIT_CANNOT_CARRY_OUT = 70  # EX_SOFTWARE
EXIT_SETTLE_SECONDS = 0.1


class Worker(LoggingWorker):
    """faust's worker, ending its event loop 0.1 s after everything stopped instead of mode's 1 s
    (`Worker._sentinel_task`, mode 0.4): by then the app, its producers (committed, flushed) and
    its consumer are stopped and every task is done; the wait only lets close callbacks run.
    Every clean stop was a second longer: rolling restarts, and each worker a test stops."""

    async def _sentinel_task(self) -> None:
        await asyncio.sleep(EXIT_SETTLE_SECONDS)


def stop_without_committing(message: Any, exc: BaseException) -> None:
    """A record whose outcome could not be written or sent must not be skipped. `message`: the
    record (topic, partition, offset), or the partition whose records could not be written.

    An agent's stream acked such a record anyway, and faust's fetch loop would end with the
    exception; either way the offset could be committed past it (seen: a dead-letter copy too
    large to produce vanished). Stopping the process at once leaves the transaction open (aborted
    by the next worker) and the offset uncommitted: the record is handled again after the restart.
    Loud and never silent.
    """
    where = f"{message.topic}[{message.partition}]" + (f"@{message.offset}" if hasattr(message, "offset") else "")
    log.critical("cannot carry out %s (%s: %s): stopping without committing, so it is handled again after the "
                 "restart", where, type(exc).__name__, exc, exc_info=exc)
    logging.shutdown()
    os._exit(EXIT_CANNOT_CARRY_OUT)
