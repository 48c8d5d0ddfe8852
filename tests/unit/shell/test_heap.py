"""LongLivedHeap: what survives a full collection is left out of the next ones, garbage is still
collected, and a periodic sweep finds cycles among frozen objects."""
from __future__ import annotations

import gc
import weakref

import pytest

from remarket.shell.heap import LongLivedHeap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(b)


@pytest.fixture
def heap():
    keeper = LongLivedHeap(sweep_every=3)
    keeper.start()
    yield keeper
    keeper.stop()


def test_survivors_of_a_full_collection_are_frozen(heap: LongLivedHeap) -> None:
    survivors = [[i] for i in range(5_000)]  # tracked containers, kept alive
    before = gc.get_freeze_count()
    gc.collect()
    assert gc.get_freeze_count() >= before + len(survivors)
    assert heap.full_collections == 1


def test_young_generations_do_not_freeze(heap: LongLivedHeap) -> None:
    before = gc.get_freeze_count()
    kept = [[i] for i in range(1_000)]
    gc.collect(0)
    gc.collect(1)
    assert gc.get_freeze_count() == before
    assert heap.full_collections == 0
    del kept


def test_garbage_made_after_a_freeze_is_still_collected(heap: LongLivedHeap) -> None:
    gc.collect()
    head, alive = cycle()
    del head  # garbage before any full collection saw it: not frozen
    gc.collect()
    assert alive() is None


def test_frozen_objects_are_freed_by_their_last_reference(heap: LongLivedHeap) -> None:
    kept = Node()  # no cycle: reference counting frees it, frozen or not
    alive = weakref.ref(kept)
    gc.collect()
    del kept
    assert alive() is None


def test_a_cycle_frozen_while_alive_is_found_by_the_sweep(heap: LongLivedHeap) -> None:
    head, alive = cycle()
    gc.collect()  # full collection 1: the live cycle is frozen
    del head
    gc.collect()  # 2: frozen objects are not walked, the dead cycle stays
    assert alive() is not None
    gc.collect()  # 3: the sweep unfreezes and walks everything
    assert alive() is None
    assert heap.sweeps == 1


def test_stop_gives_the_frozen_objects_back() -> None:
    keeper = LongLivedHeap()
    keeper.start()
    head, alive = cycle()
    gc.collect()
    del head
    keeper.stop()
    gc.collect()
    assert alive() is None
    assert keeper._on_collection not in gc.callbacks


def test_start_twice_registers_once(heap: LongLivedHeap) -> None:
    heap.start()
    assert gc.callbacks.count(heap._on_collection) == 1


def test_sweep_every_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LongLivedHeap(sweep_every=0)
