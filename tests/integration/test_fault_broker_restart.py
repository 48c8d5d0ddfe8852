"""The broker dies (SIGKILL) mid-stream and comes back on the same port with the same data; the
worker is left alone and must recover by itself: every expected reminder and coupon reaches a
read_committed consumer exactly once by action_id — 0 lost, 0 duplicated.

Runs on a private broker in tmp_path (never the shared session broker: killing that one would
break every other test). `LocalBroker.restart()` reuses the ports, config, cluster id and data.
"""
from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.conftest import load_local_broker_module
from tests.integration.harness import Deployment, WorkerProcess, consume_all, produce, run
from tests.integration.test_exactly_once_under_crashes import workload

CRASH_POLICY = Path(__file__).parent / "policies" / "crash.toml"

BROKER_DOWN_SECONDS = 8  # longer than the session timeout (6 s): the group's members expire too


@pytest.fixture
def private_broker(tmp_path):
    broker = load_local_broker_module().LocalBroker(tmp_path / "kafka")
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


def log_tails(workers: list[WorkerProcess], lines: int = 40) -> str:
    return "\n".join(f"--- {w.name} (pid {w.proc.pid if w.proc else '-'}) log tail ---\n{w.log_tail(lines)}"
                     for w in workers)


def wait_for(predicate, timeout: float, what: str, workers: list[WorkerProcess], interval: float = 0.5) -> None:
    """Bounded wait; on timeout the failure names what was awaited and shows the workers' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{log_tails(workers)}")


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


def test_worker_recovers_by_itself_when_the_broker_restarts_mid_stream(private_broker, tmp_path):
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
        broker.kill()  # at once: the worker is mid-stream, transactions open, ticks pending
        time.sleep(BROKER_DOWN_SECONDS)
        assert worker.proc.poll() is None, f"worker exited while the broker was down\n{log_tails([worker])}"

        assert broker.restart() == d.bootstrap  # same port, same data: the worker's bootstrap again
        run(produce(d.bootstrap, rest))

        # on its own: same process, never restarted, ready again
        wait_for(lambda: worker.proc.poll() is not None or worker.get("/readyz")[0] == 200, 90,
                 "w1 ready after the broker came back", [worker])
        assert worker.proc.poll() is None, \
            f"worker exited ({worker.proc.returncode}) after the broker came back\n{log_tails([worker])}"
        assert worker.proc.pid == pid

        assert_every_action_exactly_once(d, expected, [worker])
        assert worker.proc.poll() is None and worker.proc.pid == pid, \
            f"the worker did not survive the broker restart\n{log_tails([worker])}"
    finally:
        d.stop_all()  # workers before the broker (the fixture stops it)
