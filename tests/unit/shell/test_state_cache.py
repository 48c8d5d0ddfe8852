"""The write cache: decoded states, changes held until their partition's commit."""
from __future__ import annotations

from remarket.domain.state import new_state
from remarket.shell.state_cache import StateCache


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
    records = cache.take(2)
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
    assert cache.take(1) == [(b"c-1", None)]
    cache.committed(1, cache.take(1), 3)
    assert store.data == {} and cache.get(1, b"c-1") is None


def test_discarded_partitions_are_read_from_the_store_again():
    store = CountingStore()
    cache = StateCache(store)
    cache.put(1, b"c-1", new_state("c-1", "1"))
    cache.discard({1})
    assert cache.get(1, b"c-1") is None and cache.dirty_partitions() == set()


def test_the_decoded_states_kept_per_partition_are_bounded():
    store = CountingStore()
    for i in range(10):
        store.data[(0, f"c-{i}".encode())] = new_state(f"c-{i}", "1").to_bytes()
    cache = StateCache(store, clean_per_partition=3)
    for i in range(10):
        cache.get(0, f"c-{i}".encode())
    reads = store.reads
    cache.get(0, b"c-9")  # among the last three: from memory
    cache.get(0, b"c-0")  # the oldest: dropped, read again
    assert store.reads == reads + 1
