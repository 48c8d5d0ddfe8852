"""The customer states of one commit interval, decoded, written to RocksDB only after the commit.

What Quix's PartitionTransactionCache and Kafka Streams' record cache do: a state changed by a
record stays here, decoded, until its partition commits. At the commit each changed customer is
encoded once and its changelog record produced in the partition's transaction (a customer hit
ten times in a commit interval costs one changelog record, not ten); once the transaction has
committed, the changed states and the changelog offset they reach go to RocksDB in one write
batch. So the local store never holds uncommitted data: after a SIGKILL it is still a correct
prefix of the changelog, and the restart reads only what came after it (nothing is wiped).
States read from RocksDB stay decoded in a cache bounded by a memory budget, so a hot customer is
decoded once.

The caller holds record handling off while a commit takes the changed states (shell.delivery):
what is taken is exactly what the committed records changed. Under at-least-once records are
handled again before that commit ends; a customer they change stays dirty for the next commit.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Iterator

from remarket.domain.state import CustomerState, stored_json_size
from remarket.shell.store import PartitionedStore

_ABSENT = object()
MEMORY_PER_JSON_BYTE = 7.5
"""A decoded state's memory per byte of its JSON: measured 7.1 on the benchmark's traffic and 7.4
on the simulator's with a purchase history (~14 KiB for ~1.9 KB of JSON: pydantic models, a
fields-set per record, held events). Per stored byte it would be 19-33 and move with the
compression: the JSON is what is decoded."""


class StateCache:
    def __init__(self, store: PartitionedStore, budget_mb: float = 384) -> None:
        """`budget_mb`: memory for decoded committed states, all partitions together (estimated
        from their stored size); beyond it the oldest are dropped and decoded again when next
        needed. Changed states are never dropped: they stay until their commit."""
        self.store = store
        self.budget_bytes = int(budget_mb * 2**20)
        self._dirty: dict[int, dict[bytes, CustomerState | None]] = {}  # None: erased
        self._taken: dict[int, dict[bytes, CustomerState | None]] = {}  # by the commit under way
        # state and its estimated memory, oldest first (OrderedDict: dropping the oldest of a plain
        # dict costs a scan over the slots its earlier drops left empty, ~10 us at 20,000 states)
        self._clean: dict[int, OrderedDict[bytes, tuple[CustomerState, int]]] = {}
        self.clean_bytes = 0

    def get(self, partition: int, key: bytes) -> CustomerState | None:
        dirty = self._dirty.get(partition)
        if dirty is not None and key in dirty:
            return dirty[key]
        clean = self._clean_of(partition)
        kept = clean.get(key)
        if kept is not None:
            return kept[0]
        raw = self.store.get(partition, key)
        if raw is None:
            return None
        state = CustomerState.from_bytes(raw)
        self._keep(clean, key, state, stored_json_size(raw))
        return state

    def _clean_of(self, partition: int) -> OrderedDict[bytes, tuple[CustomerState, int]]:
        clean = self._clean.get(partition)
        if clean is None:
            clean = self._clean[partition] = OrderedDict()
        return clean

    def _keep(self, clean: OrderedDict[bytes, tuple[CustomerState, int]], key: bytes, state: CustomerState,
              json_bytes: int) -> None:
        memory = int(json_bytes * MEMORY_PER_JSON_BYTE)
        clean[key] = (state, memory)
        self.clean_bytes += memory
        while self.clean_bytes > self.budget_bytes:
            # the oldest kept of this partition first, then of any other
            source = clean if clean else next((other for other in self._clean.values() if other), None)
            if source is None:
                break
            self.clean_bytes -= source.popitem(last=False)[1][1]

    def _drop(self, clean: OrderedDict[bytes, tuple[CustomerState, int]] | None, key: bytes) -> None:
        if clean is not None and (kept := clean.pop(key, None)) is not None:
            self.clean_bytes -= kept[1]

    def put(self, partition: int, key: bytes, state: CustomerState | None) -> None:
        self._dirty.setdefault(partition, {})[key] = state
        self._drop(self._clean.get(partition), key)

    def uncommitted(self) -> Iterator[tuple[bytes, CustomerState | None]]:
        """Every changed customer not yet committed (None: erased)."""
        for dirty in self._dirty.values():
            yield from dirty.items()

    def dirty_partitions(self) -> set[int]:
        return {p for p, dirty in self._dirty.items() if dirty}

    def take_states(self, partition: int) -> list[tuple[bytes, CustomerState | None]]:
        """The partition's changed customers, for its changelog (`encoded`); they stay readable
        here until `committed` (or `discard`) says what became of them. A state is never changed
        once here (the core changes a working copy), so it may be encoded while records are handled."""
        dirty = self._dirty.get(partition) or {}
        self._taken[partition] = dict(dirty)
        return list(dirty.items())

    def committed(self, partition: int, records: list[tuple[bytes, bytes | None]], changelog_offset: int | None) -> None:
        """The transaction holding `records` committed: write them, and the offset, to the store.
        A customer changed again since the take stays dirty (its newer state is not committed)."""
        taken = self._taken.pop(partition, {})
        dirty = self._dirty.get(partition, {})
        done = {}
        for key, state in taken.items():
            if dirty.get(key, _ABSENT) is state:
                done[key] = dirty.pop(key)
        if not dirty:
            self._dirty.pop(partition, None)
        if changelog_offset is not None:
            self.store.write(partition, records, changelog_offset)
        else:
            for key, value in records:
                self.store.put(partition, key, value)
        clean = self._clean_of(partition)
        stored = dict(records)
        for key, state in done.items():
            if state is not None:
                self._drop(clean, key)
                self._keep(clean, key, state, stored_json_size(stored.get(key) or b"{}"))

    def discard(self, partitions: Iterable[int]) -> None:
        """Partitions that moved away or whose transaction aborted: forget all we held of them."""
        for partition in partitions:
            self._dirty.pop(partition, None)
            self._taken.pop(partition, None)
            for _, memory in self._clean.pop(partition, {}).values():
                self.clean_bytes -= memory


def encoded(states: Iterable[tuple[bytes, CustomerState | None]]) -> list[tuple[bytes, bytes | None]]:
    """Changelog records: each state's bytes (None: erased, a tombstone)."""
    return [(key, state.to_bytes() if state is not None else None) for key, state in states]
