"""Runtime settings: one pydantic-settings class read from REMARKET_* environment variables.

Build it in main() (`Settings()`), never at import time. Secrets are SecretStr so they never print.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REMARKET_", extra="ignore")

    # Kafka
    kafka_bootstrap: str | None = Field(
        None, description="host:port[,host:port]; unset: the demo starts a local broker from Maven jars.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None

    kafka_session_timeout_seconds: float = Field(
        30.0, ge=6, le=300, description="Consumer group session: how fast a dead worker's partitions move.")

    # Worker
    app_id: str = Field("remarket", description="Faust app id: consumer group and transactional id prefix.")
    processing_guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once"
    store: str = Field("rocksdb://", description="Table store: rocksdb:// (rocksdict) or memory:// (tests).")
    data_dir: Path = Field(Path("var/remarket-data"), description="Where RocksDB state lives.")
    partitions: int | None = Field(None, ge=1, le=1024, description="Overrides the catalog's partition count.")
    replication_factor: int | None = Field(None, ge=1, le=16)
    standby_replicas: int = Field(0, ge=0, le=8, description="Table standby replicas (faster failover).")
    rocksdb_write_buffer_mb: int = Field(
        16, ge=1, le=1024, description="RocksDB memtable size per table partition (two may be held); "
        "faust's default, 64 MiB x 3, lets a worker's memory grow by 192 MiB per partition.")
    rocksdb_block_cache_mb: int = Field(
        32, ge=1, le=65536, description="RocksDB block cache per table partition (faust's default: 2 GiB).")
    state_cache_mb: int = Field(
        384, ge=0, le=65536, description="Memory for customer states kept decoded between their events, all "
        "partitions together (estimated: 7.5x the length of their JSON); 0: decode at every event. Beyond it the "
        "oldest are dropped and read from RocksDB again when needed.")
    commit_interval_seconds: float = Field(
        2.8, gt=0, le=60, description="How often offsets (and, exactly-once, transactions) commit: "
        "actions become visible to read_committed consumers at most this late.")
    fetch_sessions: bool = Field(
        True, description="Fetch within incremental fetch sessions (KIP-227): each fetch names only the "
        "partitions whose position moved. Off: every fetch names every assigned partition, as aiokafka does.")
    fetch_min_bytes: int = Field(
        1, ge=1, le=1 << 20, description="New-record bytes the broker gathers before it answers a fetch "
        "after an answer with no records (or until fetch_max_wait_ms passes; while records flow, "
        "fetch_gather_ms and fetch_gather_bytes apply); 1 answers at the first record. Fewer, fuller fetches cost less CPU "
        "when records trickle in: at 840 events/s, 16384 with a 10 ms wait took ~10 % off the worker's CPU "
        "per event, for up to 10 ms more per record and ~100 fetches a second when idle (docs/benchmarks.md).")
    fetch_max_wait_ms: int = Field(
        100, ge=1, le=1000, description="How long the broker may hold a fetch that has not gathered "
        "fetch_min_bytes (why not longer: FETCH_MAX_WAIT_MS in shell/delivery.py).")
    fetch_gather_ms: int | None = Field(
        None, ge=0, le=100, description="While records flow, how long a fetch may wait to gather "
        "fetch_gather_bytes: after an answer that brought records, the next fetch to that broker asks for "
        "this wait; after an empty one, fetch_min_bytes and fetch_max_wait_ms again (an idle worker long-polls, "
        "the first record after a pause is answered at once). 0 turns it off. Unset: 5 under exactly-once "
        "(~10 % less worker CPU per event in a live stream, latency bound by commits) and off under "
        "at-least-once (it added ~10 ms to p50 there; docs/benchmarks.md).")
    fetch_gather_bytes: int = Field(
        65536, ge=1, le=1 << 20, description="New-record bytes a gathering fetch waits for (fetch_gather_ms).")
    producer_linger_ms: int | None = Field(
        None, ge=0, le=1000, description="How long sends wait to share a produce request. Unset: 100 under "
        "exactly-once (nothing is visible before the commit, which sends what lingers) and 5 under "
        "at-least-once (every ms is a ms of latency).")
    tick_interval_seconds: float = Field(
        5.0, gt=0, le=60, description="How often due work is checked; stages move at most this late.")
    gc_thresholds: tuple[Annotated[int, Field(ge=100)], Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] = Field(
        (10_000, 20, 10), description="Python's garbage-collection thresholds (`gc.set_threshold`), set when "
        "the worker starts: net new objects before a young collection, then young collections per middle "
        "one, middle per full. JSON, e.g. [700, 10, 10] (Python's own). Young and middle collections walk "
        "nothing in the worker (shell/heap.py), so these matter little now; kept for a comparison.")
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=1, le=65535)
    lookup_token: SecretStr | None = Field(
        None, description="Enables GET /customers/{id}; callers send 'Authorization: Bearer <token>'.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    policy_file: Path | None = Field(None, description="Merchant policy (TOML); unset: built-in defaults.")
    catalog_file: Path | None = Field(None, description="Topic catalog; unset: the packaged streams/topics.toml.")

    # Topic names (stores have their own): REMARKET_TOPIC_ORDERS=shop.orders, ...
    topic_visits: str | None = None
    topic_orders: str | None = None
    topic_carts: str | None = None
    topic_email: str | None = None
    topic_consent: str | None = None
    topic_ticks: str | None = None
    topic_rerouted: str | None = None
    topic_actions: str | None = None
    topic_holdout: str | None = None
    topic_profiles: str | None = None
    topic_dead_letter: str | None = None
    topic_redriven: str | None = None

    def topic_overrides(self) -> dict[str, str]:
        return {
            name.removeprefix("topic_"): value
            for name, value in self.__dict__.items()
            if name.startswith("topic_") and value
        }
