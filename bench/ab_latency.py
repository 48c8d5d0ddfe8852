"""A/B of worker settings on the latency harness of bench/run.py: the sides alternate, one run each
per round, and each run prints one JSON line with the latency, the worker's CPU and the broker's.

    python bench/ab_latency.py --bootstrap HOST:PORT --rate 569 --rounds 3 \\
        --setting at_least_once:0.1 --setting exactly_once:0.05 \\
        off REMARKET_FETCH_SESSIONS=false  on REMARKET_FETCH_SESSIONS=true

A side is a name followed by the REMARKET_* settings and/or `@REV` (the worker of that revision,
as in bench/ab_throughput.py) that make it. The median p99 per side and setting is printed last.
The broker's CPU is read from
/proc for the local broker's java process (deploy/kafka/local_broker.py), over the whole run.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run  # noqa: E402  (bench/run.py: measure_latency, WorkerRun)
from ab_throughput import parse_sides, revisions_checked_out  # noqa: E402
from remarket.devkit.workers import process_cpu_seconds  # noqa: E402


def broker_cpu_reader():
    pids = subprocess.run(["pgrep", "-f", "kafka.Kafka"], capture_output=True, text=True).stdout.split()
    if not pids:
        return lambda: float("nan")
    return lambda: process_cpu_seconds(pids[0])


def add_harness_arguments(parser: argparse.ArgumentParser, rounds: int) -> None:
    """Where and how hard bench/run.py's latency harness runs (also bench/latency_floor.py)."""
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--client", choices=run.LATENCY_CLIENTS, default=run.LATENCY_CLIENTS[0],
                        help="the harness's load generator and reader")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_harness_arguments(parser, rounds=3)
    parser.add_argument("--setting", action="append", required=True, help="GUARANTEE:COMMIT_SECONDS")
    parser.add_argument("sides", nargs="+")
    args = parser.parse_args()
    sides = parse_sides(args.sides)
    broker_cpu = broker_cpu_reader()
    current: dict[str, str] = {}
    worker_run = run.WorkerRun
    run.WorkerRun = lambda *a, **env: worker_run(*a, **{**env, **current})
    p99s: dict[tuple[str, str], list[float]] = {}
    with revisions_checked_out(sides, Path(tempfile.mkdtemp(prefix="ab-latency-revs-"))):
        for _ in range(args.rounds):
            for setting in args.setting:
                guarantee, commit = setting.split(":")
                for name, env, rev in sides:
                    current.clear()
                    current.update(env)
                    workdir = Path(tempfile.mkdtemp(prefix="ab-latency-"))
                    cpu, started = broker_cpu(), time.time()
                    result = asyncio.run(run.measure_latency(args.bootstrap, workdir, args.rate, args.seconds,
                                                             guarantee, float(commit), args.client))
                    result.update(side=name, rev=rev, settings={k: v for k, v in env.items() if k != "PYTHONPATH"},
                                  broker_cores=(broker_cpu() - cpu) / (time.time() - started))
                    p99s.setdefault((setting, name), []).append(result["p99_ms"])
                    print(json.dumps(result), flush=True)
    for (setting, name), values in p99s.items():
        print(f"{setting} {name}: p99 median {statistics.median(values):,.0f} ms "
              f"(runs {', '.join(format(v, ',.0f') for v in values)})", flush=True)


if __name__ == "__main__":
    main()
