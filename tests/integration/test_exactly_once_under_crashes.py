"""Reminders and coupons while the worker is SIGKILLed and restarted, with a busy process per
core (cpu_contended): every expected action reaches a read_committed consumer exactly once by
action_id — 0 lost, 0 duplicated. At-least-once: 0 lost (copies allowed)."""
from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from datetime import datetime, timezone

import orjson
import pytest

from tests.integration.harness import assert_every_action_exactly_once, assert_no_action_lost, produce, run

KILLS = int(os.environ.get("CRASH_KILLS", "3"))  # CI: 3; the long form: CRASH_KILLS=20


@pytest.fixture
def crash_deployment(make_deployment):
    return make_deployment("crash")


@pytest.fixture
def crash_deployment_at_least_once(make_deployment):
    return make_deployment("crash", extra_env={"REMARKET_PROCESSING_GUARANTEE": "at_least_once"})


def doc(event_type: str, customer: str, event_id: str, **fields) -> bytes:
    return orjson.dumps({"event_id": event_id, "event_type": event_type, "customer_id": customer,
                         "occurred_at": datetime.now(timezone.utc).isoformat(), "schema_version": 1, **fields})


def workload(rng: random.Random) -> tuple[list, Counter]:
    """(role, customer, factory) steps in random order, and the actions each customer must get."""
    steps, expected = [], Counter()
    for i in range(40):  # placed, never paid: one reminder each
        c = f"unpaid-{i}"
        steps.append(("orders", c, lambda c=c: doc("order.placed", c, f"{c}-placed", order_id=f"o-{c}", total=20.0)))
        expected[(c, "payment_reminder")] += 1
    for i in range(40):  # two views of one product, no order: one coupon each
        c = f"viewer-{i}"
        for n in range(2):
            steps.append(("visits", c, lambda c=c, n=n: doc("visit.product_view", c, f"{c}-view-{n}",
                                                              product_id=f"p-{c}")))
        expected[(c, "targeted_coupon")] += 1
    for i in range(20):  # placed and paid together, well within the reminder delay: nothing
        c = f"payer-{i}"
        steps.append(("orders", c, lambda c=c: [doc("order.placed", c, f"{c}-placed", order_id=f"o-{c}", total=9.0),
                                                doc("order.paid", c, f"{c}-paid", order_id=f"o-{c}", total=9.0)]))
    # keep each customer's own steps in order while interleaving customers
    by_customer: dict[str, list] = {}
    for step in steps:
        by_customer.setdefault(step[1], []).append(step)
    ordered = []
    while by_customer:
        c = rng.choice(sorted(by_customer))
        ordered.append(by_customer[c].pop(0))
        if not by_customer[c]:
            del by_customer[c]
    return ordered, expected


def kill_and_restart_while_feeding(d, worker, rng: random.Random, steps: list) -> None:
    pause = max(0.12, KILLS * 9.0 / len(steps))  # the workload outlasts the kills

    def producer_thread():
        for role, customer, make in steps:
            values = make()
            values = values if isinstance(values, list) else [values]
            run(produce(d.bootstrap, [(d.topics[role], customer.encode(), value) for value in values]))
            time.sleep(pause)

    feeder = threading.Thread(target=producer_thread)
    feeder.start()
    for _ in range(KILLS):
        time.sleep(rng.uniform(3, 7))
        worker.kill()  # SIGKILL: no flush, no commit, open transactions left behind
        worker.start()
    feeder.join()


def test_every_reminder_and_coupon_arrives_exactly_once_across_sigkills(crash_deployment, cpu_contended):
    d = crash_deployment
    rng = random.Random(20261122)
    steps, expected = workload(rng)
    worker = d.start_worker()
    kill_and_restart_while_feeding(d, worker, rng, steps)
    assert_every_action_exactly_once(d, expected, [worker])


def test_at_least_once_loses_no_reminder_or_coupon_across_sigkills(crash_deployment_at_least_once, cpu_contended):
    """At-least-once commits let records be handled while the broker answers, and write the
    changelog only after what the committed records sent: a state saying an event was handled
    never reaches the changelog before that event's action."""
    d = crash_deployment_at_least_once
    rng = random.Random(20261123)
    steps, expected = workload(rng)
    worker = d.start_worker()
    kill_and_restart_while_feeding(d, worker, rng, steps)
    copies = assert_no_action_lost(d, expected, [worker])
    print(f"at-least-once across {KILLS} SIGKILLs: {sum(expected.values())} actions, copies {dict(copies)}")
