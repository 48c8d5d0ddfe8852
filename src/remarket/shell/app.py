"""The Faust worker: the composition root of topics, the customer table, the consumer, timers and views.

The worker consumes every input topic and the internal ticks and rerouted topics. They are
co-partitioned by customer id, so a customer's events, ticks and state share a partition and no
repartition is needed. faust's consumer hands each fetched batch straight to the RecordHandler
(shell.delivery: no agent, stream or per-record tasks); the Pipeline decides; the StateCache
holds the states until the commit; the TransactionalSink sends what comes back in the record's
transaction; DueWork ticks the partitions with customers due; the Observer makes it metrics.
"""
from __future__ import annotations

import logging
from typing import Any

from faust.stores.rocksdb import Store as RocksDBStore
from prometheus_client import CollectorRegistry

from remarket.catalog import Catalog
from remarket.domain.policy import Policy
from remarket.settings import Settings
from remarket.shell import delivery, faust_fixes, faust_metrics, views
from remarket.shell.due_work import FOLLOW_UP_SECONDS, DueWork
from remarket.shell.faust_app import faust_app, fetch_gathering, rocksdb_options
from remarket.shell.handling import RecordHandler
from remarket.shell.heap import LongLivedHeap
from remarket.shell.kafka import client_config
from remarket.shell.metrics import Metrics
from remarket.shell.observe import Observer
from remarket.shell.pipeline import Pipeline
from remarket.shell.readiness import BrokerWatch, Readiness
from remarket.shell.restore import restore_changelog
from remarket.shell.state_cache import StateCache
from remarket.shell.store import partitioned
from remarket.shell.tallies import TallyingRegistry
from remarket.shell.transactions import TransactionalSink, commit_transactions_concurrently

log = logging.getLogger("remarket.worker")

TABLE_NAME = "customers"
INTERNAL_ROLES = ("ticks", "rerouted")
"""Internal topics consumed beside the inputs, co-partitioned with them."""
BROKER_PROBE_SECONDS = 2.0


class Worker:
    """Owns the Faust app and everything wired onto it; `app` is what `faust.Worker` runs."""

    def __init__(self, settings: Settings, policy: Policy, catalog: Catalog,
                 registry: CollectorRegistry | None = None) -> None:
        faust_fixes.apply_all()
        self.settings = settings
        self.catalog = catalog
        self.pipeline = Pipeline(catalog, policy)
        self.registry = registry or TallyingRegistry()
        self.metrics = Metrics(self.registry)
        self.broker_watch = BrokerWatch(client_config(settings))
        self.app = faust_app(settings, catalog)
        self.readiness = Readiness(self.app, self.broker_watch)
        self.exactly_once = settings.processing_guarantee == "exactly_once"
        self.observer = Observer(self.metrics, {spec.name: spec.role for spec in catalog})
        self.heap = LongLivedHeap()  # started with the app: shell/heap.py
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
        self.states = StateCache(self.store, self.settings.state_cache_mb)
        self._changelog_topic = self.table.changelog_topic.get_topic_name()
        self.sink = TransactionalSink(app, self.table, self.states, self._changelog_topic,
                                      {spec.role: spec.name for spec in self.catalog}, self.exactly_once)
        self._ticks_topic = self.catalog["ticks"].name
        self.due_work = DueWork(app, self.store, self.states, self.pipeline, self.metrics, self.observer,
                                self._ticks_topic, handling_lock=self.sink.lock)
        if isinstance(self.table.data, RocksDBStore):
            self._restore_before_faust_recovers()
        app.on_partitions_revoked.connect(self.sink.commit_before_revoke)
        if self.exactly_once:
            commit_transactions_concurrently(app.producer)
        app.topics.add(self.source)  # subscribed; delivered by the consumer below, not via an agent
        self.handler = RecordHandler(app, self.table, self.pipeline, self.states, self.sink, self.due_work,
                                     self.observer, self._ticks_topic)
        delivery.install(app, self.handler.handle_or_stop, consumed, self.sink, self.settings.fetch_sessions,
                         self.settings.fetch_min_bytes, self.settings.fetch_max_wait_ms,
                         fetch_gathering(self.settings))
        app.timer(self.settings.tick_interval_seconds, name="due-work")(self._on_tick_timer)
        app.task(self._keep_due_work_current)
        app.task(self._watch_broker)
        app.task(self._start_heap)
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

    # -- timers and readiness ---------------------------------------------------------------
    async def _watch_broker(self) -> None:
        """Probe the broker at once, then every BROKER_PROBE_SECONDS. Readiness waits for the first
        answer, and a faust timer sleeps its interval before its first call: every start was ready
        2 s later than it could be. Its client is closed when the worker stops: its tasks left
        running held every stop 1 s longer (mode's worker waits for all pending tasks)."""
        try:
            while not self.app.should_stop:
                self.metrics.broker_reachable.set(1 if await self.broker_watch.probe() else 0)
                await self.app.sleep(BROKER_PROBE_SECONDS)
        finally:
            await self.broker_watch.stop()

    async def _start_heap(self) -> None:
        """When the app starts, not at the first tick that finds it ready: records flow ~1.5 s
        after launch, and until that tick (5 s) the states a backlog's drain decoded made every
        full collection longer (30 -> 290 ms, seven of them; docs/benchmarks.md)."""
        self.heap.start(self.settings.gc_thresholds)

    async def _keep_due_work_current(self) -> None:
        """Between the due-work rounds: the index rebuilt as soon as the worker is ready after an
        assignment change (the rebuild holds records off: not until the next round, up to a tick
        interval later), and waiting ticks followed up (DueWork.follow_up)."""
        while not self.app.should_stop:
            await self.app.sleep(FOLLOW_UP_SECONDS)
            if (self.due_work.waiting or self.due_work.index_stale()) and self.readiness.is_ready():
                if await self.due_work.index_current():
                    await self.due_work.follow_up()

    async def _on_tick_timer(self) -> None:
        ready = self.readiness.is_ready()
        self.metrics.ready.set(1 if ready else 0)
        self.heap.sweep_if_due()
        if ready:
            await self.due_work.fire()
            self.observer.update_lag(self.app.consumer)

