"""The Faust worker: the composition root of topics, the customer table, the agent, timers and views.

The worker consumes every input topic and the internal ticks and rerouted topics. They are
co-partitioned by customer id, so a customer's events, ticks and state share a partition and no
repartition is needed. faust's consumer hands each fetched batch straight to `handle` (shell
.delivery: no agent, stream or per-record tasks); the Pipeline decides; the TransactionalSink
carries out what comes back; DueWork sends the ticks; the Observer turns it all into metrics.
"""
from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone
from typing import Any

from faust.stores.rocksdb import Store as RocksDBStore
from prometheus_client import CollectorRegistry

from remarket.catalog import Catalog
from remarket.domain.policy import Policy
from remarket.settings import Settings
from remarket.shell import delivery, faust_fixes, faust_metrics, views
from remarket.shell.due_work import DueWork
from remarket.shell.faust_app import faust_app, rocksdb_options
from remarket.shell.kafka import client_config
from remarket.shell.metrics import Metrics
from remarket.shell.observe import Observer
from remarket.shell.pipeline import Handled, Pipeline, SourceRecord, UNCHANGED
from remarket.shell.readiness import BrokerWatch, Readiness
from remarket.shell.restore import restore_changelog
from remarket.shell.state_cache import StateCache
from remarket.shell.store import partitioned
from remarket.shell.transactions import TransactionalSink, commit_transactions_concurrently

log = logging.getLogger("remarket.worker")
EXIT_CANNOT_CARRY_OUT = 70  # EX_SOFTWARE

TABLE_NAME = "customers"
INTERNAL_ROLES = ("ticks", "rerouted")
"""Internal topics the agent consumes beside the inputs, co-partitioned with them."""
BROKER_PROBE_SECONDS = 2.0


def stop_without_committing(message: Any, exc: BaseException) -> None:
    """A record whose outcome could not be written or sent must not be skipped.

    An agent's stream acked such a record anyway, and faust's fetch loop would end with the
    exception; either way the offset could be committed past it (seen: a dead-letter copy too
    large to produce vanished). Stopping the process at once leaves the transaction open (aborted by the next worker) and the offset
    uncommitted: the record is handled again after the restart. Loud and never silent.
    """
    log.critical("cannot carry out %s[%d]@%d (%s: %s): stopping without committing, so it is handled again "
                 "after the restart", message.topic, message.partition, message.offset, type(exc).__name__, exc,
                 exc_info=exc)
    logging.shutdown()
    os._exit(EXIT_CANNOT_CARRY_OUT)


