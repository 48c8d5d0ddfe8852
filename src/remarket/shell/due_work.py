"""Due work: which customers are due, one tick per partition that has any, and handing the
due customers of a partition to the tick that reached it.

The source of truth is `due_at` inside each changelogged state; the in-memory index (one per
partition) is rebuilt from the table after every assignment change, so a restart or rebalance
makes due work late, never lost. A customer leaves the index only when the tick of its partition
is handled (in the transaction that commits the tick), so a lost or aborted tick loses nothing:
the next round ticks the partition again.

Due work never runs ahead of its partition's input. A tick is read at once, but the events
written before it may still wait in a backlog (after an outage, a rebalance, a slow stretch),
and one of them can make a due action moot (seen: a payment reminder for an order paid in the
backlog). So a tick that is read waits until every input of its partition is read up to where
that input ended at that moment; then its due work runs in the transaction of the record that
got it there (any record of the partition shares that transaction). "Where it ended" is an end
a fetch answer told after the tick was written, never an older one still held: after a broker
restart (an input answering NOT_LEADER for a while, most likely) its end from before the outage
let a payment reminder pass the payment (CI, 2026-12-04). A tick whose input is read up with no
record of the partition after it gets a new tick within FOLLOW_UP_SECONDS, which runs it.

The end it waits for is heard after the tick was written, and records written after the tick can
still be older, in event time, than the tick's `now`: a storefront's backlog sent after an outage.
The end can fall between two of a customer's records (an order placed, then paid, in that
backlog), and the due work ran between them: a payment reminder passed its payment (CI,
2026-12-07, after a broker restart). So a customer due by the tick's time who was handled after
the tick was read is left due for the next tick, by which its records written alongside have been
read; its own records run what falls due up to their time meanwhile.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any, NamedTuple

import faust
from faust.types import TP

from remarket.domain.state import CustomerState, StateFacts
from remarket.domain.store import StoreTrends
from remarket.shell.fetch_sessions import FetchMark
from remarket.shell.metrics import Metrics
from remarket.shell.observe import Observer
from remarket.shell.pipeline import Pipeline, owner_partition
from remarket.shell.schedule import DueIndex
from remarket.shell.state_cache import StateCache
from remarket.shell.store import PartitionedStore
from remarket.shell.ticks import tick_value

log = logging.getLogger("remarket.worker")


WAITING_LOG_SECONDS = 30.0

REBUILD_TURN_SECONDS = 0.01
"""How long the index rebuild's table scan runs before the event loop gets a turn. The scan
decoded every state the worker holds (50-80 µs each): ~4,000 customers held the loop for 163 ms,
1,000,000 would hold it for about a minute, with the web views (the liveness probe) unanswered.
(It now decodes only what it reads, StateFacts, written first in each state's JSON, straight from
the store: ~18 µs per state in a worker, 18 s for 1,000,000 customers.)"""


FOLLOW_UP_SECONDS = 0.05
"""How often the ticks that wait for their input are looked at between rounds: one whose input
was read up with no record after it (an idle partition, a backlog that ended in transaction
markers, an end heard only after its last record) gets a new tick then, not a round later."""


class WaitingTick(NamedTuple):
    now: datetime
    ends: dict[TP, int | None]  # where each input ended when the tick was read; None: not heard since
    since: float  # monotonic, when read
    behind: set[TP]  # the inputs not known to be read up yet
    mark: FetchMark | None  # what an end must be heard after to count (delivery's fetch_mark)
    handled_since: set[str]  # customers due by `now` handled since it was read: left for the next tick


class DueWork:
    def __init__(self, app: faust.App, store: PartitionedStore, states: StateCache, pipeline: Pipeline,
                 metrics: Metrics, observer: Observer, ticks_topic: str,
                 handling_lock: asyncio.Lock | None = None) -> None:
        self.app, self.store, self.states, self.pipeline = app, store, states, pipeline
        # held by the record handler per record (the sink's lock): the rebuild holds records off with it
        self.handling_lock = handling_lock or asyncio.Lock()
        self.metrics, self.observer, self.ticks_topic = metrics, observer, ticks_topic
        self.partitions = pipeline.catalog.partitions
        self.index: dict[int, DueIndex] = {}
        self._in_flight: dict[int, int] = {}  # partition -> offset of its tick not handled yet
        self._indexed_assignment: frozenset | None = None
        self._indexing = asyncio.Lock()  # one rebuild per assignment change, whoever asks first
        catalog = pipeline.catalog
        self._input_topics = (*(spec.name for spec in catalog.inputs), catalog["rerouted"].name)
        self.waiting: dict[int, WaitingTick] = {}  # partition -> its tick read ahead of its input
        self._waits_logged = 0.0

    def schedule(self, customer_id: str, due_at: datetime | None) -> None:
        partition = owner_partition(customer_id.encode(), self.partitions)
        index = self.index.get(partition)
        if index is None:
            index = self.index[partition] = DueIndex()
        index.set(customer_id, due_at)

    def take_due(self, partition: int, now: datetime) -> list[tuple[str, datetime]]:
        """The customers of `partition` due by `now`, for the tick being run (they are
        scheduled again from their new state). The tick in flight is settled by `tick_read`."""
        index = self.index.get(partition)
        return index.pop_due(now) if index is not None else []

    def tick_read(self, partition: int, now: datetime) -> None:
        """A tick of `partition` was read: its due work waits for the partition's input to be read
        up to where it ends now. An older tick still waiting goes first (a later one would move the
        mark on with every event, and a busy partition would never get its due work)."""
        self._in_flight.pop(partition, None)
        if partition not in self.waiting:
            mark = self.app.consumer.fetch_mark(TP(self.ticks_topic, partition))
            tps = [TP(topic, partition) for topic in self._input_topics]
            waiting = self.waiting[partition] = WaitingTick(now, dict.fromkeys(tps), time.monotonic(), set(tps), mark,
                                                            set())
            self._read_up(waiting)  # takes each end heard since the tick; what is read up is not waited for

    def take_ready(self, partition: int, handled: tuple[Any, int] | None = None, customer: str | None = None
                   ) -> tuple[datetime, list[tuple[str, datetime]]] | None:
        """The tick of `partition` and its due customers, once its input is read up; else None.
        `handled`: (tp, offset) of the record being handled now, which counts as read, and
        `customer` the one it was about (scheduled already). With it only that input is looked at
        (a backlog's every record asks: it must cost next to nothing); an input read up without a
        record (transaction markers) is found by the next round's check. Customers handled since
        the tick was read stay due for the next tick (the module's docstring says why)."""
        waiting = self.waiting.get(partition)
        if waiting is None:
            return None
        if customer is not None and (index := self.index.get(partition)) is not None \
                and index.due_by(customer, waiting.now):  # only those the tick would take: a bounded set
            waiting.handled_since.add(customer)
        if handled is None:
            if not self._read_up(waiting):
                return None
        else:
            tp, offset = handled
            behind = waiting.behind
            if tp in behind:
                end = waiting.ends[tp]
                if end is None:  # not heard when the tick was read: asked until it is
                    end = waiting.ends[tp] = self.app.consumer.input_progress(tp, waiting.mark)[0]
                if end is not None and offset + 1 >= end:
                    behind.discard(tp)
            if behind:
                return None
        del self.waiting[partition]
        due = self.take_due(partition, waiting.now)
        if waiting.handled_since and due:
            handled_since, index, taken = waiting.handled_since, self.index[partition], []
            for customer, at in due:
                if customer in handled_since:
                    index.set(customer, at)  # back in the index: the next round ticks the partition again
                else:
                    taken.append((customer, at))
            due = taken
        return waiting.now, due

    def _read_up(self, waiting: WaitingTick) -> bool:
        """Every input of the tick's partition read up to where it ended when the tick was read."""
        progress = self.app.consumer.input_progress
        for tp in list(waiting.behind):
            end, (heard_end, read) = waiting.ends[tp], progress(tp, waiting.mark)
            if end is None:  # no answer heard after the tick had told it yet: the first that does
                end = waiting.ends[tp] = heard_end
            if end is not None and read is not None and read >= end:
                waiting.behind.discard(tp)
        return not waiting.behind

    def __len__(self) -> int:
        return sum(len(index) for index in self.index.values())

    async def fire(self) -> None:
        """Rebuild the index if the assignment changed, then tick every partition with work due."""
        if not await self.index_current():
            return  # a rebalance began: the next round scans what this worker holds then
        now = datetime.now(timezone.utc)
        due = []
        for partition, index in self.index.items():
            earliest = index.earliest()
            if earliest is None or earliest > now or self._on_its_way(partition):
                continue
            due.append(partition)
        await self._send_ticks(due, now)
        self._log_long_waits()
        self.metrics.pending_customers.set(len(self))

    def index_stale(self) -> bool:
        return frozenset(self.app.assignor.assigned_actives()) != self._indexed_assignment

    async def index_current(self) -> bool:
        """Rebuild the index if the assignment changed since it was built. Whether it is current
        (False: a rebalance began during the scan). Asked by each round and, so that records are
        not held off until the next round (up to a tick interval), as soon as the worker is ready
        after an assignment change (app.py)."""
        async with self._indexing:
            assignment = frozenset(self.app.assignor.assigned_actives())
            if assignment != self._indexed_assignment:
                if not await self.rebuild():
                    return False
                self._indexed_assignment = assignment
            return True

    async def follow_up(self) -> None:
        """A waiting tick whose input is read up with no record of the partition after it gets
        a new tick now, not at the next round (FOLLOW_UP_SECONDS)."""
        if self.waiting:
            await self._send_ticks([p for p in list(self.waiting) if not self._on_its_way(p)],
                                   datetime.now(timezone.utc))

    async def _send_ticks(self, partitions: list[int], now: datetime) -> None:
        pending = []
        for partition in partitions:
            pending.append((partition, await self.app.producer.send(
                self.ticks_topic, None, tick_value(now, partition), partition, None, None)))
        for partition, fut in pending:
            try:  # plain producer: ticks are idempotent and must be visible now, not at commit
                self._in_flight[partition] = (await fut).offset
            except Exception as exc:  # not written: the next round ticks the partition again
                log.warning("tick for partition %d not sent (%s): again next round", partition, exc)
        self.metrics.ticks.labels("sent").inc(len(pending))

    def _log_long_waits(self) -> None:
        """Due work held back by a backlog is expected; held back for long, on-call should see why."""
        now = time.monotonic()
        if now - self._waits_logged < WAITING_LOG_SECONDS:
            return
        progress = self.app.consumer.input_progress
        for partition, waiting in self.waiting.items():
            if now - waiting.since >= WAITING_LOG_SECONDS:
                self._waits_logged = now
                log.warning("due work of partition %d has waited %.0f s for its input to be read up: %s", partition,
                            now - waiting.since, ", ".join(
                                f"{tp.topic} read {progress(tp, waiting.mark)[1]} of "
                                + (str(end) if end is not None else "an end no fetch has told since the tick")
                                for tp, end in waiting.ends.items()))

    def _on_its_way(self, partition: int) -> bool:
        """A tick of the partition was written and the worker has not read that far on the ticks
        topic yet, or one was read and waits for the partition's input: no second one behind it.
        Not a timer: after an outage a backlog takes its time."""
        offset = self._in_flight.get(partition)
        if offset is not None:
            read = self.observer.processed_offsets.get(TP(self.ticks_topic, partition))
            if read is None or read < offset:
                return True
        # a tick waiting for its input: none behind it, unless the input is read up and no record
        # of the partition came since to run it (the next tick does)
        waiting = self.waiting.get(partition)
        return waiting is not None and not self._read_up(waiting)

    async def rebuild(self) -> bool:
        """Scan this worker's table partitions once per assignment change (never per tick): the due
        index, the segment gauges and the store-wide view come from the same scan. Whether it
        ended; nothing is replaced unless it did.

        No record is handled meanwhile (the handler's lock is held: no state, due time or store
        contribution changes under the scan), but the event loop gets a turn every
        REBUILD_TURN_SECONDS, so the web views, the metrics and the timers answer during a long
        scan. A rebalance that begins meanwhile stops it at the next turn, before the table's
        partitions are closed or opened under it."""
        async with self.handling_lock:
            return await self._rebuild()

    def _rebalancing(self) -> bool:
        return bool(getattr(self.app, "rebalancing", False))  # set by faust's consumer at once

    async def _rebuild(self) -> bool:
        if self._rebalancing():
            return False
        started = time.perf_counter()
        due: defaultdict[int, dict[str, datetime]] = defaultdict(dict)  # partition -> customer -> due time
        held = 0
        segments: Counter[tuple[str, str]] = Counter()
        store = StoreTrends(self.pipeline.policy)  # store-wide knowledge is derived from the states held

        def hold(partition: int | None, key: bytes, state: CustomerState | StateFacts) -> None:
            nonlocal held
            held += 1
            if state.due_at is not None:
                if partition is None:
                    partition = owner_partition(key, self.partitions)
                due[partition][key.decode()] = state.due_at
            store.add(state)
            if (segment := self.pipeline.segment(state)) is not None:
                segments[segment] += 1

        # RocksDB has what committed; the write cache what was handled since (seen: reminders of
        # customers handled between the last commit and a rebalance never fired). A commit that
        # ends during the scan moves states from the second to the first: both read the same.
        uncommitted = dict(self.states.uncommitted())
        turn_ended = time.perf_counter()
        for partition, key, raw in self.store.scan():
            if raw and key not in uncommitted:
                hold(partition, key, StateFacts.from_bytes(raw))  # what the index, store view and gauges read
            if time.perf_counter() - turn_ended >= REBUILD_TURN_SECONDS:
                await asyncio.sleep(0)
                if self._rebalancing():
                    log.info("due-work index rebuild stopped after %d customers: a rebalance began", held)
                    return False
                turn_ended = time.perf_counter()
        for key, state in uncommitted.items():
            if state is not None:
                hold(None, key, state)
        self.pipeline.store = store
        self.index = {partition: DueIndex.of(customers) for partition, customers in due.items()}
        self._in_flight.clear()
        self.waiting.clear()
        self.observer.reset_segments(segments)
        took = time.perf_counter() - started
        self.metrics.index_rebuilds.inc()
        self.metrics.index_rebuild_seconds.set(took)
        log.info("due-work index rebuilt in %.0f ms (records waited meanwhile): %d customers scheduled of %d",
                 1000 * took, len(self), held)
        return True
