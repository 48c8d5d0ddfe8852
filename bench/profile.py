"""Where the worker's CPU goes: py-spy over a worker draining pre-produced bench traffic.

    .venv/bin/python bench/profile.py --events 40000 --seconds 30 --out /tmp/profile-eos
    .venv/bin/python bench/profile.py --guarantee at_least_once ...
    .venv/bin/python bench/profile.py --workload latency ...   # each event a new customer's first paid order
    .venv/bin/python bench/profile.py --live 1600 ...          # the events arrive at 1,600/s while sampled

By default the events are produced before the worker starts, so it drains a backlog (large
fetches and batches). `--live RATE` produces them at RATE events/s once the worker is ready, as
the latency runs and the soak do: the live regime, where each fetch brings a few records.

Writes `<out>.txt` (py-spy raw: one folded stack per line, with its sample count) and prints
the top functions by own and by total samples, so two commits can be compared (A/B figures
in docs/benchmarks.md). py-spy starts the worker itself (attaching to a running process is not
permitted on these machines).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaProducer
from run import CATALOG, EVENTS_TOPIC, PY, ROOT, generate_events, latency_event, log, produce_all  # bench/run.py

from remarket.devkit.broker import LocalBroker, free_port
from remarket.devkit.metrics import metric_sum
from remarket.devkit.workers import http_get, process_cpu_seconds

LINE = re.compile(r":\d+\)$")
SPY = str(Path(sys.executable).with_name("py-spy"))


def summarise(raw: Path, top: int) -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = [LINE.sub(")", frame) for frame in stack.split(";")]  # by function, not by line
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{samples} samples"]
    for title, counter in (("own", own), ("total", total)):
        lines.append(f"-- top {top} by {title} samples")
        lines += [f"{100 * n / samples:5.1f} %  {frame}" for frame, n in counter.most_common(top)]
    return "\n".join(lines)


async def produce_paced(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]], rate: float,
                        until: float) -> int:
    """Send the events at `rate` per second (each on time, in groups every 5 ms) until they run out
    or the monotonic clock reaches `until`; how many were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    sent = 0
    try:
        started = time.monotonic()
        while sent < len(events) and time.monotonic() < until:
            due = min(len(events), int((time.monotonic() - started) * rate) + 1)
            for key, value in events[sent:due]:
                await producer.send(topic, value, key=key or None)
            sent = max(sent, due)
            await asyncio.sleep(0.005)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def _cpu_seconds(pids: set[str]) -> float:
    """User + system CPU seconds of these processes so far (the worker py-spy started)."""
    total = 0.0
    for pid in pids:
        try:
            total += process_cpu_seconds(pid)
        except OSError:  # exited
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--customers", type=int, default=4_000)
    parser.add_argument("--seconds", type=float, default=30, help="how long py-spy samples")
    parser.add_argument("--guarantee", default="exactly_once", choices=("exactly_once", "at_least_once"))
    parser.add_argument("--workload", default="throughput", choices=("throughput", "latency"),
                        help="bench/run.py's traffic, or its latency workload (policy.latency.toml)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/remarket-profile"))
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--live", type=float, default=None, metavar="RATE",
                        help="produce the events at RATE per second once the worker is ready, instead of before it starts")
    parser.add_argument("--gil", action="store_true",
                        help="sample only the thread holding the GIL: a thread waiting for it (after a "
                             "switch request) otherwise shows as busy in whatever frame it stopped at")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="remarket-profile-"))
    broker = LocalBroker(workdir / "kafka")
    bootstrap = broker.start()
    worker = None
    children: set[str] = set()
    try:
        app_id = f"profile-{uuid.uuid4().hex[:6]}"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMARKET_")}
        env.update({"REMARKET_KAFKA_BOOTSTRAP": bootstrap, "REMARKET_CATALOG_FILE": str(CATALOG),
                    "REMARKET_APP_ID": app_id, "REMARKET_WEB_PORT": str(port),
                    "REMARKET_DATA_DIR": str(workdir / "data"), "REMARKET_LOG_LEVEL": "warning",
                    "REMARKET_PROCESSING_GUARANTEE": args.guarantee})
        subprocess.run([PY, "-m", "remarket.cli", "topics", "apply"], env=env, cwd=ROOT, check=True,
                       capture_output=True)
        log(f"producing {args.events:,} events ({args.workload} workload)")
        if args.workload == "latency":
            env["REMARKET_POLICY_FILE"] = str(ROOT / "bench" / "policy.latency.toml")
            events = [(customer.encode(), value) for customer, value in
                      (latency_event("profile", i) for i in range(args.events))]
        else:
            events = generate_events(args.events, args.customers)
        if args.live is None:
            asyncio.run(produce_all(bootstrap, EVENTS_TOPIC, events))
        raw = args.out.with_suffix(".txt")
        with open(workdir / "worker.log", "wb") as out:
            worker = subprocess.Popen([SPY, "record", "-r", str(args.rate), "-f", "raw", "-o", str(raw),
                                       "-d", str(int(args.seconds)), *(["--gil"] if args.gil else []),
                                       "--", PY, "-m", "remarket.cli", "worker"],
                                      env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        started = time.monotonic()
        if args.live is not None:
            while http_get(port, "/readyz")[0] != 200:
                if worker.poll() is not None or time.monotonic() - started > 120:
                    raise SystemExit("the worker did not become ready")
                time.sleep(0.2)
            children |= set(subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True,
                                           text=True).stdout.split())
            log(f"ready after {time.monotonic() - started:.1f} s; producing at {args.live:,.0f} events/s")
            cpu_before = _cpu_seconds(children)
            paced = time.monotonic()
            asyncio.run(produce_paced(bootstrap, EVENTS_TOPIC, events, args.live,
                                      until=started + args.seconds - 1))
            cpu = _cpu_seconds(children) - cpu_before
            log(f"produced for {time.monotonic() - paced:.1f} s; the worker's CPU meanwhile {cpu:.1f} s")
        while worker.poll() is None:
            children |= set(subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True,
                                           text=True).stdout.split())
            time.sleep(1)
            status, body = http_get(port, "/metrics")
            if status == 200:
                done = metric_sum(body.decode(), "remarket_events_total")
                log(f"{time.monotonic() - started:.0f} s: {done:,.0f} events")
            if time.monotonic() - started > args.seconds + 120:
                break
        log(summarise(raw, args.top))
        print(raw)
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
        for pid in children:  # the worker py-spy started, if it outlived the recording
            subprocess.run(["kill", pid], check=False, capture_output=True)
        broker.stop()


if __name__ == "__main__":
    main()
