"""The customer table's local store, addressed by partition.

faust's stores find a key's partition from the event being processed (a context variable its
stream sets) or, outside a stream, by asking every partition's database. The worker always
knows the partition (its record's), so it reads and writes that partition's database directly;
restore writes whole batches with the changelog offset they reach; the due-work index rebuild
scans the active partitions' databases. Private API of faust 0.15's stores (`_db_for_partition`,
`_dbs`, `_dbs_for_actives`, `_key_index`, `offset_key`, memory `data`).
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Protocol

from faust.stores.rocksdb import Store as RocksDBStore


class PartitionedStore(Protocol):
    def get(self, partition: int, key: bytes) -> bytes | None: ...

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Write `value`, or delete the key when it is None (erasure)."""

    def persisted_offset(self, partition: int) -> int | None: ...

    def write(self, partition: int, records: list[tuple[bytes, bytes | None]], upto: int) -> None:
        """Write `records` and the changelog offset they reach, atomically where the store can."""

    def scan(self) -> Iterable[tuple[int | None, bytes, bytes]]:
        """(partition, key, stored value) of every key of the partitions this worker holds as
        active; partition None where the store does not keep partitions apart."""


def partitioned(store: Any) -> PartitionedStore:
    return FaustRocksDBStore(store) if isinstance(store, RocksDBStore) else FaustMemoryStore(store)


class FaustRocksDBStore:
    """faust's RocksDB (rocksdict) store: one database per partition, each with its offset key."""

    def __init__(self, store: Any) -> None:
        from rocksdict import WriteBatch

        self._store = store
        self._write_batch = WriteBatch
        self._key_index = store._key_index  # faust's key -> partition cache for lookups outside a stream

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self._store._db_for_partition(partition).get(key)

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        db = self._store._db_for_partition(partition)
        if value is None:
            db.delete(key)
            self._key_index.pop(key, None)
        else:
            db.put(key, value)
            self._key_index[key] = partition

    def persisted_offset(self, partition: int) -> int | None:
        raw = self._store._db_for_partition(partition).get(self._store.offset_key)
        return int(raw) if raw is not None else None

    def write(self, partition: int, records: list[tuple[bytes, bytes | None]], upto: int) -> None:
        batch = self._write_batch(raw_mode=True)
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(self._store.offset_key, str(upto).encode())  # atomic with the records it covers
        self._store._db_for_partition(partition).write(batch)
        for key, _ in records:
            self._key_index.pop(key, None)

    def scan(self) -> Iterator[tuple[int, bytes, bytes]]:
        # faust's table.items() is the same scan with a serializer call per key and per value and
        # two more generator layers (~5 us per state, 1,000,000 of them after every restart), and
        # without the partition, which the due-work index wants (hashing each key again: ~3 us)
        actives = {id(db) for db in self._store._dbs_for_actives()}
        offset_key = self._store.offset_key
        for partition, db in list(self._store._dbs.items()):
            if id(db) in actives:
                for key, value in db.items():
                    if key != offset_key:
                        yield partition, key, value


class FaustMemoryStore:
    """faust's memory store (development and tests): one dict for all partitions, no offsets."""

    def __init__(self, store: Any) -> None:
        self._data = store.data

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self._data.get(key)

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        if value is None:
            self._data.pop(key, None)
        else:
            self._data[key] = value

    def persisted_offset(self, partition: int) -> int | None:
        return None

    def write(self, partition: int, records: list[tuple[bytes, bytes | None]], upto: int) -> None:
        for key, value in records:
            self.put(partition, key, value)

    def scan(self) -> list[tuple[None, bytes, bytes]]:
        # a copy: a commit may write while a scan of it waits its turn
        return [(None, key, value) for key, value in self._data.items()]
