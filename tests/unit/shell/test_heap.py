"""LongLivedHeap: young collections walk nothing, what survives a collection is left out of the next
ones, garbage is still collected, a periodic sweep finds cycles among frozen objects, and faust's
store closes thaw first."""
from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from remarket.shell.heap import LongLivedHeap, thaw_before_store_close


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(b)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def heap(clock: Clock):
    thresholds = gc.get_threshold()
    keeper = LongLivedHeap(sweep_seconds=60, clock=clock)
    keeper.start()
    yield keeper
    keeper.stop()
    gc.set_threshold(*thresholds)


def walked_by_collections(objects: list) -> int:
    """How many of `objects` a collection would still walk (frozen ones are in no generation)."""
    ids = {id(obj) for obj in objects}
    return sum(1 for obj in gc.get_objects() if id(obj) in ids)


def test_survivors_of_a_full_collection_are_frozen(heap: LongLivedHeap) -> None:
    survivors = [[i] for i in range(5_000)]  # tracked containers, kept alive
    gc.collect()
    assert walked_by_collections(survivors) == 0
    assert heap.full_collections == 1


@pytest.mark.parametrize("generation", [0, 1])
def test_survivors_of_a_young_collection_are_frozen(heap: LongLivedHeap, generation: int) -> None:
    gc.disable()  # no automatic collection while they are made: this test's collection freezes them
    try:
        kept = [[i] for i in range(1_000)]
        assert walked_by_collections(kept) == len(kept)
        gc.collect(generation)
        assert walked_by_collections(kept) == 0
    finally:
        gc.enable()
    assert heap.full_collections == 0


@pytest.mark.parametrize("generation", [0, 1])
def test_a_young_collection_walks_nothing(heap: LongLivedHeap, generation: int) -> None:
    """Everything is frozen when it starts: the states made since the last one are not walked."""
    seen: list[int] = []

    def probe(phase: str, info: dict) -> None:  # runs after the heap's own callback
        if phase == "start":
            seen.append(sum(len(gc.get_objects(g)) for g in range(3)))

    gc.disable()
    gc.callbacks.append(probe)
    try:
        kept = [[i] for i in range(1_000)]
        assert walked_by_collections(kept) == len(kept)  # before: in the young generation
        gc.collect(generation)
    finally:
        gc.callbacks.remove(probe)
        gc.enable()
    assert len(seen) == 1 and seen[0] < 10  # what remains is the callbacks' own arguments
    assert walked_by_collections(kept) == 0


def test_a_cycle_dead_before_a_young_collection_waits_for_the_sweep(heap: LongLivedHeap, clock: Clock) -> None:
    head, alive = cycle()
    del head
    gc.collect(0)
    gc.collect(1)
    assert alive() is not None  # the trade: found only by the sweep, at most sweep_seconds later
    clock.now += 60
    assert heap.sweep_if_due() is True
    assert alive() is None


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


def test_a_cycle_frozen_while_alive_is_found_by_the_sweep(heap: LongLivedHeap, clock: Clock) -> None:
    head, alive = cycle()
    gc.collect()  # the live cycle is frozen
    del head
    clock.now += 59
    gc.collect()  # frozen objects are not walked: the dead cycle stays
    assert alive() is not None
    assert heap.sweeps == 0
    clock.now += 1
    gc.collect()  # a sweep is due: it unfreezes and walks everything
    assert alive() is None
    assert heap.sweeps == 1
    head, alive = cycle()
    gc.collect()
    del head
    gc.collect()  # the sweep's clock starts again
    assert alive() is not None


def test_the_tick_sweeps_once_due(heap: LongLivedHeap, clock: Clock) -> None:
    """Full collections no longer come on their own (nothing reaches the middle generation), so
    the worker's tick asks for the sweep."""
    head, alive = cycle()
    gc.collect(0)  # alive: frozen by the young collection
    del head
    gc.collect(0)
    gc.collect(1)
    assert alive() is not None
    assert heap.sweep_if_due() is False
    clock.now += 60
    assert heap.sweep_if_due() is True
    assert alive() is None
    assert heap.sweeps == 1
    assert heap.sweep_if_due() is False  # the clock starts again


def test_a_sweep_is_logged_with_its_pause(heap: LongLivedHeap, clock: Clock, caplog) -> None:
    head, alive = cycle()
    gc.collect(0)
    del head
    clock.now += 60
    with caplog.at_level("INFO", logger="remarket.worker"):
        heap.sweep_if_due()
        gc.collect(0)  # not a sweep: nothing more is logged
    [line] = [r.getMessage() for r in caplog.records if "swept" in r.getMessage()]
    assert "unreachable objects freed" in line and alive() is None


def test_no_sweep_before_start(clock: Clock) -> None:
    keeper = LongLivedHeap(sweep_seconds=60, clock=clock)
    clock.now += 3600
    assert keeper.sweep_if_due() is False


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


def test_start_sets_the_thresholds() -> None:
    before = gc.get_threshold()
    keeper = LongLivedHeap()
    try:
        keeper.start((12_345, 7, 3))
        assert gc.get_threshold() == (12_345, 7, 3)
    finally:
        keeper.stop()
        gc.set_threshold(*before)


def test_sweep_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LongLivedHeap(sweep_seconds=0)


class FakeStore:
    """faust's RocksDB store closes a database by dropping it and collecting (faust/stores/rocksdb.py)."""

    def __init__(self) -> None:
        self._dbs: dict[int, Node] = {}

    def revoke_partitions(self, table: object, tps: set[int]) -> None:
        for tp in tps:
            self._dbs.pop(tp, None)
        gc.collect()

    async def stop(self) -> None:
        self._dbs.clear()
        gc.collect()


@pytest.mark.parametrize("close", ["revoke", "stop"])
def test_a_store_handle_in_a_frozen_cycle_is_freed_when_faust_closes_it(heap: LongLivedHeap, close: str) -> None:
    class Store(FakeStore):
        pass

    thaw_before_store_close(Store)
    thaw_before_store_close(Store)  # idempotent: wrapped once
    store = Store()
    handle, alive = cycle()  # a database handle that sits in a reference cycle
    store._dbs[0] = handle
    del handle
    gc.collect()  # alive: frozen
    if close == "revoke":
        store.revoke_partitions(None, {0})
    else:
        asyncio.run(store.stop())
    assert alive() is None
    assert not hasattr(Store.revoke_partitions.__wrapped__, "__wrapped__")  # wrapped once


def test_without_the_thaw_the_frozen_handle_would_stay(heap: LongLivedHeap) -> None:
    """The failure the thaw prevents (shown, so the test above can fail)."""
    store = FakeStore()
    handle, alive = cycle()
    store._dbs[0] = handle
    del handle
    gc.collect()
    store.revoke_partitions(None, {0})
    assert alive() is not None
    heap.stop()
    gc.collect()
    assert alive() is None
