"""Batch delivery: the worker's records go from faust's fetch loop straight to the handler.

faust hands every record to its agent through the conductor, a channel queue, the stream and
the ack path, awaiting each one with mode's `wait_first(callback(message), suspend_flow.wait())`,
which creates and cancels several asyncio Tasks per record: ~220 µs of CPU per record before any
work is done (docs/benchmarks.md). Here the consumer's fetch loop takes each fetched batch of the
worker's own topics and awaits the handler for one record after another, checking flow control
and the consumer generation before each, and acks each record once its outcome was handed to
the producer, as faust's stream would. Offsets, gaps, commits, `wait_empty` on rebalance and
shutdown keep working because they only look at what is tracked and acked. Records of any other
topic (changelogs read by faust's recovery or standbys) still take faust's own path.

A record that arrives after its partition's flow was suspended, or after the generation changed,
is not handled and its read offset does not move: it is fetched again after faust's seek to
the committed offset (faust's own loop moves the read offset past a record whose delivery the
suspension cancelled).

Private API of faust-streaming 0.15 (`Consumer._drain_messages`, `_wait_next_records`,
`_read_offset`, `_unacked_messages`, `_add_gap`, `_n_acked`, `_acked`, `_acked_index`,
`_committed_offset`, `_waiting_for_ack`, `_new_consumer_thread`), mode-streaming 0.7's
ServiceThread (`_serve`, `_thread_started`, `_thread_running`, `_gather_remaining_tasks`) and
aiokafka 0.14 (`AIOKafkaConsumer._fetch_max_wait_ms`): faust is pinned, and the crash,
scale-out and rebalance tests fail if this breaks. It is one of the two modules that reach into
faust's internals (the other is `transactions`); `fetch_sessions` reaches into aiokafka's fetcher.
"""
from __future__ import annotations

import asyncio
from time import monotonic, perf_counter
from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol

from aiokafka.structs import TopicPartition
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustAIOKafkaConsumer
from faust.types import TP
from mode import Service
from mode.utils.futures import maybe_async, notify

from remarket.shell.fetch_sessions import FetchMark, Gathering, fetch_in_sessions
from remarket.shell.pipeline import SourceRecord

Handler = Callable[[Any], Awaitable[Any]]

FETCH_MAX_WAIT_MS = 100
"""How long the broker may hold a fetch that finds no new records (faust: 1,500 ms).

aiokafka sends one fetch at a time to a broker, and leaves out the partitions whose fetched
records are still waiting to be handled. When handling a batch takes over 100 ms (its prefetch
backoff) — a commit, a busy CPU — the next fetch asks only for partitions without new records
(ticks, rerouted) and the broker holds it for the whole wait, while the input records that
arrived meanwhile cannot be fetched: actions came in bursts every ~1.6 s, and at 150 events/s
the exactly-once p50 latency went from ~0.1 s to ~1.3 s, for the rest of the run
(docs/benchmarks.md). Bounding the wait bounds that stall; an idle worker sends ~10 fetches a
second per broker."""


TURN_AFTER_SECONDS = 0.002
"""How long records are handled in a row before the event loop gets a turn. Handling a record
never waits (the lock is free, a send only appends to the producer's buffer), so a fetched batch
of hundreds of records held the loop for its whole length: the producer could not send the
actions already decided, the commit timer could not start a commit, and broker answers to the
commit under way waited (AddPartitionsToTxn took 73 ms on average at 528 events/s). A turn costs
~10 µs."""


class _InFlight:
    """Stands in faust's unacked messages for a batch being handled (wait_empty waits for it)."""

    __slots__ = ("acked", "refcount", "__weakref__")

    def __init__(self) -> None:
        self.acked, self.refcount = False, 1


