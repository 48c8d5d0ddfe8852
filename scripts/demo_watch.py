"""Watch a running worker: what the demo prints every few seconds.

Reads the worker's /metrics and looks a few customers up (GET /customers/{id}) to show their
state changing, through the dev kit's HTTP and metrics readers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from remarket.devkit.metrics import samples
from remarket.devkit.workers import http_get

PORT = int(os.environ.get("REMARKET_WEB_PORT", "6066"))
TOKEN = os.environ.get("REMARKET_LOOKUP_TOKEN", "demo")
WATCHED = ["c-000001", "c-000002", "c-000003"]


def get(path: str) -> tuple[int, bytes]:
    return http_get(PORT, path, TOKEN, timeout=3)


def metrics() -> dict[str, float]:
    totals: dict[str, float] = {}
    for name, labels, value in samples(get("/metrics")[1].decode()):
        if name == "remarket_events_total":
            key = f"events {labels['outcome']}"
        elif name == "remarket_actions_total":
            key = f"action {labels['kind']}"
        elif name in ("remarket_dead_letters_total", "remarket_suppressions_total", "remarket_stage_transitions_total"):
            key = name.removeprefix("remarket_").removesuffix("_total").replace("_", " ")
        else:
            continue
        totals[key] = totals.get(key, 0) + value
    return totals


def describe(customer_id: str) -> str:
    status, body = get(f"/customers/{customer_id}")
    if status != 200:
        return f"{customer_id}: (no state yet)"
    state = json.loads(body)
    profile = state.get("profile") or {}
    parts = [f"{customer_id}:"]
    for field in ("stage", "tier", "email_activity", "site_activity", "orders", "repurchase_score"):
        if field in profile:
            value = profile[field]
            parts.append(f"{field}={value:.2f}" if isinstance(value, float) else f"{field}={value}")
    counts = (state.get("state") or {}).get("events_by_family") or {}
    parts.append("events " + ",".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return " ".join(parts)


def wait_ready(log: str | None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get("/readyz")[0] == 200:
            print("==> worker ready")
            return
        time.sleep(1)
    print(f"worker not ready after {timeout:.0f}s; last lines of {log}:", file=sys.stderr)
    if log and os.path.exists(log):
        print("".join(open(log, errors="replace").readlines()[-30:]), file=sys.stderr)
    sys.exit(1)


def watch(seconds: float) -> None:
    started = time.monotonic()
    while seconds <= 0 or time.monotonic() - started < seconds:
        time.sleep(5)
        m = metrics()
        elapsed = time.monotonic() - started
        summary = "  ".join(f"{k}={int(v)}" for k, v in sorted(m.items()))
        print(f"[{elapsed:5.0f}s] {summary or 'waiting for events...'}", flush=True)
        for customer_id in WATCHED:
            print(f"         {describe(customer_id)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait-ready", action="store_true")
    parser.add_argument("--log", default=None)
    parser.add_argument("--seconds", type=float, default=0)
    args = parser.parse_args()
    if args.wait_ready:
        wait_ready(args.log)
    else:
        try:
            watch(args.seconds)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
