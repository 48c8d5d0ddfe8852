"""2 → 3 → 2 workers with standby replicas while reminders and coupons flow: the group rebalances
twice (a worker joins; a worker leaves with SIGTERM), state follows its partitions, every expected
action reaches a read_committed consumer exactly once by action_id, and afterwards each remaining
worker answers GET /customers/{id} for every customer (routed to the owner of the key)."""
from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from tests.integration.harness import (Deployment, WorkerProcess, assert_every_action_exactly_once, log_tails,
                                       produce, run)
from tests.integration.test_exactly_once_under_crashes import workload
from tests.integration.test_fault_broker_restart import step_records, wait_for

CRASH_POLICY = Path(__file__).parent / "policies" / "crash.toml"
PARTITIONS = 6


@pytest.fixture
def standby_deployment(kafka_bootstrap, tmp_path):
    d = Deployment(kafka_bootstrap, tmp_path, partitions=PARTITIONS,
                   extra_env={"REMARKET_POLICY_FILE": str(CRASH_POLICY), "REMARKET_STANDBY_REPLICAS": "1"})
    applied = d.cli("topics", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    yield d
    d.stop_all()


def readiness(worker: WorkerProcess) -> dict | None:
    status, body = worker.get("/readyz")
    return orjson.loads(body) if status == 200 else None


def group_settled(workers: list[WorkerProcess]) -> bool:
    """Every worker alive, recovered and owning partitions (so the rebalance reached each of them)."""
    for worker in workers:
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker {worker.name} exited with {worker.proc.returncode}\n"
                                 f"{log_tails([worker])}")
        ready = readiness(worker)
        if not ready or not ready["assigned_partitions"] or not ready["tables_recovered"]:
            return False
    return True


def test_state_follows_partitions_from_two_to_three_to_two_workers_with_standbys(standby_deployment):
    d = standby_deployment
    steps, expected = workload(random.Random(20261124))
    customers = sorted({customer for _, customer, _ in steps})
    third = len(steps) // 3  # split by steps: a payer's placed and paid stay together
    # each part's events are made when it is produced: made at the start, a payer's order was
    # overdue the moment it was handled, and a tick between its two records was a late payment
    first, second, rest = (lambda part=part: step_records(d, part) for part in
                           (steps[:third], steps[third:2 * third], steps[2 * third:]))

    w1, w2 = d.start_worker("w1"), d.start_worker("w2")
    wait_for(lambda: group_settled([w1, w2]), 90, "w1 and w2 both owning partitions", [w1, w2])
    run(produce(d.bootstrap, first()))

    w3 = d.start_worker("w3")  # scale out: the group rebalances 2 → 3
    wait_for(lambda: group_settled([w1, w2, w3]), 90, "w1, w2 and w3 all owning partitions", [w1, w2, w3])
    run(produce(d.bootstrap, second()))

    w1.stop()  # scale back in with SIGTERM: clean leave, 3 → 2, its partitions move to w2 and w3
    assert w1.proc.returncode == 0, f"w1 did not stop cleanly ({w1.proc.returncode})\n{log_tails([w1])}"
    remaining = [w2, w3]
    wait_for(lambda: group_settled(remaining), 90, "w2 and w3 owning all partitions after w1 left",
             remaining + [w1])
    run(produce(d.bootstrap, rest()))

    actions = assert_every_action_exactly_once(d, expected, [w1, w2, w3])
    assert {a["customer_id"] for a in actions} == {c for c, _ in expected}

    # every customer answers on each remaining worker; the state shows the actions taken
    def unanswered(worker: WorkerProcess) -> list[str]:
        return [c for c in customers if worker.customer(c) is None]

    for worker in remaining:
        wait_for(lambda: not unanswered(worker), 60, f"every customer answered through {worker.name}", remaining)
    for worker in remaining:
        for customer in customers:
            view = worker.customer(customer)
            assert view is not None, f"{worker.name} did not answer for {customer}\n{log_tails(remaining)}"
            assert view["customer_id"] == customer, view
            state = view["state"]
            if customer.startswith("unpaid-"):
                assert state["last_reminded"], f"{customer} via {worker.name}: reminder not in state {state}"
            elif customer.startswith("viewer-"):
                assert state["couponed"], f"{customer} via {worker.name}: coupon not in state {state}"
            else:
                assert not state["last_reminded"] and not state["open_orders"], \
                    f"{customer} via {worker.name}: a paid order left a reminder or open order {state}"
    for worker in remaining:
        assert worker.proc.poll() is None, f"{worker.name} exited\n{log_tails([worker])}"
