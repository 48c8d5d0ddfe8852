"""The Faust worker: composition root of topics, the customer table, the agent, timer and views.

One agent consumes every input topic and the internal ticks topic. They are co-partitioned by
customer id, so a customer's events, ticks and state share a partition and no repartition is
needed. The agent hands each record to the Pipeline and carries out the result.
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import faust
from faust.types import TP
from faust.stores.rocksdb import Store as RocksDBStore
from prometheus_client import CollectorRegistry

from remarket.catalog import Catalog
from remarket.domain.policy import Policy
from remarket.domain.state import CustomerState
from remarket.settings import Settings
from remarket.shell import faust_fixes, faust_metrics
from remarket.shell.kafka import bootstrap_of, client_config, ssl_context
from remarket.shell.metrics import Metrics
from remarket.shell.pipeline import UNCHANGED, Handled, OutRecord, Pipeline, SourceRecord
from remarket.shell.readiness import BrokerWatch
from remarket.shell.restore import FaustRocksDBStore, restore_changelog
from remarket.shell.schedule import DueIndex
from remarket.shell.ticks import tick_value

log = logging.getLogger("remarket.worker")
EXIT_CANNOT_CARRY_OUT = 70  # EX_SOFTWARE

TABLE_NAME = "customers"
PRODUCER_LINGER_SECONDS = {"exactly_once": 0.1, "at_least_once": 0.005}
"""How long sends wait to share a produce request. Under exactly-once nothing is visible before
the commit, which closes lingering batches at once (aiokafka flush_for_commit), so waiting
longer costs no latency and saves requests: with 5 ms, socket writes of near-empty requests
were ~10 % of the worker's CPU. Under at-least-once every ms of linger is a ms of latency."""
PRODUCER_MAX_BATCH_BYTES = 256 * 1024
INTERNAL_ROLES = ("ticks", "rerouted")
"""Internal topics the agent consumes beside the inputs, co-partitioned with them."""
BROKER_PROBE_SECONDS = 2.0
TICK_RETRY_AFTER = timedelta(minutes=1)
"""A tick that never comes back (lost send) is retried after this; duplicates are harmless."""


def stop_without_committing(message: Any, exc: BaseException) -> None:
    """A record whose outcome could not be written or sent must not be skipped.

    faust restarts a crashed agent and its stream acks the record anyway, so the offset would
    be committed past it (seen: a dead-letter copy too large to produce vanished). Stopping
    the process at once leaves the transaction open (aborted by the next worker) and the offset
    uncommitted: the record is handled again after the restart. Loud and never silent.
    """
    log.critical("cannot carry out %s[%d]@%d (%s: %s): stopping without committing, so it is handled again "
                 "after the restart", message.topic, message.partition, message.offset, type(exc).__name__, exc,
                 exc_info=exc)
    logging.shutdown()
    os._exit(EXIT_CANNOT_CARRY_OUT)


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
        producer_linger=PRODUCER_LINGER_SECONDS[settings.processing_guarantee],
        producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
        broker_session_timeout=settings.kafka_session_timeout_seconds,
        broker_commit_interval=settings.commit_interval_seconds,
        broker_heartbeat_interval=max(1.0, settings.kafka_session_timeout_seconds / 10),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_enabled=True,
        autodiscover=False,
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


