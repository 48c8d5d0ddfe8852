"""Garbage collection that walks each long-lived object once, not at every collection.

The worker's heap is mostly long-lived: what startup built (modules, faust, pydantic's schemas)
and the decoded customer states of the write cache: each record makes its customer a new state
(a working copy) that lives until that customer's next record. Python's collector walked such a
state in the young collection after it was made and again in the middle one (~1 µs per object:
a state is a wide `__dict__` of lists and dicts), and a full collection walked all of them:
130-160 ms each, a pause for every record arriving meanwhile (docs/benchmarks.md, "Full
collections"). Those walks find almost no garbage: the states are trees, freed by their last
reference, not cycles.

So young collections walk nothing: when one starts, everything is frozen first (`gc.freeze`,
which moves every tracked object to the permanent generation in constant time), and whatever
survives any other collection is frozen too. Frozen objects are still freed when their last
reference goes; only a reference cycle that becomes garbage stays, so every `SWEEP_SECONDS` a
full collection unfreezes first and walks everything (`sweep_if_due`, from the worker's tick:
with nothing left in the middle generation, Python's own full collections no longer come).

Before 2026-12-07 young collections still walked what was made since the last one (each object
once): in a drain that was every state made meanwhile, up to ~140,000 objects and 150 ms per
collection (a frozen object's release lowers the count that triggers them, so they came late and
big), ~7 µs per event in all, for ~400 cyclic objects found per 100,000-event drain (~15 per
30 s of the latency workload; docs/benchmarks.md, "Young collections walk nothing"). A cycle
that dies now waits for the sweep: at most `SWEEP_SECONDS`.

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
    """Freezes everything before each young collection and what survives the others; see the module docstring."""

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
        """Collect and freeze what startup built; from now on, freeze what each collection leaves.
        `thresholds`: settings.gc_thresholds (it says why), set from here on."""
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

    def sweep_if_due(self) -> bool:
        """A full collection that walks everything, frozen objects too, once `sweep_seconds` have
        passed since the last: the only way a cycle that died after it was frozen is freed."""
        if not self.started or self._clock() - self._last_sweep < self.sweep_seconds:
            return False
        started = time.perf_counter()
        freed = gc.collect()  # its start (below) unfreezes and counts the sweep
        # a pause for every record meanwhile, growing with the heap: on-call should see it
        log.info("swept the whole heap in %.0f ms: %d unreachable objects freed, %d kept frozen",
                 (time.perf_counter() - started) * 1000, freed, gc.get_freeze_count())
        return True

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            if info["generation"] < 2:
                gc.freeze()  # nothing left for it to walk (module docstring)
            else:
                self.full_collections += 1
                if self._clock() - self._last_sweep >= self.sweep_seconds:
                    gc.unfreeze()  # this one walks everything: cycles among long-lived objects are found
                    self._last_sweep = self._clock()
                    self.sweeps += 1
        else:  # "stop": what is left now is alive; most of it lives long (module docstring)
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