class CommitHooks(Protocol):
    """What a commit must carry besides offsets (the worker's state cache: shell.transactions)."""

    lock: asyncio.Lock  # held by the handler per record, and here while a commit chooses what it covers
    commit_lock: asyncio.Lock  # one commit at a time, start to end

    def holds_handling(self, start_new_transaction: bool) -> bool: ...  # hold `lock` until the commit ends

    async def before_commit(self, offsets: Mapping[TP, int]) -> Any: ...

    async def while_handling(self, prepared: Any) -> None: ...

    def after_commit(self, prepared: Any, committed: bool) -> None: ...

    async def resume(self) -> None: ...  # the commit is over, whether it committed or failed


def consumer_class(handler: Handler, topics: Iterable[str], hooks: CommitHooks, fetch_sessions: bool = True,
                   fetch_min_bytes: int = 1, fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS,
                   fetch_gathering: Gathering | None = None) -> type[FaustAIOKafkaConsumer]:
    """faust's aiokafka consumer, delivering records of `topics` to `handler` in batches."""
    return type("BatchDeliveryConsumer", (BatchDeliveryConsumer,),
                {"handler": staticmethod(handler), "handled_topics": frozenset(topics), "hooks": hooks,
                 "fetch_sessions": fetch_sessions, "fetch_min_bytes": fetch_min_bytes,
                 "fetch_max_wait_ms": fetch_max_wait_ms, "fetch_gathering": fetch_gathering})


def install(app: Any, handler: Handler, topics: Iterable[str], hooks: CommitHooks, fetch_sessions: bool = True,
            fetch_min_bytes: int = 1, fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS,
            fetch_gathering: Gathering | None = None) -> None:
    """Make `app` create its consumer as a batch-delivery consumer (before it creates one)."""
    if app._consumer is not None:
        raise RuntimeError("the app's consumer exists already: install batch delivery before it starts")
    app.transport.Consumer = consumer_class(handler, topics, hooks, fetch_sessions, fetch_min_bytes,
                                            fetch_max_wait_ms, fetch_gathering)


