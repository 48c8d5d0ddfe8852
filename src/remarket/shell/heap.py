"""Garbage collection that does not walk the whole heap for every full collection.

A full collection walks every object the collector tracks. The worker's heap is mostly long-lived:
what startup built (modules, faust, pydantic's schemas) and the customer states in the write
cache, which grow with every new customer. Walking them took 50-130 ms per full collection at
~570 events/s of new customers (docs/benchmarks.md), a pause for every record arriving meanwhile.
Yet those collections found no garbage among long-lived objects: 0 objects collected in every
full collection after startup.

So whatever survives a full collection is frozen (`gc.freeze`): later collections leave it out.
Frozen objects are still freed when their last reference goes; only a reference cycle among them
that becomes garbage would stay, so every `SWEEP_EVERY`-th full collection unfreezes first and
walks everything, which bounds what such cycles could hold.
"""
from __future__ import annotations

import gc
import logging
from typing import Any

log = logging.getLogger("remarket.worker")

SWEEP_EVERY = 100
"""Full collections between two that walk the frozen objects too (one every few minutes at
~570 events/s of new customers; less often when fewer objects are made)."""


class LongLivedHeap:
    """Freezes what survives each full collection; see the module docstring."""

    def __init__(self, sweep_every: int = SWEEP_EVERY) -> None:
        if sweep_every < 1:
            raise ValueError("sweep_every must be at least 1")
        self.sweep_every = sweep_every
        self.full_collections = 0
        self.sweeps = 0
        self.started = False

    def start(self) -> None:
        """Collect and freeze what startup built; from now on, freeze what each full collection leaves."""
        if self.started:
            return
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self._on_collection)
        self.started = True
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
            if self.full_collections % self.sweep_every == 0:
                gc.unfreeze()  # this one walks everything: cycles among long-lived objects are found
                self.sweeps += 1
        else:  # "stop": what is left now is alive and long-lived
            gc.freeze()
