"""After an outage the worker comes back to a backlog: due work must not run ahead of it.

An order placed before the outage and paid during it is overdue by the wall clock when the worker
returns, but its payment waits in the input backlog. A tick read before the backlog would remind
a customer who paid (a moot message). Due work waits until its partition's input is read up to
where it stood when the tick was read; an order that really was never paid is still reminded.
"""
from __future__ import annotations

import re
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import orjson
from aiokafka import AIOKafkaProducer

from remarket.shell.pipeline import owner_partition
from tests.integration.harness import assert_every_action_exactly_once, run, wait_until

REMINDER_DELAY = timedelta(seconds=15)  # policies/outage.toml
BACKLOG_CUSTOMERS = 15000  # each placed and paid at once: 30,000 records (~10 s of work) ahead of the payment


def order(event_type: str, customer: str, at: datetime) -> bytes:
    return orjson.dumps({"event_id": f"{customer}-{event_type}", "event_type": event_type, "customer_id": customer,
                         "order_id": f"o-{customer}", "total": 12.0, "occurred_at": at.isoformat(),
                         "schema_version": 1})


async def produce_fast(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    """Batched (not one round trip per record): the backlog an outage leaves, written quickly."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def test_an_order_paid_during_an_outage_is_not_reminded_when_the_worker_catches_up(make_deployment):
    d = make_deployment("outage")
    orders = d.topics["orders"]
    worker = d.start_worker("w1")

    placed_at = datetime.now(timezone.utc)
    run(produce_fast(d.bootstrap, [(orders, c.encode(), order("order.placed", c, placed_at))
                                   for c in ("payer", "forgetter")]))
    open_order = lambda c: (v := worker.customer(c)) is not None and bool(v["state"]["open_orders"])  # noqa: E731
    wait_until(lambda: open_order("payer") and open_order("forgetter"), timeout=REMINDER_DELAY.total_seconds() / 2,
               interval=0.2, message="both orders held open")
    worker.stop()  # the outage starts before either reminder is due
    assert worker.proc.returncode == 0, worker.log_tail()
    assert datetime.now(timezone.utc) < placed_at + REMINDER_DELAY, "the worker took too long to stop"

    # during the outage: a backlog on the payer's partition, then the payment (within the delay)
    partition = owner_partition(b"payer", d.partitions)
    bulk = [c for c in (f"bulk-{i}" for i in range(BACKLOG_CUSTOMERS * d.partitions * 2))
            if owner_partition(c.encode(), d.partitions) == partition][:BACKLOG_CUSTOMERS]
    now = datetime.now(timezone.utc)
    backlog = [(orders, c.encode(), order(kind, c, now)) for c in bulk for kind in ("order.placed", "order.paid")]
    backlog.append((orders, b"payer", order("order.paid", "payer", placed_at + timedelta(seconds=1))))
    run(produce_fast(d.bootstrap, backlog))
    time.sleep(max(0.0, (placed_at + REMINDER_DELAY - datetime.now(timezone.utc)).total_seconds()) + 2)

    worker.start()  # same data directory: its state holds both open orders, both overdue
    assert_every_action_exactly_once(d, Counter({("forgetter", "payment_reminder"): 1}), [worker])
    waited = re.search(r'^remarket_ticks_total\{phase="waited_for_input"\} (\S+)$', worker.metrics(), re.M)
    assert waited and float(waited.group(1)) >= 1, "no tick was read ahead of the backlog: the race was not run"
    payer = worker.customer("payer")
    assert payer is not None and not payer["state"]["last_reminded"] and not payer["state"]["open_orders"], payer
