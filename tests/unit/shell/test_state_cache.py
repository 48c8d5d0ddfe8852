"""The write cache: decoded states, changes held until their partition's commit."""
from __future__ import annotations

from remarket.domain.state import new_state
from remarket.shell.state_cache import MEMORY_PER_JSON_BYTE, StateCache, encoded


class CountingStore:
    def __init__(self) -> None:
        self.data: dict[tuple[int, bytes], bytes] = {}
        self.reads = 0
        self.offsets: dict[int, int] = {}

    def get(self, partition, key):
        self.reads += 1
        return self.data.get((partition, key))

    def put(self, partition, key, value):
        if value is None:
            self.data.pop((partition, key), None)
        else:
            self.data[(partition, key)] = value

    def persisted_offset(self, partition):
        return self.offsets.get(partition)

    def write(self, partition, records, upto):
        for key, value in records:
            self.put(partition, key, value)
        self.offsets[partition] = upto


def test_a_stored_state_is_decoded_once_and_served_from_memory_after():
    store = CountingStore()
    store.data[(0, b"c-1")] = new_state("c-1", "1").to_bytes()
    cache = StateCache(store)
    first = cache.get(0, b"c-1")
    assert cache.get(0, b"c-1") is first and store.reads == 1
    assert cache.get(0, b"nobody") is None


def test_the_store_sees_a_change_only_with_its_commit_and_the_changelog_offset():
    store = CountingStore()
    cache = StateCache(store)
    cache.put(2, b"c-1", new_state("c-1", "1"))
    records = encoded(cache.take_states(2))
    assert store.data == {} and cache.get(2, b"c-1") is not None
    cache.committed(2, records, 17)
    assert store.data == {(2, b"c-1"): new_state("c-1", "1").to_bytes()} and store.offsets == {2: 17}
    assert cache.dirty_partitions() == set() and cache.get(2, b"c-1") == new_state("c-1", "1")


def test_an_erasure_is_a_tombstone_and_reads_as_absent_at_once():
    store = CountingStore()
    store.data[(1, b"c-1")] = new_state("c-1", "1").to_bytes()
    cache = StateCache(store)
    cache.get(1, b"c-1")
    cache.put(1, b"c-1", None)
    assert cache.get(1, b"c-1") is None
    assert encoded(cache.take_states(1)) == [(b"c-1", None)]
    cache.committed(1, encoded(cache.take_states(1)), 3)
    assert store.data == {} and cache.get(1, b"c-1") is None


def test_discarded_partitions_are_read_from_the_store_again():
    store = CountingStore()
    cache = StateCache(store)
    cache.put(1, b"c-1", new_state("c-1", "1"))
    cache.discard({1})
    assert cache.get(1, b"c-1") is None and cache.dirty_partitions() == set()


def test_the_decoded_states_kept_are_bounded_by_a_memory_budget():
    store = CountingStore()
    for i in range(10):
        store.data[(0, f"c-{i}".encode())] = new_state(f"c-{i}", "1").to_bytes()
    one = int(len(new_state("c-0", "1").to_json()) * MEMORY_PER_JSON_BYTE)
    cache = StateCache(store, budget_mb=3.5 * one / 2**20)  # room for three
    for i in range(10):
        cache.get(0, f"c-{i}".encode())
    assert cache.clean_bytes == 3 * one
    reads = store.reads
    cache.get(0, b"c-9")  # among the last three: from memory
    cache.get(0, b"c-0")  # the oldest: dropped, read again
    assert store.reads == reads + 1


def test_the_budget_is_shared_by_all_partitions_and_a_change_is_never_dropped():
    store = CountingStore()
    for p in range(2):
        store.data[(p, b"c-1")] = new_state("c-1", "1").to_bytes()
    one = int(len(new_state("c-1", "1").to_json()) * MEMORY_PER_JSON_BYTE)
    cache = StateCache(store, budget_mb=1.5 * one / 2**20)  # room for one
    cache.get(0, b"c-1")
    cache.get(1, b"c-1")  # partition 0's has to go: partition 1 holds nothing else
    assert cache.clean_bytes == one
    for i in range(5):  # changes are held whatever the budget
        cache.put(0, f"d-{i}".encode(), new_state(f"d-{i}", "1"))
    assert all(cache.get(0, f"d-{i}".encode()) is not None for i in range(5)) and store.reads == 2
    records = encoded(cache.take_states(0))
    cache.committed(0, records, 5)  # committed: kept decoded within the budget, the rest in the store
    assert cache.clean_bytes <= 1.5 * one and len(store.data) == 7
    assert all(cache.get(0, f"d-{i}".encode()) == new_state(f"d-{i}", "1") for i in range(5))
    cache.discard({0, 1})
    assert cache.clean_bytes == 0


def test_a_zero_budget_keeps_nothing_decoded():
    store = CountingStore()
    store.data[(0, b"c-1")] = new_state("c-1", "1").to_bytes()
    cache = StateCache(store, budget_mb=0)
    assert cache.get(0, b"c-1") == cache.get(0, b"c-1") and store.reads == 2 and cache.clean_bytes == 0
