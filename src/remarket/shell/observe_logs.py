"""Logs an on-call engineer can read during a broker outage.

With the broker gone, aiokafka and faust log the same few errors for every retry of every
connection (measured: ~127 ERROR lines a second). The worker's own BrokerWatch logs one line
when the broker goes away and one when it is back, plus a summary while it stays away; the
client libraries' repeats are folded here: the first of each kind passes, the rest of that
kind within the window are counted and reported with the next one that passes.
"""
from __future__ import annotations

import logging
import time

from faust.worker import Worker as FaustWorker

REPEAT_WINDOW_SECONDS = 30.0


class RepeatFolder(logging.Filter):
    """Let the first WARNING+ record of each (logger, template) through per window; count the rest."""

    def __init__(self, window: float = REPEAT_WINDOW_SECONDS, clock=time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self._opened: dict[tuple[str, int, str], float] = {}
        self._folded: dict[tuple[str, int, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.name.startswith("remarket"):
            return True
        key = (record.name, record.levelno, str(record.msg)[:200])
        now = self.clock()
        opened = self._opened.get(key)
        if opened is not None and now - opened < self.window:
            self._folded[key] = self._folded.get(key, 0) + 1
            return False
        self._opened[key] = now
        if folded := self._folded.pop(key, 0):
            record.msg = f"{record.msg} (and {folded} more like it in the last {self.window:.0f} s)"
        if len(self._opened) > 4096:  # f-string messages make every record a kind of its own
            self._opened.clear()
        return True


class Worker(FaustWorker):
    """faust's worker with the repeat folder on every root handler it sets up."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        folder = RepeatFolder()
        for handler in logger.handlers:
            handler.addFilter(folder)