class Worker:
    """Owns the Faust app and everything wired onto it; `app` is what `faust.Worker` runs."""

    def __init__(self, settings: Settings, policy: Policy, catalog: Catalog,
                 registry: CollectorRegistry | None = None) -> None:
        faust_fixes.apply_all()
        self.settings = settings
        self.catalog = catalog
        self.pipeline = Pipeline(catalog, policy)
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.broker_watch = BrokerWatch(client_config(settings))
        self.app = faust_app(settings, catalog)
        self.readiness = Readiness(self.app, self.broker_watch)
        self.exactly_once = settings.processing_guarantee == "exactly_once"
        self.observer = Observer(self.metrics, {spec.name: spec.role for spec in catalog})
        self._wire()

    # -- wiring -------------------------------------------------------------------------
    def _wire(self) -> None:
        app = self.app
        consumed = [spec.name for spec in self.catalog.inputs] + [self.catalog[role].name for role in INTERNAL_ROLES]
        self.source = app.topic(*consumed, key_type=bytes, value_type=bytes)
        self.table = app.Table(
            TABLE_NAME, default=None, key_type=bytes, value_type=bytes,
            partitions=self.catalog.partitions,
            help="Per-customer state (CustomerState JSON), changelogged; written through shell.state_cache.",
            options=rocksdb_options(self.settings) if self.settings.store.startswith("rocksdb") else None,
        )
        self.store = partitioned(self.table.data)  # the RocksDB (or memory) store behind the table
        self.states = StateCache(self.store)
        self._changelog_topic = self.table.changelog_topic.get_topic_name()
        self.sink = TransactionalSink(app, self.table, self.states, self._changelog_topic,
                                      {spec.role: spec.name for spec in self.catalog}, self.exactly_once)
        self._ticks_topic = self.catalog["ticks"].name
        self.due_work = DueWork(app, self.table, self.states, self.pipeline, self.metrics, self.observer,
                                self._ticks_topic)
        if isinstance(self.table.data, RocksDBStore):
            self._restore_before_faust_recovers()
        app.on_partitions_revoked.connect(self.sink.commit_before_revoke)
        if self.exactly_once:
            commit_transactions_concurrently(app.producer)
        app.topics.add(self.source)  # subscribed; delivered by the consumer below, not via an agent
        delivery.install(app, self._handle_or_stop, consumed, self.sink)
        app.timer(self.settings.tick_interval_seconds, name="due-work")(self._on_tick_timer)
        app.timer(BROKER_PROBE_SECONDS, name="broker-watch")(self._watch_broker)
        faust_metrics.setup(app, self.registry, pattern="/metrics", prefix="faust")
        views.register(app, self.table, self.pipeline.policy, self.readiness, self.settings.lookup_token)

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
                                        self.store, on_records=self.metrics.restored_records.inc)

        self.table.on_rebalance = on_rebalance  # type: ignore[method-assign]

    async def _handle_or_stop(self, message: Any) -> None:
        try:
            async with self.sink.lock:  # no commit in the middle of a record
                await self.handle(message)
        except Exception as exc:
            stop_without_committing(message, exc)

    # -- the hot path ---------------------------------------------------------------------
    async def handle(self, message: Any) -> Handled:
        started = time.perf_counter()
        record = SourceRecord(message.topic, message.partition, message.offset, message.key, message.value,
                              message.headers or ())
        key = message.key
        if key is None and message.topic == self._ticks_topic:
            return await self._handle_partition_tick(record, message, started)
        state = None
        if key is not None:
            self.app.sensors.on_table_get(self.table, key)
            state = self.states.get(message.partition, key)
        handled = self.pipeline.handle(record, state, datetime.now(timezone.utc))
        await self._carry_out(handled, key, message, started)
        self.observer.processed_offsets[message.tp] = message.offset
        self.sink.processed(message.tp, message.offset)
        return handled

    async def _handle_partition_tick(self, record: SourceRecord, message: Any, started: float) -> Handled:
        """Advance every customer of the partition due by the tick's time, in its transaction."""
        now = self.pipeline.partition_tick(record)
        if isinstance(now, Handled):  # not a valid tick: dead-lettered
            await self._carry_out(now, None, message, started)
            handled = now
        else:
            handled = Handled("tick")
            received_at = datetime.now(timezone.utc)
            for customer_id, due_at in self.due_work.take_due(message.partition, now):
                key = customer_id.encode()
                self.metrics.tick_lateness.observe(max(0.0, (received_at - due_at).total_seconds()))
                customer = self.pipeline.handle_due(customer_id, self.states.get(message.partition, key), now,
                                                    received_at)
                await self._carry_out(customer, key, message, started)
                started = time.perf_counter()
        self.observer.processed_offsets[message.tp] = message.offset
        self.sink.processed(message.tp, message.offset)
        return handled

    async def _carry_out(self, handled: Handled, key: bytes | None, message: Any, started: float) -> None:
        if handled.new_state is not UNCHANGED and key is not None:
            self.states.put(message.partition, key, handled.new_state)  # changelog and RocksDB at commit
        for out in handled.records:
            await self.sink.send(out, message)
        if handled.customer_id is not None and handled.outcome != "duplicate":
            self.due_work.schedule(handled.customer_id, handled.due_at)
        self.observer.record(handled, message, started)

    # -- timers and readiness ---------------------------------------------------------------
    async def _watch_broker(self) -> None:
        self.metrics.broker_reachable.set(1 if await self.broker_watch.probe() else 0)

    async def _on_tick_timer(self) -> None:
        ready = self.readiness.is_ready()
        self.metrics.ready.set(1 if ready else 0)
        if ready:
            await self.due_work.fire()
            self.observer.update_lag(self.app.consumer)
