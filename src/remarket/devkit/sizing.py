"""Measure the serialized state size of realistic simulated customers, and their RocksDB footprint.

    .venv/bin/python -m remarket.devkit.sizing [--customers 5000] [--days 90]

The simulator's personas (repeat and one-time buyers, browsers) get a year of back-dated orders,
then `--days` of live activity (the simulator's event mix at `--rate-per-customer-day`), folded
through the same core the worker runs (`remarket.domain.process.apply`). The states are written
to a rocksdict (RocksDB) store, as the worker does, to measure the bytes on disk. Figures feed the
sizing table in docs/deployment.md; tests/ops/test_sizing.py runs a small version.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path


from remarket.domain.events import parse_event
from remarket.domain.policy import Policy
from remarket.domain.process import apply
from remarket.devkit.simulate import TrafficModel


def simulated_states(customers: int, days: int, events_per_customer_day: float, seed: int = 11) -> dict:
    model = TrafficModel(customers=customers, seed=seed, malformed_share=0.0, history_days=365)
    policy = Policy()
    start = datetime.now(timezone.utc) - timedelta(days=days)
    events = [ev for ev in model.history(start)]
    live_steps = int(customers * days * events_per_customer_day)
    step = timedelta(days=days) / max(1, live_steps)
    for i in range(live_steps):
        events += model.live(start + i * step)
    states: dict[bytes, object] = {}
    applied = 0
    for ev in events:
        event = parse_event(ev.value)  # malformed share is 0: every simulated event is valid
        outcome = apply(states.get(ev.key), event, policy)
        applied += 1
        if outcome.state is None:
            states.pop(ev.key, None)
        else:
            states[ev.key] = outcome.state
    return {"states": states, "events": applied}


def rocksdb_bytes(entries: dict[bytes, bytes]) -> int:
    from rocksdict import Rdict

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table"
        db = Rdict(str(path))
        for key, value in entries.items():
            db[key] = value
        db.flush()
        db.compact_range(None, None)
        db.close()
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.suffix == ".sst")


def measure(customers: int, days: int, events_per_customer_day: float) -> dict:
    result = simulated_states(customers, days, events_per_customer_day)
    entries = {key: state.to_bytes() for key, state in result["states"].items()}
    sizes = sorted(len(k) + len(v) for k, v in entries.items())
    on_disk = rocksdb_bytes(entries)
    n = len(sizes)
    return {
        "customers_with_state": n,
        "events_applied": result["events"],
        "days_of_live_traffic": days,
        "state_bytes_mean": round(statistics.fmean(sizes)),
        "state_bytes_p50": sizes[n // 2],
        "state_bytes_p99": sizes[min(n - 1, int(n * 0.99))],
        "state_bytes_max": sizes[-1],
        "rocksdb_sst_bytes": on_disk,
        "rocksdb_bytes_per_customer": round(on_disk / n),
        "raw_gib_per_million_customers": round(statistics.fmean(sizes) * 1e6 / 2**30, 2),
        "rocksdb_gib_per_million_customers": round(on_disk / n * 1e6 / 2**30, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--rate-per-customer-day", type=float, default=0.5)
    args = parser.parse_args()
    print(json.dumps(measure(args.customers, args.days, args.rate_per_customer_day), indent=2))


if __name__ == "__main__":
    main()
