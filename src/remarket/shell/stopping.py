"""The one way out when a handled record's outcome cannot be written or sent."""
from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("remarket.worker")

EXIT_CANNOT_CARRY_OUT = 70  # EX_SOFTWARE


def stop_without_committing(message: Any, exc: BaseException) -> None:
    """A record whose outcome could not be written or sent must not be skipped.

    An agent's stream acked such a record anyway, and faust's fetch loop would end with the
    exception; either way the offset could be committed past it (seen: a dead-letter copy too
    large to produce vanished). Stopping the process at once leaves the transaction open (aborted
    by the next worker) and the offset uncommitted: the record is handled again after the restart.
    Loud and never silent.
    """
    log.critical("cannot carry out %s[%d]@%d (%s: %s): stopping without committing, so it is handled again "
                 "after the restart", message.topic, message.partition, message.offset, type(exc).__name__, exc,
                 exc_info=exc)
    logging.shutdown()
    os._exit(EXIT_CANNOT_CARRY_OUT)
