"""Drive real `remarket worker` processes and read topics back, for integration tests."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from remarket.catalog import load_catalog
from remarket.devkit import workers as devkit_workers
from remarket.devkit.broker import free_port


@dataclass
class Deployment:
    """One isolated remarket deployment on the shared broker: own app id and topic names."""

    bootstrap: str
    workdir: Path
    partitions: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.app_id = f"rmk-test-{self.run_id}"
        base = load_catalog()
        self.topics = {spec.role: f"t{self.run_id}.{spec.name}" for spec in base}
        self.workers: list[WorkerProcess] = []

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMARKET_")}
        env.update({
            "REMARKET_KAFKA_BOOTSTRAP": self.bootstrap,
            "REMARKET_APP_ID": self.app_id,
            "REMARKET_PARTITIONS": str(self.partitions),
            "REMARKET_TICK_INTERVAL_SECONDS": "1",
            "REMARKET_LOOKUP_TOKEN": "test-token",
            "REMARKET_LOG_LEVEL": "info",
            "REMARKET_KAFKA_SESSION_TIMEOUT_SECONDS": "6",
        })
        env.update({f"REMARKET_TOPIC_{role.upper()}": name for role, name in self.topics.items()})
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def cli(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "remarket.cli", *args], env=self.env(**(env or {})),
                              capture_output=True, text=True, timeout=timeout)

    def start_worker(self, name: str = "w1", **env: str) -> "WorkerProcess":
        worker = WorkerProcess(self, name, free_port())
        worker.start(**env)
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


class WorkerProcess(devkit_workers.WorkerProcess):
    """A worker of one test deployment: its env, its own data directory and log in the workdir."""

    def __init__(self, deployment: Deployment, name: str, web_port: int) -> None:
        super().__init__(name, {}, web_port, deployment.workdir / f"{name}.log")
        self.deployment = deployment

    @property
    def data_dir(self) -> Path:
        return self.deployment.workdir / f"{self.name}-data"

    def start(self, ready_timeout: float = 90, **env: str) -> None:
        self.env = self.deployment.env(REMARKET_WEB_PORT=str(self.web_port), REMARKET_DATA_DIR=str(self.data_dir),
                                       **env)
        self.launch()
        self.wait_ready(ready_timeout)

    def customer(self, customer_id: str) -> dict | None:
        status, body = self.get(f"/customers/{customer_id}", token="test-token")
        return orjson.loads(body) if status == 200 else None


async def produce(bootstrap: str, records: list[tuple[str, bytes | None, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def consume_all(bootstrap: str, topic: str, *, expect: int | None = None, timeout: float = 30,
                      settle: float = 2.0) -> list:
    """Every committed record of `topic` (read_committed); waits for `expect` records if given."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    records: list = []
    try:
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            fresh = [r for rs in batch.values() for r in rs]
            records.extend(fresh)
            if fresh:
                quiet_since = time.monotonic()
            if expect is not None and len(records) >= expect and time.monotonic() - quiet_since >= settle:
                break
            if expect is None and time.monotonic() - quiet_since >= settle and records:
                break
        return records
    finally:
        await consumer.stop()


def wait_until(predicate, timeout: float = 30, interval: float = 0.5, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def run(coro):
    return asyncio.run(coro)


class CpuContention:
    """A busy process per core for as long as it is entered: CI machines are shared, and the
    crash suite must hold when the worker, the broker and the test fight for the CPU."""

    # stops by itself when the test process dies (no orphans left burning after a kill)
    BURN = ("import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n"
            "    sum(i * i for i in range(10000))\n")

    def __init__(self, processes: int | None = None) -> None:
        self.processes = processes if processes is not None else (os.cpu_count() or 2)
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> "CpuContention":
        self._procs = [subprocess.Popen([sys.executable, "-c", self.BURN], stdin=subprocess.DEVNULL)
                       for _ in range(self.processes)]
        return self

    def __exit__(self, *exc) -> None:
        for proc in self._procs:
            proc.kill()
            proc.wait(10)


def log_tails(workers: list[WorkerProcess], lines: int = 40) -> str:
    return "\n".join(f"--- {w.name} (pid {w.proc.pid if w.proc else '-'}) log tail ---\n{w.log_tail(lines)}"
                     for w in workers)


def assert_no_action_lost(d: Deployment, expected: Counter, workers: list[WorkerProcess],
                          timeout: float = 120) -> Counter:
    """At-least-once's count: every expected action arrives (copies allowed), nothing unexpected;
    returns the copies per action id."""
    records = run(consume_all(d.bootstrap, d.topics["actions"], expect=sum(expected.values()), timeout=timeout,
                              settle=8))
    actions = [orjson.loads(r.value) for r in records]
    got = Counter((a["customer_id"], a["kind"]) for a in {a["action_id"]: a for a in actions}.values())
    lost, unexpected, tails = expected - got, got - expected, log_tails(workers)
    assert not lost, f"{sum(lost.values())} of {sum(expected.values())} actions lost: {sorted(lost)[:10]}\n{tails}"
    assert not unexpected, f"unexpected actions: {sorted(unexpected)[:10]}\n{tails}"
    dead = run(consume_all(d.bootstrap, d.topics["dead_letter"], timeout=3, settle=1))
    assert dead == [], f"{len(dead)} dead letters, first: {dead[0].value[:300]!r}"
    return Counter(n for n in Counter(a["action_id"] for a in actions).values() if n > 1)


def assert_every_action_exactly_once(d: Deployment, expected: Counter, workers: list[WorkerProcess],
                                     timeout: float = 120) -> list:
    """The crash test's count (by action_id, read_committed): 0 duplicated, 0 lost, 0 unexpected."""
    records = run(consume_all(d.bootstrap, d.topics["actions"], expect=sum(expected.values()), timeout=timeout,
                              settle=8))
    actions = [orjson.loads(r.value) for r in records]
    by_id = Counter(a["action_id"] for a in actions)
    duplicated = {i: n for i, n in by_id.items() if n > 1}
    got = Counter((a["customer_id"], a["kind"]) for a in {a["action_id"]: a for a in actions}.values())
    lost = expected - got
    unexpected = got - expected
    tails = log_tails(workers)
    copies = [f"{a['customer_id']} {a['kind']} {a['action_id']} at {r.partition}@{r.offset}"
              for r, a in zip(records, actions) if a["action_id"] in duplicated]
    assert not duplicated, (f"{len(duplicated)} action ids delivered more than once:\n  " + "\n  ".join(copies[:12])
                            + f"\n{tails}")
    assert not lost, f"{sum(lost.values())} of {sum(expected.values())} actions lost: {sorted(lost)[:10]}\n{tails}"
    assert not unexpected, f"unexpected actions: {sorted(unexpected)[:10]}\n{tails}"
    assert len(records) == sum(expected.values()), f"{len(records)} action records\n{tails}"
    dead = run(consume_all(d.bootstrap, d.topics["dead_letter"], timeout=3, settle=1))
    assert dead == [], f"{len(dead)} dead letters, first: {dead[0].value[:300]!r}"
    return actions
