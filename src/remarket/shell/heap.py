"""Garbage collection that does not walk the whole long-lived heap at every full collection.

The worker's heap is mostly long-lived: what startup built (modules, faust, pydantic's schemas)
and the decoded customer states of the write cache, which grow with every new customer. A full
collection walks every object the collector tracks: 130-160 ms each, four times in 30 s at
1,033 events/s of new customers (docs/benchmarks.md, "Full collections"), a pause for every
record arriving meanwhile and the largest item in the event-to-action p99. Those collections
find no garbage among the long-lived objects.

So whatever survives a full collection is frozen (`gc.freeze`) and later collections leave it
out. Frozen objects are still freed when their last reference goes (an evicted state is a tree,
not a cycle); only a reference cycle among them that becomes garbage stays, so a full
collection at least every `SWEEP_SECONDS` unfreezes first and walks everything.

faust's RocksDB store closes a partition's database by dropping the handle and calling
`gc.collect()` (revoke and stop); a handle held in a frozen cycle would stay open there.
`thaw_before_store_close` gives every frozen object back to the collector first.
"""
from __future__ import annotations

import functools
import gc
import inspect
import logging
import time
from typing import Any, Callable

log = logging.getLogger("remarket.worker")

SWEEP_SECONDS = 600.0
"""How long cyclic garbage among long-lived objects can stay at most: one full walk (one pause
of a full collection as before) every ten minutes instead of several a minute."""


class LongLivedHeap:
    """Freezes what survives each full collection; see the module docstring."""

    def __init__(self, sweep_seconds: float = SWEEP_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        if sweep_seconds <= 0:
            raise ValueError("sweep_seconds must be positive")
        self.sweep_seconds = sweep_seconds
        self._clock = clock
        self._last_sweep = clock()
        self.full_collections = 0
        self.sweeps = 0
        self.started = False

    def start(self, thresholds: tuple[int, int, int] | None = None) -> None:
        """Collect and freeze what startup built; from now on, freeze what each full collection
        leaves. `thresholds`: settings.gc_thresholds (it says why), set from here on."""
        if self.started:
            return
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self._on_collection)
        self._last_sweep = self._clock()
        self.started = True
        if thresholds is not None:
            gc.set_threshold(*thresholds)
        log.info("startup heap frozen: %d objects left out of garbage collection", gc.get_freeze_count())

    def stop(self) -> None:
        """Stop freezing, and give every frozen object back to the collector."""
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)
        gc.unfreeze()
        self.started = False

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self.full_collections += 1
            if self._clock() - self._last_sweep >= self.sweep_seconds:
                gc.unfreeze()  # this one walks everything: cycles among long-lived objects are found
                self._last_sweep = self._clock()
                self.sweeps += 1
        else:  # "stop": what is left now is alive and long-lived
            gc.freeze()


def thawed(method: Callable[..., Any]) -> Callable[..., Any]:
    """`method`, after giving the frozen objects back to the collector (see the module docstring)."""
    if inspect.iscoroutinefunction(method):
        @functools.wraps(method)
        async def thawed_coroutine(*args: Any, **kwargs: Any) -> Any:
            gc.unfreeze()
            return await method(*args, **kwargs)
        return thawed_coroutine

    @functools.wraps(method)
    def thawed_call(*args: Any, **kwargs: Any) -> Any:
        gc.unfreeze()
        return method(*args, **kwargs)
    return thawed_call


def thaw_before_store_close(store_class: Any) -> None:
    """faust's RocksDB store closes databases through `gc.collect()` in `revoke_partitions` and
    `stop`: thaw first, so that collection walks (and frees) every handle dropped there.
    The next full collection freezes what is still alive. Idempotent."""
    for name in ("revoke_partitions", "stop"):
        method = getattr(store_class, name)
        if not getattr(method, "_remarket_thawed", False):
            wrapped = thawed(method)
            wrapped._remarket_thawed = True  # type: ignore[attr-defined]
            setattr(store_class, name, wrapped)
