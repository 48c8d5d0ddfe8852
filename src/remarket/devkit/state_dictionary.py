"""How the zstd dictionary that stored customer states are compressed with was made.

A state's JSON is 1-3 KB, too little for zstd to learn its repeats from the state alone: the field
names, event types and context that every state shares. A dictionary trained on many states holds
them, so each state compresses against it: on the benchmark's traffic ~45 % fewer stored bytes and
~45 % less time to compress than without (docs/benchmarks.md).

The dictionary is part of the stored format (format byte 2 in remarket.domain.state): every state
written with it, in RocksDB and in the changelog, needs exactly these bytes to load. It is made
once and never changed; a better one gets a new file and a new format byte, and the old one stays.
tests/unit/domain/test_state_format.py pins its digest.

    python -m remarket.devkit.state_dictionary --out src/remarket/data/state-dictionary-1.zstd
    python -m remarket.devkit.state_dictionary --measure   # format 1 against 2 on other traffic
"""
from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import zstandard

DICTIONARY_BYTES = 16_384
TRAINING_SEED = 2026  # not the benchmark's traffic (seed 11): the dictionary is measured on data it did not see


def training_states(customers: int = 6_000, events: int = 60_000, seed: int = TRAINING_SEED,
                    history_days: int = 180) -> list[bytes]:
    """State JSON documents as the worker stores them: simulated storefront traffic (a history of
    paid orders, then live visits, carts, orders and email events) through the real pipeline,
    sampled at several points so states with events held, open orders and waiting messages appear."""
    from remarket.catalog import load_catalog
    from remarket.devkit.simulate import TrafficModel
    from remarket.domain.policy import Policy
    from remarket.shell.pipeline import UNCHANGED, Pipeline, SourceRecord, owner_partition

    catalog = load_catalog()
    pipeline = Pipeline(catalog, Policy())
    topics = {role: catalog[role].name for role in ("visits", "orders", "carts", "email", "consent")}
    model = TrafficModel(customers=customers, seed=seed, malformed_share=0.0, history_days=history_days)
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    traffic = list(model.history(now - timedelta(milliseconds=events)))
    step = 0
    while len(traffic) < len(model.personas) + events:
        traffic += model.live(now - timedelta(milliseconds=events - step))
        step += 1
    states: dict[bytes, object] = {}
    samples: list[bytes] = []
    for offset, event in enumerate(traffic):
        partition = owner_partition(event.key, catalog.partitions) if event.key else 0  # else rerouted, not handled
        record = SourceRecord(topic=topics[event.role], partition=partition, offset=offset, key=event.key,
                              value=event.value)
        handled = pipeline.handle(record, states.get(event.key), now)
        if handled.new_state is None:
            states.pop(event.key, None)
        elif handled.new_state is not UNCHANGED:
            states[event.key] = handled.new_state
        if offset % 10_000 == 5_000:
            samples += [state.to_json() for state in list(states.values())[:500]]
    samples += [state.to_json() for state in states.values()]
    random.Random(seed).shuffle(samples)
    return samples


def train(samples: list[bytes], size: int = DICTIONARY_BYTES) -> bytes:
    return zstandard.train_dictionary(size, samples, threads=1).as_bytes()


def measure(samples: list[bytes]) -> None:
    """Stored size and time per state, format 1 (zstd alone) against format 2 (the dictionary)."""
    from remarket.domain.state import CustomerState

    states = [CustomerState.model_validate_json(sample) for sample in samples]
    plain = zstandard.ZstdCompressor(level=1)
    sides = {"format 1": lambda state: b"\x01" + plain.compress(state.to_json()),
             "format 2": lambda state: state.to_bytes()}
    for name, encode in sides.items():
        stored = [encode(state) for state in states]
        sizes = sorted(map(len, stored))
        best_encode = min(_per_call(encode, states) for _ in range(5))
        best_decode = min(_per_call(CustomerState.from_bytes, stored) for _ in range(5))
        print(f"{name}: mean {statistics.mean(sizes):,.0f} B, p95 {sizes[int(0.95 * len(sizes))]:,} B, "
              f"encode {best_encode:.1f} µs, decode {best_decode:.1f} µs ({len(states):,} states)")


def _per_call(function, items: list) -> float:
    started = time.perf_counter()
    for item in items:
        function(item)
    return (time.perf_counter() - started) / len(items) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the dictionary trained on the training traffic here")
    parser.add_argument("--measure", action="store_true",
                        help="compare formats 1 and 2 on the benchmark's traffic (seed 11, not trained on)")
    args = parser.parse_args()
    if args.out:
        samples = training_states()
        args.out.write_bytes(train(samples))
        print(f"{args.out}: {args.out.stat().st_size:,} bytes from {len(samples):,} states")
    if args.measure:
        measure(training_states(customers=10_000, events=100_000, seed=11, history_days=0))
    if not (args.out or args.measure):
        parser.error("give --out, --measure or both")


if __name__ == "__main__":
    main()
