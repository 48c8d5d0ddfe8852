"""The batch-delivery consumer as faust builds it (no broker: nothing is started)."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from faust.types import TP

from remarket.catalog import load_catalog
from remarket.domain.policy import Policy
from remarket.settings import Settings
from remarket.shell.app import Worker
from remarket.shell.delivery import FETCH_MAX_WAIT_MS, TURN_AFTER_SECONDS, BatchDeliveryConsumer

from .loop_turns import turns_while


def test_the_worker_consumer_bounds_how_long_the_broker_holds_an_empty_fetch(tmp_path):
    async def build() -> tuple[object, int]:
        worker = Worker(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path), Policy(), load_catalog())
        consumer = worker.app.consumer
        kafka_consumer = consumer._new_consumer_thread()._create_worker_consumer(worker.app.transport)
        return consumer, kafka_consumer._fetch_max_wait_ms

    consumer, fetch_max_wait_ms = asyncio.run(build())
    assert isinstance(consumer, BatchDeliveryConsumer)
    assert fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100  # faust's own is 1,500 ms: see FETCH_MAX_WAIT_MS


class Record:  # a fetched record and its message (hashable: faust keeps the unacked in a set)
    def __init__(self, offset: int) -> None:
        self.offset = offset


def test_a_long_batch_gives_the_event_loop_turns_while_it_is_handled():
    """Handling never waits by itself: without turns, a fetched batch held sends, the commit timer
    and broker answers back until its last record."""
    handled: list[int] = []

    async def handler(message) -> None:
        started = time.perf_counter()
        while time.perf_counter() - started < 0.001:  # ~1 ms of work per record, no await
            pass
        handled.append(message.offset)

    tp = TP("remarket.orders", 0)
    consumer = SimpleNamespace(
        handler=handler, _to_message=lambda tp, record: record, _unacked_messages=set(),
        _read_offset={tp: None}, _commit_every=None, _n_acked=0, flow_active=True, ack=lambda message: None,
        app=SimpleNamespace(consumer_generation_id=1, topics=SimpleNamespace(acks_enabled_for=lambda topic: True)))
    batch = [Record(offset) for offset in range(30)]

    _, turns = asyncio.run(turns_while(BatchDeliveryConsumer._handle_batch(consumer, tp, batch, 1)))
    assert handled == list(range(30)) and consumer._read_offset[tp] == 29
    assert turns >= 30 * 0.001 / TURN_AFTER_SECONDS / 2  # ~one per TURN_AFTER_SECONDS of handling
