"""Local state after an unclean stop, under exactly-once.

RocksDB holds every table write as it happens, including writes of a transaction that a crash
then aborted. Trusting that local copy would skip work whose actions were never committed (the
state says "reminded", the reminder was rolled back). So, as Kafka Streams does, a worker that
did not stop cleanly drops its local tables and restores them from the changelog, which a
read_committed consumer sees only as committed.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger("remarket.worker")

CLEAN_STOP_MARKER = ".clean-stop"
FAUST_VERSION_DIR_PREFIX = "v"  # faust keeps tables under {datadir}/v{app version}/tables


def prepare(data_dir: Path, *, exactly_once: bool) -> bool:
    """Call before the worker starts. Returns True when local tables were dropped."""
    data_dir.mkdir(parents=True, exist_ok=True)
    marker = data_dir / CLEAN_STOP_MARKER
    table_dirs = [p for p in data_dir.iterdir() if p.is_dir() and p.name.startswith(FAUST_VERSION_DIR_PREFIX)]
    wipe = exactly_once and table_dirs and not marker.exists()
    if wipe:
        log.warning("previous stop was not clean: dropping local tables in %s and restoring them "
                    "from the changelog (committed data only)", data_dir)
        for path in table_dirs:
            shutil.rmtree(path)
    marker.unlink(missing_ok=True)  # from now on we are running: a crash leaves no marker
    return bool(wipe)


def mark_clean_stop(data_dir: Path) -> None:
    (data_dir / CLEAN_STOP_MARKER).touch()
