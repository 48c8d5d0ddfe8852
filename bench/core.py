"""The core, in-process: events/s of `Pipeline.handle`, and of the due work that partition ticks do.

    PYTHONPATH=src .venv/bin/python bench/core.py                       # 40,000 events, 4,000 customers
    PYTHONPATH=src .venv/bin/python bench/core.py --events 200000 --customers 20000
    PYTHONPATH=src .venv/bin/python bench/core.py --digest              # also: hash of every output
    PYTHONPATH=src .venv/bin/python bench/core.py --workload latency    # the action path, 10,000 events
    PYTHONPATH=src .venv/bin/python bench/core.py --gc worker           # the collector as the worker runs it

No broker, no Faust: the traffic of bench/run.py (`generate_events`, same seed) is folded through
the exact `Pipeline` the worker runs, states kept decoded between records as the worker's write
cache does (shell/state_cache.py). Then every customer is advanced to a few later moments
(`Pipeline.handle_due`, what a partition tick does for each due customer). Each pass starts from
no state; the median of `--repeat` passes is printed. Times are the process's CPU time
(`time.process_time`): on a shared machine a neighbour's load moves wall time far more.

`--digest` fixes the clock (the traffic's time and `received_at`) so that two commits can be
compared: the SHA-256 of every record `handle` returns (role, key, value, headers but the
dead-letter's wall-clock time), of what else the shell reads from `Handled`, and of every final
state's content (its JSON with sorted keys, not its stored bytes). Same digest, same behaviour on
this traffic.

`--workload latency` is the traffic of bench/run.py's `measure_latency` instead: each event is a
fresh customer's first paid order (`lat-<i>`, order.paid, total 20.0), folded under
bench/policy.latency.toml, so each one makes the customer "new" and decides the new-customer
campaign action at once (the event-to-action path). No due work is advanced after it.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/run.py, imported as a module

import orjson  # noqa: E402
import run  # noqa: E402  (bench/run.py)

from remarket.catalog import load_catalog  # noqa: E402
from remarket.domain.policy import Policy, load_policy  # noqa: E402
from remarket.domain.state import CustomerState  # noqa: E402
from remarket.shell.pipeline import UNCHANGED, Handled, Pipeline, SourceRecord, owner_partition  # noqa: E402

FIXED_NOW = datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)
LATER = (timedelta(hours=1), timedelta(days=2), timedelta(days=40), timedelta(days=200))
"""Where the due work is measured: past the reminders, the coupons, a campaign, churn."""
WALL_CLOCK_HEADERS = {"remarket-dlq-failed-at"}
LATENCY_POLICY = Path(__file__).resolve().parent / "policy.latency.toml"


class _FrozenClock(datetime):
    @classmethod
    def now(cls, tz=None):  # noqa: ANN001, ANN206
        return FIXED_NOW if tz is None else FIXED_NOW.astimezone(tz)


def traffic(events: int, customers: int, fixed_clock: bool) -> list[tuple[bytes, bytes]]:
    """bench/run.py's traffic; with `fixed_clock`, as if generated at FIXED_NOW."""
    if not fixed_clock:
        return run.generate_events(events, customers)
    real = run.datetime
    run.datetime = _FrozenClock
    try:
        return run.generate_events(events, customers)
    finally:
        run.datetime = real


def latency_traffic(events: int, fixed_clock: bool) -> list[tuple[bytes, bytes]]:
    """bench/run.py's `measure_latency` events: one first paid order per fresh customer."""
    traffic = []
    for i in range(events):
        customer = f"lat-{i}"
        occurred_at = FIXED_NOW if fixed_clock else datetime.now(timezone.utc)
        doc = {"event_id": f"{customer}-paid", "event_type": "order.paid", "customer_id": customer,
               "occurred_at": occurred_at.isoformat(), "schema_version": 1, "order_id": f"o-{i}", "total": 20.0}
        traffic.append((customer.encode(), orjson.dumps(doc)))
    return traffic


def _canonical(state: CustomerState) -> bytes:
    return orjson.dumps(orjson.loads(state.to_json()), option=orjson.OPT_SORT_KEYS)


def _digest_handled(digest, handled: Handled) -> None:
    for record in handled.records:
        headers = [(k, v) for k, v in record.headers if k not in WALL_CLOCK_HEADERS]
        digest.update(repr((record.role, record.key, record.value, headers, record.partition)).encode())
    core = handled.core
    digest.update(repr((handled.outcome, handled.customer_id, handled.due_at, handled.dead_letter_reason,
                        handled.event_type, handled.segment_change,
                        [a.model_dump_json() for a in handled.expired],
                        None if core is None else (core.duplicate, core.transitions, core.suppressions,
                                                   core.deferred, core.expired))).encode())


