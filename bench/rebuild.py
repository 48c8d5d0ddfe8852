"""The due-work index rebuild's scan, per state held: what a worker does for every customer it
holds after each assignment change, with records waiting (shell.due_work.DueWork.rebuild).

    .venv/bin/python bench/rebuild.py --states 200000 --repeat 3

The bench traffic's real states (bench/run.py's `sample_states`), stored under `--states` keys in
one RocksDB database per key order (rocksdict, as faust's store), then scanned in turn by each
contender, in one run: decode the whole state (as before 2026-12-07) or only its StateFacts, from
states written with "pv" second (before 2026-12-07) or with the facts first (since), then the due
index entry, the store-wide contribution and the segment, as the rebuild does. Prints µs per
state per run and the median of each.
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from rocksdict import Options, Rdict, WriteBatch

from run import CATALOG, generate_events, sample_states  # bench/run.py

from remarket.catalog import load_catalog
from remarket.domain.policy import Policy
from remarket.domain.state import CustomerState, StateFacts, _zstd
from remarket.domain.store import StoreTrends
from remarket.shell.pipeline import Pipeline


def pv_second(state: CustomerState) -> bytes:
    """Format 2 as written from 2026-12-03 to 12-07: "pv" the second key, the facts further on."""
    document = orjson.loads(state.to_json())
    ordered = {"customer_id": document.pop("customer_id"), "pv": document.pop("pv"), **document}
    return b"\x02" + _zstd.compressor.compress(orjson.dumps(ordered))


ORDERS = {"pv second": pv_second, "facts first": CustomerState.to_bytes}
CONTENDERS = {  # name: (key order stored, decode)
    "whole state (facts first)": ("facts first", CustomerState.from_bytes),
    "state facts, pv second": ("pv second", StateFacts.from_bytes),
    "state facts, facts first": ("facts first", StateFacts.from_bytes),
}


def fill(path: Path, states: list[CustomerState], count: int, encode) -> None:
    raws = [encode(state) for state in states]
    db = Rdict(str(path), Options(raw_mode=True))
    batch = WriteBatch(raw_mode=True)
    for i in range(count):
        batch.put(f"customer-{i:08d}".encode(), raws[i % len(raws)])
        if len(batch) >= 10_000:
            db.write(batch)
            batch = WriteBatch(raw_mode=True)
    db.write(batch)
    db.close()


def scan(path: Path, decode, pipeline: Pipeline) -> tuple[float, int]:
    """Seconds per state for the rebuild's work on every stored state."""
    db = Rdict(str(path), Options(raw_mode=True))
    store, entries, segments = StoreTrends(pipeline.policy), [], {}
    started = time.perf_counter()
    for key, raw in db.items():
        state = decode(raw)
        entries.append((key.decode(), state.due_at))
        store.add(state)
        if (segment := pipeline.segment(state)) is not None:
            segments[segment] = segments.get(segment, 0) + 1
    took = time.perf_counter() - started
    db.close()
    return took / len(entries), len(entries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--states", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    states = sample_states(generate_events(40_000, 4_000))
    pipeline = Pipeline(load_catalog(CATALOG), Policy())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-") as tmp:
        paths = {name: Path(tmp) / name.replace(" ", "-") for name in ORDERS}
        for name, encode in ORDERS.items():
            fill(paths[name], states, args.states, encode)
        gc.freeze()  # the worker's heap is frozen at start: the scan's garbage is what is collected
        runs: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        for _ in range(args.repeat):
            for name, (stored, decode) in CONTENDERS.items():
                per_state, count = scan(paths[stored], decode, pipeline)
                runs[name].append(per_state * 1e6)
                print(json.dumps({"contender": name, "states": count, "us_per_state": round(per_state * 1e6, 2)}),
                      flush=True)
    print(f"commit {commit}: {args.states:,} states ({len(states):,} distinct), command: python bench/rebuild.py "
          + " ".join(sys.argv[1:]))
    for name, values in runs.items():
        median = statistics.median(values)
        print(f"{name}: median {median:.1f} µs per state ({', '.join(f'{v:.1f}' for v in values)}); "
              f"1,000,000 states: {median:.0f} s")


if __name__ == "__main__":
    main()
