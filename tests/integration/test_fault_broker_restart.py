"""The broker dies (SIGKILL) mid-stream and comes back on the same port with the same data; the
worker is left alone and must recover by itself: every expected reminder and coupon reaches a
read_committed consumer exactly once by action_id — 0 lost, 0 duplicated. While the broker is
away the worker reports not ready and logs a readable handful of lines, not hundreds a second.

Runs on a private broker in tmp_path (never the shared session broker: killing that one would
break every other test). `LocalBroker.restart()` reuses the ports, config, cluster id and data.
"""
from __future__ import annotations

import random
import time
from pathlib import Path

import orjson
import pytest

from remarket.devkit.broker import LocalBroker
from tests.integration.harness import (Deployment, WorkerProcess, assert_every_action_exactly_once, log_tails,
                                       produce, run)
from tests.integration.test_exactly_once_under_crashes import workload

CRASH_POLICY = Path(__file__).parent / "policies" / "crash.toml"

BROKER_DOWN_SECONDS = 30  # past the session timeout (6 s), and one summary period of the outage logs


@pytest.fixture
def private_broker(tmp_path):
    broker = LocalBroker(tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def step_records(d: Deployment, steps: list) -> list[tuple[str, bytes, bytes]]:
    records = []
    for role, customer, make in steps:
        values = make()
        for value in values if isinstance(values, list) else [values]:
            records.append((d.topics[role], customer.encode(), value))
    return records


def wait_for(predicate, timeout: float, what: str, workers: list[WorkerProcess], interval: float = 0.5) -> None:
    """Bounded wait; on timeout the failure names what was awaited and shows the workers' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{log_tails(workers)}")


def test_worker_recovers_by_itself_when_the_broker_restarts_mid_stream(private_broker, tmp_path, cpu_contended):
    broker = private_broker
    d = Deployment(broker.bootstrap, tmp_path / "deployment",
                   extra_env={"REMARKET_POLICY_FILE": str(CRASH_POLICY)})
    d.workdir.mkdir()
    applied = d.cli("topics", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    try:
        steps, expected = workload(random.Random(20261123))
        third = len(steps) // 3  # split by steps: a payer's placed and paid stay together
        first, second, rest = (step_records(d, part) for part in
                               (steps[:third], steps[third:2 * third], steps[2 * third:]))
        worker = d.start_worker("w1")
        pid = worker.proc.pid

        run(produce(d.bootstrap, first))
        time.sleep(4)  # some reminders and coupons fall due (2 s) and commit before the crash
        run(produce(d.bootstrap, second))
        logged_before = len(worker.log_path.read_text(errors="replace").splitlines())
        broker.kill()  # at once: the worker is mid-stream, transactions open, ticks pending
        down_at = time.monotonic()
        wait_for(lambda: worker.get("/readyz")[0] == 503, 20, "/readyz to say not ready", [worker])
        assert orjson.loads(worker.get("/readyz")[1])["broker_reachable"] is False
        time.sleep(max(0.0, BROKER_DOWN_SECONDS - (time.monotonic() - down_at)))
        assert worker.get("/readyz")[0] != 200  # 503, or no answer in time from a busy worker: not ready
        assert worker.proc.poll() is None, f"worker exited while the broker was down\n{log_tails([worker])}"
        during = worker.log_path.read_text(errors="replace").splitlines()[logged_before:]
        loud = [line for line in during if "[ERROR]" in line or "[WARNING]" in line]
        assert any("broker unreachable" in line for line in loud), "\n".join(loud[:20])
        # the client libraries retry hundreds of times a second; an on-call engineer reads a handful
        assert len(loud) <= 40, f"{len(loud)} ERROR/WARNING lines in a {BROKER_DOWN_SECONDS} s outage:\n" + \
            "\n".join(loud[:60])

        assert broker.restart() == d.bootstrap  # same port, same data: the worker's bootstrap again
        run(produce(d.bootstrap, rest))

        # on its own: same process, never restarted, ready again
        wait_for(lambda: worker.proc.poll() is not None or worker.get("/readyz")[0] == 200, 90,
                 "w1 ready after the broker came back", [worker])
        assert worker.proc.poll() is None, \
            f"worker exited ({worker.proc.returncode}) after the broker came back\n{log_tails([worker])}"
        assert worker.proc.pid == pid

        assert "broker reachable again after" in worker.log_path.read_text(errors="replace")
        assert_every_action_exactly_once(d, expected, [worker])
        assert worker.proc.poll() is None and worker.proc.pid == pid, \
            f"the worker did not survive the broker restart\n{log_tails([worker])}"
    finally:
        d.stop_all()  # workers before the broker (the fixture stops it)