def one_pass(records: list[SourceRecord], received_at: datetime, digest=None, policy: Policy | None = None,
             later: tuple[timedelta, ...] = LATER) -> dict:
    """Fold every record, then advance every customer at each `later` moment; seconds spent in each."""
    pipeline = Pipeline(load_catalog(run.CATALOG), policy if policy is not None else Policy())
    states: dict[bytes, CustomerState] = {}
    started = time.process_time()
    for record in records:
        handled = pipeline.handle(record, states.get(record.key), received_at)
        if digest is not None:
            _digest_handled(digest, handled)
        new = handled.new_state
        if new is None:
            states.pop(record.key, None)
        elif new is not UNCHANGED:
            states[record.key] = new
    events_s = time.process_time() - started
    advanced = 0
    started = time.process_time()
    for delta in later:
        moment = received_at + delta
        for key in list(states):
            handled = pipeline.handle_due(key.decode(), states[key], moment, moment)
            advanced += 1
            if digest is not None:
                _digest_handled(digest, handled)
            if handled.new_state is None:
                del states[key]
            elif handled.new_state is not UNCHANGED:
                states[key] = handled.new_state
    advance_s = time.process_time() - started
    if digest is not None:
        for key in sorted(states):  # the state's content, not its stored bytes (key order, compression)
            digest.update(key + b"=" + _canonical(states[key]))
    return {"events_s": events_s, "advance_s": advance_s, "advanced": advanced, "customers": len(states)}


def _timed_collections(mode: str) -> dict:
    """Set the collector up as `mode` says and time each collection from here on (wall clock)."""
    if mode == "off":
        gc.disable()
    elif mode == "worker":
        from remarket.settings import Settings
        from remarket.shell.heap import LongLivedHeap
        LongLivedHeap().start(Settings.model_fields["gc_thresholds"].default)
    timed = {"n": 0, "ms": 0.0, "longest": 0.0, "started": 0.0}

    def timer(phase: str, info: dict) -> None:
        if phase == "start":
            timed["started"] = time.perf_counter()
        else:
            ms = (time.perf_counter() - timed["started"]) * 1000
            timed["n"] += 1
            timed["ms"] += ms
            timed["longest"] = max(timed["longest"], ms)
    gc.callbacks.append(timer)
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=("default", "latency"), default="default",
                        help="default: bench/run.py's traffic; latency: its measure_latency events")
    parser.add_argument("--events", type=int, default=None, help="default 40,000 (latency: 10,000)")
    parser.add_argument("--customers", type=int, default=4_000, help="default workload only")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--digest", action="store_true", help="fixed clock; print the hash of every output")
    parser.add_argument("--gc", choices=("python", "worker", "off"), default="python",
                        help="python: Python's collector as it comes (the default, as before); worker: as "
                             "the worker runs it (shell.heap.LongLivedHeap with settings.gc_thresholds, "
                             "started after the traffic is made); off: no collections. The time the "
                             "collections took is printed")
    args = parser.parse_args()
    latency = args.workload == "latency"
    if latency:
        args.events = 10_000 if args.events is None else args.events
        args.customers = args.events
        events = latency_traffic(args.events, fixed_clock=args.digest)
        policy, later = load_policy(LATENCY_POLICY), ()
    else:
        args.events = 40_000 if args.events is None else args.events
        events = traffic(args.events, args.customers, fixed_clock=args.digest)
        policy, later = Policy(), LATER
    catalog = load_catalog(run.CATALOG)
    records = [SourceRecord(run.EVENTS_TOPIC, owner_partition(key, catalog.partitions) if key else 0, offset,
                            key or None, value) for offset, (key, value) in enumerate(events)]
    received_at = (FIXED_NOW if args.digest else datetime.now(timezone.utc)) + timedelta(minutes=1)
    collections = _timed_collections(args.gc)
    passes = []
    for _ in range(args.repeat):
        digest = hashlib.sha256() if args.digest else None
        passes.append(one_pass(records, received_at, digest, policy, later))
        if digest is not None:
            passes[-1]["digest"] = digest.hexdigest()
    n = len(records)
    for i, p in enumerate(passes, 1):
        print(f"pass {i}: {1e6 * p['events_s'] / n:6.1f} µs/event"
              + (f", {1e6 * p['advance_s'] / p['advanced']:6.1f} µs/advance ({p['advanced']:,} advances)"
                 if p["advanced"] else "")
              + (f", digest {p['digest'][:16]}" if "digest" in p else ""))
    per_event = statistics.median(1e6 * p["events_s"] / n for p in passes)
    summary = ("latency workload: " if latency else "") + (
        f"{n:,} events, {args.customers:,} customers, median of {len(passes)}: "
        f"{per_event:.1f} µs/event ({1e6 / per_event:,.0f} events/s)")
    if not latency:
        per_advance = statistics.median(1e6 * p["advance_s"] / p["advanced"] for p in passes)
        summary += f", {per_advance:.1f} µs/advance ({1e6 / per_advance:,.0f} advances/s)"
    print(summary)
    print(f"garbage collection ({args.gc}): {collections['n']} collections, {collections['ms']:,.0f} ms in all "
          f"({1000 * collections['ms'] / (n * len(passes)):.1f} µs per event of the traffic, due work included), longest {collections['longest']:.1f} ms")
    if args.digest:
        digests = {p["digest"] for p in passes}
        assert len(digests) == 1, f"passes differ: {digests}"
        print(f"digest {digests.pop()}")


if __name__ == "__main__":
    main()
