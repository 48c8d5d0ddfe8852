"""The table's local store read directly: the due-work index rebuild scans it after every
assignment change (shell/store.py)."""
from __future__ import annotations

from types import SimpleNamespace

from rocksdict import Options, Rdict

from remarket.shell.store import FaustMemoryStore, FaustRocksDBStore

OFFSET_KEY = b"__faust\x00offset__"


def test_the_scan_yields_every_state_of_the_active_partitions_with_its_partition_and_not_the_offset_key(tmp_path):
    dbs = {p: Rdict(str(tmp_path / f"p{p}"), Options(raw_mode=True)) for p in range(3)}
    for p, db in dbs.items():
        db[f"c-{p}".encode()] = f"state {p}".encode()
        db[OFFSET_KEY] = b"41"
    actives = [0, 2]  # partition 1 is held as a standby (or was revoked): not this worker's
    faust_store = SimpleNamespace(offset_key=OFFSET_KEY, _key_index={}, _dbs=dbs,
                                  _dbs_for_actives=lambda: (dbs[p] for p in actives),
                                  _db_for_partition=dbs.__getitem__)
    store = FaustRocksDBStore(faust_store)
    assert sorted(store.scan()) == [(0, b"c-0", b"state 0"), (2, b"c-2", b"state 2")]
    store.write(2, [(b"c-3", b"state 3"), (b"c-2", None)], upto=44)
    assert sorted(store.scan()) == [(0, b"c-0", b"state 0"), (2, b"c-3", b"state 3")]
    for db in dbs.values():
        db.close()


def test_a_memory_store_scan_is_not_broken_by_a_commit_that_writes_meanwhile():
    store = FaustMemoryStore(SimpleNamespace(data={b"c-1": b"one", b"c-2": b"two"}))
    scanned = []
    for _, key, value in store.scan():
        store.write(0, [(b"c-9", b"new")], upto=1)  # a commit ending during a turn of the scan
        scanned.append(key)
    assert scanned == [b"c-1", b"c-2"]
