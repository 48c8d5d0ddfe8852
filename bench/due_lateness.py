"""How late due work runs: a worker of each revision in turn on one private broker, 300 orders
placed and never paid (20 a second), each due for a payment reminder 2 s later (the crash tests'
policy), ticks every 0.5 s; the worker's own `remarket_due_work_lateness_seconds` (handled time
minus due time) when all 300 are handled: mean, and the buckets holding p50 and p99.

    .venv/bin/python bench/due_lateness.py --before c192d2d --rounds 3

`--before REV` runs from a git worktree of REV; the other side is this checkout.
"""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

import run  # bench/run.py
from ab_throughput import revisions_checked_out  # bench/ab_throughput.py

from remarket.devkit.broker import LocalBroker
from remarket.devkit.metrics import metric_sum, samples

POLICY = str(run.ROOT / "tests" / "integration" / "policies" / "crash.toml")
ORDERS = 300
LATENESS = "remarket_due_work_lateness_seconds"


def lateness(worker) -> tuple[float, float, list[tuple[float, float]]]:
    """(count, sum, cumulative buckets (upper bound, count)) of the worker's lateness histogram."""
    exposition = worker.metrics()
    buckets = sorted((float(labels["le"]), value) for name, labels, value in samples(exposition)
                     if name == f"{LATENESS}_bucket")
    return metric_sum(exposition, f"{LATENESS}_count"), metric_sum(exposition, f"{LATENESS}_sum"), buckets


def bucket_of(buckets: list[tuple[float, float]], q: float) -> float:
    """The upper bound of the bucket holding the q-quantile."""
    return next(le for le, count in buckets if count >= q * buckets[-1][1])


def one(bootstrap: str, workdir: Path, env: dict[str, str]) -> dict:
    """One worker, one feed of ORDERS unpaid orders: its lateness figures once all are handled."""
    tag = uuid.uuid4().hex[:6]
    topics = run.latency_topics(tag)
    tenv = {f"REMARKET_TOPIC_{r.upper()}": n for r, n in topics.items()}
    app_id = f"late-{tag}"
    run.apply_topics(bootstrap, app_id, **tenv)
    worker = run.WorkerRun(bootstrap, app_id, workdir, REMARKET_POLICY_FILE=POLICY, REMARKET_TICK_INTERVAL_SECONDS="0.5",
                           **tenv, **env)
    try:
        worker.wait_ready()
        time.sleep(3)

        async def feed() -> None:
            p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
            await p.start()
            try:
                for i in range(ORDERS):
                    c = f"late-{tag}-{i}"
                    doc = {"event_id": f"{c}-placed", "event_type": "order.placed", "customer_id": c, "order_id": f"o-{c}",
                           "total": 20.0, "occurred_at": datetime.now(timezone.utc).isoformat(), "schema_version": 1}
                    await p.send(topics["visits"], orjson.dumps(doc), key=c.encode())
                    await asyncio.sleep(0.05)
                await p.flush()
            finally:
                await p.stop()
        asyncio.run(feed())
        deadline = time.time() + 60
        while time.time() < deadline and lateness(worker)[0] < ORDERS:
            time.sleep(1)
        count, total, buckets = lateness(worker)
        return {"count": count, "mean_s": total / max(1, count), "p50_le": bucket_of(buckets, 0.5),
                "p99_le": bucket_of(buckets, 0.99)}
    finally:
        worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the revision to compare this checkout with")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=run.ROOT, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="due-late-") as tmp:
        workdir = Path(tmp)
        broker = LocalBroker(workdir / "kafka")
        broker.start()
        sides = [(f"before@{args.before}", {}, args.before), (f"after@{head}", {}, None)]
        try:
            with revisions_checked_out(sides, workdir):
                for round_ in range(args.rounds):
                    for name, env, _ in sides:
                        print(name, round_ + 1, one(broker.bootstrap, workdir, env), flush=True)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
