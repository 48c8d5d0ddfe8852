"""The faust app remarket runs: what faust is told about brokers, credentials, stores, commits
and the producer. The one place faust's settings are chosen."""
from __future__ import annotations

from typing import Any

import faust
from faust.tables import TableManager

from remarket.catalog import Catalog
from remarket.settings import Settings
from remarket.shell.fetch_sessions import Gathering
from remarket.shell.kafka import bootstrap_of, ssl_context
from remarket.shell.pipeline import KeyPartitioner

PRODUCER_LINGER_SECONDS = {"exactly_once": 0.1, "at_least_once": 0.005}
"""How long sends wait to share a produce request. Under exactly-once nothing is visible before
the commit, which closes lingering batches at once (aiokafka flush_for_commit), so waiting
longer costs no latency and saves requests: with 5 ms, socket writes of near-empty requests
were ~10 % of the worker's CPU. Under at-least-once every ms of linger is a ms of latency."""
PRODUCER_MAX_BATCH_BYTES = 256 * 1024


def producer_linger_seconds(settings: Settings) -> float:
    if settings.producer_linger_ms is not None:
        return settings.producer_linger_ms / 1000
    return PRODUCER_LINGER_SECONDS[settings.processing_guarantee]


FETCH_GATHER_MS = {"exactly_once": 5, "at_least_once": 0}
"""How long a fetch waits to gather records while they flow (shell.fetch_sessions). Fewer, fuller
fetches: ~10 % less worker CPU per event and a less busy broker in a live stream at 1,600 events/s
(docs/benchmarks.md). Under exactly-once nothing is visible before the commit, so 5 ms of it hides
in the commit interval; under at-least-once it added ~10 ms to p50, as linger would."""


def fetch_gathering(settings: Settings) -> Gathering | None:
    """How fetches gather while records flow (shell.fetch_sessions); None when turned off."""
    wait_ms = settings.fetch_gather_ms
    if wait_ms is None:
        wait_ms = FETCH_GATHER_MS[settings.processing_guarantee]
    if wait_ms == 0:
        return None
    return Gathering(min_bytes=settings.fetch_gather_bytes, max_wait_ms=wait_ms)


class TablesDeclaredBeforeStart(TableManager):
    """faust's TableManager, minus the second it sleeps when it starts (faust 0.15
    `TableManager.on_start`), which waits for tables an app declares while it starts (agents,
    autodiscovery). The worker declares its one table before the app starts (`Worker.__init__`),
    so that second only made every worker start a second later."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


def faust_app(settings: Settings, catalog: Catalog) -> faust.App:
    brokers = [f"kafka://{host.strip()}" for host in bootstrap_of(settings).split(",") if host.strip()]
    return faust.App(
        settings.app_id,
        broker=brokers,
        broker_credentials=_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=catalog.partitions,
        topic_replication_factor=catalog["ticks"].replication_factor,
        table_standby_replicas=settings.standby_replicas,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=producer_linger_seconds(settings),
        producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
        producer_partitioner=KeyPartitioner(),  # murmur2 as before, each key hashed once
        broker_session_timeout=settings.kafka_session_timeout_seconds,
        broker_commit_interval=settings.commit_interval_seconds,
        broker_heartbeat_interval=max(1.0, settings.kafka_session_timeout_seconds / 10),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_enabled=True,
        autodiscover=False,
        TableManager=TablesDeclaredBeforeStart,
    )


def _credentials(settings: Settings) -> Any:
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password,
        mechanism=settings.kafka_sasl_mechanism or "PLAIN",
        ssl_context=ssl_context(settings) if protocol == "SASL_SSL" else None,
    )


def rocksdb_options(settings: Settings) -> dict[str, int]:
    """Bounded memory per table partition: memtables x 2 + block cache."""
    mib = 2**20
    return {"write_buffer_size": settings.rocksdb_write_buffer_mb * mib, "max_write_buffer_number": 2,
            "block_cache_size": settings.rocksdb_block_cache_mb * mib,
            "block_cache_compressed_size": settings.rocksdb_block_cache_mb * mib // 4}
