"""The latency harness's floor: bench/run.py's `measure_latency` with the worker replaced by an echo.

    python bench/latency_floor.py --bootstrap HOST:PORT --rate 840 --rounds 2 --burn-us 0 300

The echo is one aiokafka process in one event loop: it reads the latency workload's events (a
consumer group, offsets committed every 0.1 s) and writes each event's key to the actions topic
(linger 5 ms, acks=all, as the worker's at-least-once producer), after burning `--burn-us` of CPU
per event so that it can be made as busy per event as the worker is. The same load generator,
reader, broker and machine as a worker's latency run: what a p99 is here is what the machine and
the harness cost a process that does nothing slow. Prints one JSON line per run, as
bench/ab_latency.py does.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run  # noqa: E402  (bench/run.py: measure_latency)
from ab_latency import add_harness_arguments  # noqa: E402
from remarket.devkit.workers import process_cpu_seconds  # noqa: E402

ECHO = r'''
import asyncio, sys, time
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

bootstrap, source, target, group, burn_us, ready = sys.argv[1:7]
burn = float(burn_us) / 1e6


async def main():
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                                enable_auto_commit=True, auto_commit_interval_ms=100)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await consumer.start()
    await producer.start()
    open(ready, "w").close()
    while True:
        for records in (await consumer.getmany(timeout_ms=100)).values():
            for record in records:
                end = time.process_time() + burn
                while time.process_time() < end:
                    pass
                await producer.send(target, record.value, key=record.key)

asyncio.run(main())
'''


class EchoRun:
    """Stands in for bench/run.py's WorkerRun: launched, waited for, measured, stopped."""

    burn_us = 0.0

    def __init__(self, bootstrap: str, app_id: str, workdir: Path, **env: str) -> None:
        self.ready = Path(workdir) / f"{app_id}.ready"
        self.proc = subprocess.Popen([sys.executable, "-c", ECHO, bootstrap, env["REMARKET_TOPIC_VISITS"],
                                      env["REMARKET_TOPIC_ACTIONS"], app_id, str(self.burn_us), str(self.ready)])

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the echo did not start")
            time.sleep(0.1)
        time.sleep(2)  # its group joined and its first fetch sent, as a worker is by /readyz

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_harness_arguments(parser, rounds=2)
    parser.add_argument("--burn-us", type=float, nargs="+", default=[0.0], help="CPU burnt per event, each a side")
    args = parser.parse_args()
    run.WorkerRun = EchoRun
    for _ in range(args.rounds):
        for burn in args.burn_us:
            EchoRun.burn_us = burn
            result = asyncio.run(run.measure_latency(args.bootstrap, Path(tempfile.mkdtemp(prefix="latency-floor-")),
                                                     args.rate, args.seconds, "at_least_once", 0.1,
                                                     args.client))
            result.update(side=f"echo, {burn:g} µs burnt per event")
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