class Worker:
    """Owns the Faust app and everything wired onto it; `app` is what `faust.Worker` runs."""

    def __init__(self, settings: Settings, policy: Policy, catalog: Catalog,
                 registry: CollectorRegistry | None = None) -> None:
        faust_fixes.apply_all()
        self.settings = settings
        self.catalog = catalog
        self.pipeline = Pipeline(catalog, policy)
        self.due = DueIndex()
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.broker_watch = BrokerWatch(client_config(settings))
        self.app = faust_app(settings, catalog)
        self.exactly_once = settings.processing_guarantee == "exactly_once"
        self._topic_names = {spec.role: spec.name for spec in catalog}
        self._role_by_topic = {spec.name: spec.role for spec in catalog}
        self._indexed_assignment: frozenset | None = None
        self._segments: Counter[tuple[str, str]] = Counter()  # (stage, tier) -> customers here
        self._processed_offsets: dict[Any, int] = {}
        self._uncommitted: dict[TP, int] = {}  # processed since the last commit of our own (see below)
        self._lag_labels: set[tuple[str, str]] = set()
        self._wire()

    # -- wiring -------------------------------------------------------------------------
    def _wire(self) -> None:
        app = self.app
        consumed = [spec.name for spec in self.catalog.inputs] + [self.catalog[role].name for role in INTERNAL_ROLES]
        self.source = app.topic(*consumed, key_type=bytes, value_type=bytes)
        self.table = app.Table(
            TABLE_NAME, default=None, key_type=bytes, value_type=bytes,
            partitions=self.catalog.partitions,
            help="Per-customer state (CustomerState JSON), changelogged.",
            options=self._rocksdb_options() if self.settings.store.startswith("rocksdb") else None,
        )
        self.store = self.table.data  # the RocksDB (or memory) store behind the table
        self._changelog_topic = self.table.changelog_topic.get_topic_name()
        if isinstance(self.store, RocksDBStore):
            self._restore_before_faust_recovers()
        if self.exactly_once:
            faust_fixes.persist_changelog_offsets_at_commit(app, self._changelog_topic)
        app.agent(self.source, name="customer-events")(self._agent)
        app.timer(self.settings.tick_interval_seconds, name="due-work")(self._fire_due_work)
        app.timer(BROKER_PROBE_SECONDS, name="broker-watch")(self._watch_broker)
        faust_metrics.setup(app, self.registry, pattern="/metrics", prefix="faust")
        from remarket.shell import views
        views.register(self)
        if self.exactly_once:
            app.on_partitions_revoked.connect(self._commit_before_revoke)

    def _restore_before_faust_recovers(self) -> None:
        """Every rebalance: after the table has opened its partitions and before faust's
        recovery reads their offsets, bring them up to the changelog's last stable offset
        (remarket.shell.restore says why faust's own recovery cannot be trusted with that)."""
        open_partitions = self.table.on_rebalance

        async def on_rebalance(assigned: Any, revoked: Any, newly_assigned: Any, generation_id: int = 0) -> None:
            await open_partitions(assigned, revoked, newly_assigned, generation_id)
            partitions = {tp.partition for tp in self.app.assignor.assigned_actives()
                          if tp.topic == self._changelog_topic}
            if partitions:
                await restore_changelog(client_config(self.settings), self._changelog_topic, partitions,
                                        FaustRocksDBStore(self.store), on_records=self.metrics.restored_records.inc)

        self.table.on_rebalance = on_rebalance  # type: ignore[method-assign]

    def _rocksdb_options(self) -> dict[str, int]:
        """Bounded memory per table partition: memtables x 2 + block cache."""
        mib = 2**20
        return {"write_buffer_size": self.settings.rocksdb_write_buffer_mb * mib, "max_write_buffer_number": 2,
                "block_cache_size": self.settings.rocksdb_block_cache_mb * mib,
                "block_cache_compressed_size": self.settings.rocksdb_block_cache_mb * mib // 4}

    async def _agent(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                await self.handle(event.message)
            except Exception as exc:
                stop_without_committing(event.message, exc)


    # -- the hot path ---------------------------------------------------------------------
    async def handle(self, message: Any) -> Handled:
        started = time.perf_counter()
        record = SourceRecord(message.topic, message.partition, message.offset, message.key, message.value,
                              message.headers or ())
        key = message.key
        stored = None
        if key is not None:
            self.app.sensors.on_table_get(self.table, key)
            stored = self.store.get(key)
        handled = self.pipeline.handle(record, stored, datetime.now(timezone.utc))
        if handled.state is not UNCHANGED and key is not None:
            await self._write_state(key, handled.state, message)
        for out in handled.records:
            await self._send(out, message)
        if handled.customer_id is not None and handled.outcome != "duplicate":
            self.due.set(handled.customer_id, handled.due_at)
        self._processed_offsets[message.tp] = message.offset
        self._uncommitted[message.tp] = message.offset
        self._observe(handled, message, started)
        return handled

    async def _write_state(self, key: bytes, value: bytes | None, source: Any) -> None:
        """Local store + changelog, like a table assignment, minus faust's per-write layers.

        `table[key] = value` goes through sensors, a send buffer and a transaction lookup per
        write (measured here: ~0.7 ms of CPU per event, more than the whole pipeline); writing
        the store and producing the changelog record directly, in the source's transaction, does
        the same for about half. The changelog offset is persisted as faust does it: at commit
        under exactly-once, at once otherwise.
        """
        if value is None:
            self.store.pop(key, None)  # erasure: local delete + tombstone in the changelog
            self.app.sensors.on_table_del(self.table, key)
        else:
            self.store[key] = value
            self.app.sensors.on_table_set(self.table, key, value)
        fut = await self._produce(self._changelog_topic, key, value, source.partition, None, source)
        fut.add_done_callback(self._changelog_written)

    def _changelog_written(self, fut: Any) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return  # the transaction aborts; faust crashes the worker on a failed send anyway
        meta = fut.result()
        tp = TP(meta.topic, meta.partition)
        if self.exactly_once:
            self.app.tables.persist_offset_on_commit(self.store, tp, meta.offset)
        else:
            self.store.set_persisted_offset(tp, meta.offset)

    def _transactional_id(self, source: Any) -> str | None:
        if not self.exactly_once:
            return None
        return self._transactional_id_of(source.topic, source.partition)

    def _transactional_id_of(self, topic: str, partition: int) -> str:
        return f"{self.app.conf.id}-{self.app.assignor.group_for_topic(topic)}-{partition}"

    async def _commit_before_revoke(self, sender: Any, revoked: set[TP], **_: Any) -> None:
        """Commit every open transaction, with the offsets it covers, before partitions move.

        faust 0.15 only flushes on revocation: the open transaction of a partition this worker
        keeps survives the rebalance while the consumer seeks back to the last committed
        offset, so the same events are processed again into the same transaction and their
        actions are delivered twice when it commits (seen: 4 of 80 in the scale-out test).
        Kafka Streams commits here; so do we. The agent is idle and the producer flushed by
        the time faust sends this signal. Transactions of partitions that are kept start
        again when faust begins them after the assignment; those that moved are never begun.
        """
        done = {tp: offset for tp, offset in self._uncommitted.items() if tp in revoked}
        if not done:
            self._uncommitted.clear()
            return
        by_transaction: dict[str, dict[TP, int]] = {}
        for tp, offset in done.items():
            by_transaction.setdefault(self._transactional_id_of(tp.topic, tp.partition), {})[tp] = offset + 1
        producer, committed = self.app.producer, set()
        for transactional_id, offsets in by_transaction.items():
            # faust's commit_transactions, minus its failure when faust's own (timer) commit got
            # there first and did not begin the next transaction (seen with the broker down)
            txn = producer._transaction_producers.get(transactional_id)
            if txn is None:
                continue
            async with producer._trn_locks[transactional_id]:
                if not txn._txn_manager.is_in_transaction():
                    log.warning("no open transaction %s to commit before the rebalance", transactional_id)
                    continue
                await txn.send_offsets_to_transaction(offsets, self.app.conf.id)
                await txn.commit_transaction()
                committed.update(offsets)
        self._uncommitted.clear()
        # the changelog offsets those transactions made durable (faust keys them by changelog TP)
        for partition in {tp.partition for tp in committed}:
            self.app.tables.on_commit_tp(TP(self._changelog_topic, partition))
        log.info("committed the transactions of %d partitions before the rebalance", len(committed))

    async def _send(self, out: OutRecord, source: Any) -> None:
        """Send in the transaction that commits `source`'s offset (when exactly-once).

        faust's own Topic.send picks a transaction by the *destination* partition and sends
        outside any transaction for topics it does not consume (faust #177), so outputs are
        produced here with the source partition's transactional producer explicitly.
        """
        await self._produce(self._topic_names[out.role], out.key, out.value, out.partition, out.headers, source)

    async def _produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                       headers: Any, source: Any) -> Any:
        """One record in the source's transaction, reported to faust's sensors like its own sends."""
        producer, sensors = self.app.producer, self.app.sensors
        state = sensors.on_send_initiated(producer, topic, None, len(key or b""), len(value or b""))
        fut = await producer.send(topic, key, value, partition, None, headers,
                                  transactional_id=self._transactional_id(source))

        def reported(done: Any) -> None:
            if done.cancelled():
                return
            if (error := done.exception()) is not None:
                sensors.on_send_error(producer, error, state)
            else:
                sensors.on_send_completed(producer, state, done.result())

        fut.add_done_callback(reported)
        return fut

    def _observe(self, handled: Handled, message: Any, started: float) -> None:
        m = self.metrics
        role = self._role_by_topic.get(message.topic, "unknown")
        if role == "ticks":
            m.ticks.labels("handled").inc()
        else:  # a forwarded record counts twice: "rerouted" on its input, then its outcome on "rerouted"
            m.events.labels(role, "dead_lettered" if handled.dead_letter_reason else handled.outcome).inc()
        if handled.dead_letter_reason:
            m.dead_letters.labels(handled.dead_letter_reason).inc()
            if any(("remarket-dlq-truncated", b"true") in out.headers for out in handled.records):
                m.dead_letters_truncated.inc()
        core = handled.core
        if core is not None:
            for action in core.actions:
                if action in handled.expired:
                    m.suppressions.labels(str(action.kind), "expired_before_publish").inc()
                else:
                    m.actions.labels(str(action.kind), str(action.channel), str(action.holdout).lower()).inc()
                    if action.holdout:  # decided, recorded on the holdout topic, never sent
                        m.suppressions.labels(str(action.kind), "holdout").inc()
            if len(core.actions) > len(handled.expired) and message.timestamp:
                m.event_to_action.observe(max(0.0, time.time() - message.timestamp))
            for kind, reason in core.suppressions:
                m.suppressions.labels(kind, reason).inc()
            for from_stage, to_stage in core.transitions:
                m.stage_transitions.labels(from_stage, to_stage).inc()
            if core.state is None and not core.duplicate:
                m.erasures.inc()
        if handled.segment_change is not None:
            self._move_segment(*handled.segment_change)
        m.processing.observe(time.perf_counter() - started)

    # -- due work -------------------------------------------------------------------------
    def tables_recovered(self) -> bool:
        """This generation's tables are restored. `recovery.completed` alone stays set from the
        previous recovery while the next one runs: a due-work index built then misses every
        customer still being restored, and their reminders never fire."""
        app = self.app
        return bool(app.tables.recovery.completed.is_set() and app.tables.actives_ready and not app.rebalancing)

    def is_ready(self) -> bool:
        return bool(self.broker_watch.reachable and self.tables_recovered() and self.app.assignor.assigned_actives())

    async def _watch_broker(self) -> None:
        self.metrics.broker_reachable.set(1 if await self.broker_watch.probe() else 0)

    async def _fire_due_work(self) -> None:
        if not self.is_ready():
            self.metrics.ready.set(0)
            return
        self.metrics.ready.set(1)
        assignment = frozenset(self.app.assignor.assigned_actives())
        if assignment != self._indexed_assignment:
            self._rebuild_due_index()
            self._indexed_assignment = assignment
        now = datetime.now(timezone.utc)
        due = self.due.pop_due(now)
        tick = tick_value(now)
        ticks_topic = self.catalog["ticks"].name
        pending = []
        for customer_id, due_at in due:
            self.metrics.tick_lateness.observe((now - due_at).total_seconds())
            pending.append(await self.app.producer.send(ticks_topic, customer_id.encode(), tick, None, None, None))
        for fut in pending:
            await fut  # plain producer: ticks are idempotent and must be visible now, not at commit
        self.metrics.ticks.labels("sent").inc(len(due))
        self.due.retry_later((cid for cid, _ in due), now, TICK_RETRY_AFTER)
        self.metrics.pending_customers.set(len(self.due))
        self._update_lag()

    def _move_segment(self, before: tuple[str, str] | None, after: tuple[str, str] | None) -> None:
        for segment, step in ((before, -1), (after, 1)):
            if segment is not None:
                self._segments[segment] += step
                self.metrics.customers.labels(*segment).set(max(0, self._segments[segment]))

    def _update_lag(self) -> None:
        consumer = self.app.consumer
        reported = set()
        for tp in consumer.assignment():
            role = self._role_by_topic.get(tp.topic)
            if role is None:  # changelogs and faust internals: not ours to report
                continue
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            done = self._processed_offsets.get(tp)
            # nothing processed here yet: what the group committed (faust keeps it, privately)
            position = done + 1 if done is not None else consumer._committed_offset.get(tp) or 0
            lag = highwater - position
            self.metrics.consumer_lag.labels(role, str(tp.partition)).set(max(0, lag))
            reported.add((role, str(tp.partition)))
        for labels in self._lag_labels - reported:  # partitions that moved away: not ours to report
            self.metrics.consumer_lag.remove(*labels)
        self._lag_labels = reported

    def _rebuild_due_index(self) -> None:
        """Scan this worker's table partitions once per assignment change (never per tick)."""
        entries = []
        segments: Counter[tuple[str, str]] = Counter()
        for key, raw in self.table.items():
            if raw:
                state = CustomerState.from_bytes(raw)
                entries.append((key.decode(), state.due_at))
                if (segment := self.pipeline.segment(state)) is not None:
                    segments[segment] += 1
        self.due.rebuild(entries)
        for segment in set(self._segments) | set(segments):
            self.metrics.customers.labels(*segment).set(segments[segment])
        self._segments = segments
        self.metrics.index_rebuilds.inc()
        log.info("due-work index rebuilt: %d customers scheduled of %d", len(self.due), len(entries))
