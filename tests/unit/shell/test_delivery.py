"""The batch-delivery consumer as faust builds it (no broker: nothing is started)."""
from __future__ import annotations

import asyncio

from remarket.catalog import load_catalog
from remarket.domain.policy import Policy
from remarket.settings import Settings
from remarket.shell.app import Worker
from remarket.shell.delivery import FETCH_MAX_WAIT_MS, BatchDeliveryConsumer


def test_the_worker_consumer_bounds_how_long_the_broker_holds_an_empty_fetch(tmp_path):
    async def build() -> tuple[object, int]:
        worker = Worker(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path), Policy(), load_catalog())
        consumer = worker.app.consumer
        kafka_consumer = consumer._new_consumer_thread()._create_worker_consumer(worker.app.transport)
        return consumer, kafka_consumer._fetch_max_wait_ms

    consumer, fetch_max_wait_ms = asyncio.run(build())
    assert isinstance(consumer, BatchDeliveryConsumer)
    assert fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100  # faust's own is 1,500 ms: see FETCH_MAX_WAIT_MS
