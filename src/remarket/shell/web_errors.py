"""Malformed HTTP requests are the client's fault: one warning line, not an ERROR with a traceback.

aiohttp answers them itself (400 for a request line or header over 8190 bytes, a bad method,
a broken header) and then logs "Error handling request" at ERROR with the parser's traceback,
which pages whoever watches the worker's errors for a bad URL someone typed.
"""
from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"
SHOWN_CHARS = 160


class ClientErrorsAsWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 400) < 500:
            what = " ".join(str(exc.message).split())
            if len(what) > SHOWN_CHARS:
                what = what[:SHOWN_CHARS] + "..."
            record.msg, record.args = "rejected a malformed request (%s %s): %s", (exc.code, type(exc).__name__, what)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install() -> None:
    """Idempotent."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ClientErrorsAsWarnings) for f in logger.filters):
        logger.addFilter(ClientErrorsAsWarnings())