class _ConsumerInLoop(AIOKafkaConsumerThread):
    """faust's consumer "thread", run as tasks of the worker's event loop instead of a thread.

    faust runs its aiokafka consumer in a thread with an event loop of its own and hands each
    fetch across (a method queue, a future resolved from the other loop, a self-pipe write to
    wake it). Under the GIL the two threads never run Python at once, so the thread bought no
    parallelism; it cost the hand-over and the wait for the GIL at every step: records were
    17-21 ms old when handled at 840 events/s, an echo process of the same CPU per event
    delivered in 7 ms (docs/benchmarks.md). Here the same service runs in the worker's loop, and
    a call into it is a plain await. The consumer's fetcher and heartbeat are tasks of that loop,
    which the handler leaves every TURN_AFTER_SECONDS.

    mode's ServiceThread, started without its thread: `_serve` (start, wait until stopped, shut
    down) runs as a task; it must not sweep the loop's remaining tasks as a thread's own loop's
    are swept (they are the worker's).
    """

    def __init__(self, consumer: Any, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(consumer, loop=loop, thread_loop=loop, **kwargs)  # a loop given: never closed here
        self._serving: asyncio.Task | None = None

    async def start(self) -> None:
        assert not self._thread_started.is_set()
        self._thread_started.set()
        self._thread_running = self.parent_loop.create_future()
        self._serving = self.parent_loop.create_task(self._serve())
        self._serving.add_done_callback(_retrieve_exception)  # a crash reaches faust through crash()
        try:
            if not self.should_stop:
                await self._thread_running
        finally:
            self._thread_running = None

    async def _gather_remaining_tasks(self) -> None:  # the worker's tasks: not ours to cancel
        return None

    async def call_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await maybe_async(fun(*args, **kwargs))  # as mode's method queue: sync or async

    async def _fetch_records(self, consumer: Any, active_partitions: Any, timeout: float | None = None,
                             max_records: int | None = None) -> Any:
        records = await super()._fetch_records(consumer, active_partitions, timeout=timeout, max_records=max_records)
        # aiokafka's position is past these records now: until each is handled, its partition is
        # read only up to it (input_progress), with no turn of the loop in between in which due
        # work could find the input read up and run ahead of a record not handled yet
        self.consumer.handed_over(records)
        return records

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.consumer.fetch_max_wait_ms  # read when it starts its fetcher
        consumer._fetch_min_bytes = self.consumer.fetch_min_bytes
        # notes every answer's ends, with sessions or without
        fetch_in_sessions(consumer, self.consumer.fetch_sessions, self.consumer.fetch_gathering)
        self.consumer.kafka = consumer  # read by input_progress
        return consumer


def _retrieve_exception(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()


class BatchDeliveryConsumer(FaustAIOKafkaConsumer):
    handler: Handler
    handled_topics: frozenset[str] = frozenset()
    hooks: CommitHooks
    fetch_sessions: bool = True
    fetch_min_bytes: int = 1
    fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS
    fetch_gathering: Gathering | None = None
    kafka: Any = None  # the aiokafka consumer (shell.delivery._ConsumerInLoop)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unhandled: dict[TP, int] = {}  # the fetch being delivered: each partition's first record not handled

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        """faust's pause is its own bookkeeping (the partitions are left out of what it takes from
        aiokafka), and aiokafka went on fetching them. Its changelog partitions stay assigned and
        paused after recovery: once the worker's first commit wrote to them, aiokafka fetched
        those records, nobody took them, and aiokafka held every fetch to that broker for its
        prefetch backoff (100 ms) while input records waited: the backlog took ~0.5 s to drain and
        made the first second of every worker's life its slowest (docs/benchmarks.md, 2026-12-08).
        aiokafka pauses them too, so it fetches only what faust takes."""
        super().pause_partitions(tps)
        self._pause_in_aiokafka()

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        super().resume_partitions(tps)
        self._pause_in_aiokafka()

    def _pause_in_aiokafka(self) -> None:
        """aiokafka's paused partitions: faust's, of those assigned (aiokafka forgets a pause when
        the assignment changes, and faust pauses and resumes again as it recovers)."""
        kafka = self.kafka
        if kafka is None:
            return
        assigned = kafka.assignment()
        paused = {TopicPartition(tp.topic, tp.partition) for tp in self._paused_partitions} & assigned
        if resumed := kafka.paused() - paused:
            kafka.resume(*resumed)
        if newly := paused - kafka.paused():
            kafka.pause(*newly)

    def fetch_mark(self, tp: TP) -> FetchMark | None:
        """What an input's end must be heard after to count every record written before the
        last record of `tp` read (shell.fetch_sessions.FetchMark); None before the consumer runs."""
        fetcher = getattr(self.kafka, "_fetcher", None)
        return fetcher.mark(tp) if fetcher is not None and hasattr(fetcher, "ends_heard") else None

    def input_progress(self, tp: TP, mark: FetchMark | None) -> tuple[int | None, int | None]:
        """(where `tp`'s log ended as a fetch answer heard after `mark` told it, how far it is read
        with every record handled), None where not known. The end is the last stable offset under
        exactly-once (what a read_committed consumer can reach); the read position is aiokafka's,
        which steps over transaction markers, or the record being handled while a fetch is
        delivered. An end heard before the mark does not count: it may be from before an outage."""
        kafka = self.kafka
        subscription = kafka._subscription.subscription if kafka is not None else None
        assignment = subscription.assignment if subscription is not None else None
        state = assignment.state_value(tp) if assignment is not None else None
        if state is None:  # not assigned (any more)
            return None, None
        end = None
        heard = kafka._fetcher.ends_heard.get(tp) if mark is not None else None
        if heard is not None and mark.passed_by(heard):
            end = heard.lso if self.in_transaction else heard.highwater
        read = self._unhandled.get(tp)
        if read is None and state.has_valid_position:
            read = state.position
        return end, read

    def handed_over(self, records: Mapping[TP, list[Any]]) -> None:
        """aiokafka handed these records over (its read position is past them): until each is
        handled, input_progress counts its partition as read up to its first record."""
        self._unhandled.update((tp, batch[0].offset) for tp, batch in records.items()
                               if batch and tp.topic in self.handled_topics)

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ConsumerInLoop(self, loop=self.loop, beacon=self.beacon)

    _commit_holds_handling = False

    @Service.task
    async def _commit_handler(self) -> None:
        """faust's commit timer, with the interval from the start of one commit to the start of
        the next. faust's (mode's Timer) sleeps the whole interval after each commit, so commits
        came every interval plus commit: every ~88 ms at a 50 ms interval and 34 ms commits
        (840 events/s, exactly-once), and under exactly-once an action waits for its commit.
        A commit that takes longer than the interval is followed by the next at once."""
        interval = self.commit_interval
        await self.sleep(interval)
        while not self.should_stop:
            started = monotonic()
            await self.commit()
            await self.sleep(max(0.0, interval - (monotonic() - started)))

    async def force_commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        """A commit chooses its offsets with record handling held off, so they cover exactly the
        records handled so far and every state those changed. Then handling goes on: encoding
        the states and the broker round trips of the commit (the producer flush and the offset
        commit; under exactly-once TxnOffsetCommit and EndTxn of every partition) are time that
        records would otherwise wait for. Under exactly-once the outputs of records handled
        meanwhile wait for the next transaction (shell.transactions, `resume`), since those
        records are not in the offsets being committed."""
        hooks = self.hooks
        async with hooks.commit_lock:  # faust's commit() serialises its own callers only
            await hooks.lock.acquire()
            self._commit_holds_handling = True
            try:
                return await super().force_commit(topics, start_new_transaction=start_new_transaction)
            finally:
                self._let_handling_go_on()

    def _let_handling_go_on(self) -> None:
        if self._commit_holds_handling:
            self._commit_holds_handling = False
            self.hooks.lock.release()

    async def _commit_offsets(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        assignment = self.assignment()
        hooks = self.hooks
        prepared = await hooks.before_commit({tp: o for tp, o in offsets.items() if tp in assignment})
        try:
            if not hooks.holds_handling(start_new_transaction):
                self._let_handling_go_on()
            await hooks.while_handling(prepared)
            committed = await super()._commit_offsets(offsets, start_new_transaction=start_new_transaction)
            hooks.after_commit(prepared, committed)
            return committed
        finally:
            await hooks.resume()

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in the worker
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                await self.sleep(0)  # a fetch can return at once, again and again: let others run
                if records and not self.should_stop and self.flow_active:
                    await self._deliver(records, active)
                else:
                    self._unhandled.clear()  # not delivered: read again after the seek (or never)
                    if records and not self.should_stop:  # as faust: fetched while suspended
                        await self.perform_seek()
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, records: dict[TP, list[Any]], active: set[TP] | None) -> None:
        generation = self.app.consumer_generation_id
        monitor = self.app.monitor
        unhandled = self._unhandled  # the fetch's first records (handed_over): aiokafka's position is past them
        try:
            for tp, batch in records.items():
                if not self.flow_active or self.app.consumer_generation_id != generation:
                    return
                if active is not None and tp not in active and tp not in self._buffered_partitions:
                    continue
                monitor.track_tp_end_offset(tp, self.highwater(tp))
                if tp.topic in self.handled_topics:
                    handled, last = await self._handle_batch(tp, batch, generation)
                    if handled:
                        count_received(monitor, tp, handled, last)
                    unhandled.pop(tp, None)
                else:
                    await self._faust_path(tp, batch)
        finally:
            unhandled.clear()

    async def _handle_batch(self, tp: TP, batch: list[Any], generation: int) -> tuple[int, int]:
        """Each record to the handler as a `SourceRecord`, acked as faust's `ack` would once handled.

        faust's ConsumerMessage (14 fields, made per record) and its `ack` (a lock, a topic look-up,
        a weak set) were ~3 % of the samples and ~10 % of the CPU (docs/benchmarks.md): here the
        look-ups are made once per batch and each record's ack is its bookkeeping alone. wait_empty
        (before a rebalance or a stop) waits while the batch is in flight, as it waited for each
        unacked message: the batch stops at the first record after the flow was suspended."""
        handler, unhandled, read_offset = self.handler, self._unhandled, self._read_offset
        acks_enabled = self.app.topics.acks_enabled_for(tp.topic)
        committed = self._committed_offset[tp]
        acked_index, acked = self._acked_index[tp], self._acked[tp]
        commit_every = self._commit_every
        in_flight = _InFlight()
        self._unacked_messages.add(in_flight)
        handled = last = 0
        turn_ended = perf_counter()
        try:
            for record in batch:
                if perf_counter() - turn_ended >= TURN_AFTER_SECONDS:
                    await asyncio.sleep(0)  # sends, the commit, broker answers: then on, if still ours
                    turn_ended = perf_counter()
                if not self.flow_active or self.app.consumer_generation_id != generation:
                    break  # the rest is fetched again after the rebalance's seek
                offset = record.offset
                r_offset = read_offset[tp]
                if r_offset is not None and offset < r_offset:
                    continue  # read already: faust drops these too
                if r_offset and offset - r_offset > 1 and acks_enabled:
                    await self._add_gap(tp, r_offset + 1, offset)  # transaction markers, compaction
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                    committed = self._committed_offset[tp]
                unhandled[tp] = offset
                timestamp = record.timestamp
                await handler(SourceRecord(tp.topic, tp.partition, offset, record.key, record.value,
                                           record.headers or (), None if timestamp is None else timestamp / 1000.0, tp))
                # faust's Consumer.ack, with no await since the handler returned: a commit chooses
                # its offsets with handling held off, so it sees this record acked
                if acks_enabled and (committed is None or offset >= committed) and offset not in acked_index:
                    acked_index.add(offset)
                    acked.append(offset)
                    self._n_acked += 1
                read_offset[tp] = last = offset
                handled += 1
        finally:
            in_flight.acked = True
            self._unacked_messages.discard(in_flight)
            notify(self._waiting_for_ack)
        return handled, last

    async def _faust_path(self, tp: TP, batch: list[Any]) -> None:
        """faust's own per-record delivery (its `_drain_messages`), for topics not handled here."""
        callback, read_offset = self.callback, self._read_offset
        for record in batch:
            if not self.flow_active:
                return
            offset = record.offset
            r_offset = read_offset[tp]
            if r_offset is None or offset >= r_offset:
                if r_offset and offset - r_offset > 1 and self.app.topics.acks_enabled_for(tp.topic):
                    await self._add_gap(tp, r_offset + 1, offset)
                await self.wait_first(callback(self._to_message(tp, record)), self.suspend_flow.wait())
                read_offset[tp] = offset


def count_received(monitor: Any, tp: TP, records: int, last_offset: int) -> None:
    """What faust's monitor counts per record on the way in, once per batch."""
    monitor.messages_received_total += records
    monitor.messages_received_by_topic[tp.topic] += records
    monitor.tp_read_offsets[tp] = last_offset
    monitor.stream_inbound_time[tp] = monotonic()  # faust's livelock detector: the stream is alive
    metrics = getattr(monitor, "_metrics", None)
    if metrics is not None:  # faust's Prometheus monitor (shell.faust_metrics)
        metrics.messages_received.inc(records)
        metrics.messages_received_per_topics.labels(topic=tp.topic).inc(records)
        metrics.messages_received_per_topics_partition.labels(topic=tp.topic, partition=tp.partition).set(last_offset)



