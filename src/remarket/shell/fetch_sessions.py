"""Incremental fetch sessions (KIP-227) for aiokafka's fetcher.

aiokafka sends one fetch at a time to a broker, and live traffic makes the broker answer each as
soon as one record is there: ~145 fetches a second at 150 events/s. Without a session every fetch
names every assigned partition (29 for one worker of the production catalog: the input topics,
ticks, rerouted, the changelog, faust's assignor topic) and every answer lists them all. With a
session, a request names only the partitions whose fetch position changed (and those to drop), and
an answer only the partitions with records, an error or a changed high watermark. Measured
(docs/benchmarks.md, "Incremental fetch sessions"): the worker's and the broker's CPU are
unchanged, and p99 latency was lower in 7 of 8 alternating pairs, most under exactly-once.

What the session must keep true, as Kafka's own Java consumer (`FetchSessionHandler`) does:
- the broker's copy of each partition's fetch offset is the one last sent: a partition whose
  position moved is sent again, one no longer fetched (its records wait to be handled, or it is
  gone) is sent as forgotten;
- requests follow one another with epochs 1, 2, ... (aiokafka never has two fetches in flight to
  one broker); any request whose answer was not read (an error, a cancelled fetch) ends the
  session, and the next request opens a new one with every partition;
- an answer with a session error (the broker restarted or evicted the session) is not data: the
  same fetch is sent again at once as a full request.

Sessions or not, every fetch answer's partition ends are noted with the answer that told them
(`ends_heard`): due work must know where an input ended *after* a tick was written, and the end
aiokafka keeps is simply the last one heard, however old: after a broker restart a payment
reminder passed an order paid in the backlog (CI, 2026-12-04), most likely because the ticks
partition answered while the orders partition still answered NOT_LEADER.

Fetches gather while records flow (`Gathering`): after an answer that brought records, the next
fetch to that broker asks it to wait until `min_bytes` have come or `max_wait_ms` passed; after an
empty answer, the consumer's own minimum (1 byte: answer at the first record) and long wait. A live
stream at 1,600 events/s made ~1,600 fetches a second, one record each, and every answer woke the
worker, the broker and the handler for one record; an idle worker still long-polls as before.

Private API of aiokafka 0.14 (`Fetcher._proc_fetch_request`, `Fetcher._client`, `TopicPartition
State.timestamp`): aiokafka is pinned below 0.15, and tests/integration/test_fetch_sessions.py
fails if this breaks. The records are still handled by aiokafka's own code.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.errors import FetchSessionIdNotFound, InvalidFetchSessionEpoch, for_code
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)

NO_SESSION = 0  # the session id of a request that opens a session, and of an answer that declines one
OPEN_EPOCH = 0  # the epoch of a request that opens a session
LAST_EPOCH = 2**31 - 1
FIRST_SESSION_VERSION = 7  # Fetch v7 brought sessions (Kafka 1.1)
SESSION_ERRORS = frozenset({FetchSessionIdNotFound.errno, InvalidFetchSessionEpoch.errno})

Position = tuple[int, int]  # fetch offset, max bytes


class HeardEnd(NamedTuple):
    """A partition's log end as a fetch answer told it, or confirmed it unchanged by leaving it
    out of an incremental answer. The broker computes the ends of an answer when it sends it, so
    they count every record written before the answer's records and before the fetch was sent.
    (A NamedTuple: one is made per partition per answer, ~25 a fetch; a frozen dataclass costs
    1.0 µs to make, this 0.4.)"""

    node_id: int
    answer: int  # that broker's answers counted (one fetch at a time per broker: a later one knows more)
    asked_at: float  # time.monotonic() when the fetch was sent
    highwater: int
    lso: int | None


@dataclass(frozen=True, slots=True)
class FetchMark:
    """What an end must have been heard after to count every record written before a record
    that was read: the answer that brought that record (or a later one from its broker), or,
    from another broker, a fetch sent after it was read."""

    node_id: int | None
    answer: int
    read_at: float

    def passed_by(self, heard: HeardEnd | None) -> bool:
        if heard is None:
            return False
        return (heard.node_id == self.node_id and heard.answer >= self.answer) or heard.asked_at >= self.read_at


@dataclass(frozen=True, slots=True)
class Gathering:
    """How a fetch asks when its broker's last answer brought records (see the module's doc)."""

    min_bytes: int
    max_wait_ms: int

    def applied_to(self, request: FetchRequest) -> FetchRequest:
        """The same fetch, asking to wait for `min_bytes` or `max_wait_ms`."""
        return FetchRequest(self.max_wait_ms, self.min_bytes, request._max_bytes, request._isolation_level,
                            request._topics, rack_id=request._rack_id)


@dataclass
class FetchSession:
    """The client's side of one broker's fetch session: its id, the next epoch, and the fetch
    position the broker holds for each partition in it."""

    session_id: int = NO_SESSION
    epoch: int = OPEN_EPOCH
    partitions: dict[TopicPartition, Position] = field(default_factory=dict)
    opened: int = 0  # sessions opened, for tests and logs
    incremental_requests: int = 0
    ends: dict[TopicPartition, tuple[int, int | None]] = field(default_factory=dict)  # last heard (highwater, lso)

    def next_request(self, wanted: dict[TopicPartition, Position]) -> "SessionPlan":
        """What to send to fetch `wanted` (every partition this fetch is for, with its position):
        all of it to open a session, else what changed and what to forget."""
        if self.epoch == OPEN_EPOCH:
            return SessionPlan(NO_SESSION, OPEN_EPOCH, dict(wanted), [], dict(wanted))
        held = self.partitions
        changed = {tp: pos for tp, pos in wanted.items() if held.get(tp) != pos}
        forgotten = [tp for tp in held if tp not in wanted]
        return SessionPlan(self.session_id, self.epoch, changed, forgotten, dict(wanted))

    def answered(self, plan: "SessionPlan", session_id: int) -> None:
        """The broker answered `plan` without a session error."""
        if plan.epoch == OPEN_EPOCH:
            if session_id == NO_SESSION:  # the broker declined (its session cache is full): ask again next time
                self.reset()
                return
            self.session_id = session_id
            self.opened += 1
        else:
            self.incremental_requests += 1
        for tp in plan.forget:  # its end as heard then says nothing of it once fetched again
            self.ends.pop(tp, None)
        self.partitions = plan.positions
        self.epoch = 1 if self.epoch >= LAST_EPOCH else self.epoch + 1

    def reset(self) -> None:
        """Forget the session: the next request opens a new one."""
        self.session_id = NO_SESSION
        self.epoch = OPEN_EPOCH
        self.partitions = {}
        self.ends = {}


@dataclass(frozen=True)
class SessionPlan:
    session_id: int
    epoch: int
    send: dict[TopicPartition, Position]  # partitions named in the request
    forget: list[TopicPartition]
    positions: dict[TopicPartition, Position]  # what the session holds once answered


class SessionFetchRequest(FetchRequest):
    """aiokafka's fetch request, sent within a session. `topics` still lists every partition of
    the fetch with its position: aiokafka's response handling looks up the position a partition
    was fetched at there, and an incremental answer may carry any partition of the session."""

    def __init__(self, base: FetchRequest, session: FetchSession) -> None:
        super().__init__(base._max_wait_ms, base._min_bytes, base._max_bytes, base._isolation_level,
                         base._topics, rack_id=base._rack_id)
        self.session = session
        self.plan = session.next_request(_positions(base._topics))

    def as_full(self) -> "SessionFetchRequest":
        self.session.reset()
        self.plan = self.session.next_request(self.plan.positions)
        return self

    def build(self, request_struct_class: Any) -> Any:
        if request_struct_class.API_VERSION < FIRST_SESSION_VERSION:
            return super().build(request_struct_class)
        version, plan = request_struct_class.API_VERSION, self.plan
        with_leader_epoch = version >= 9
        topics: dict[str, list[tuple[int, ...]]] = {}
        for tp, (offset, max_bytes) in plan.send.items():
            partition = (tp.partition, -1, offset, -1, max_bytes) if with_leader_epoch else (tp.partition, offset, -1, max_bytes)
            topics.setdefault(tp.topic, []).append(partition)
        forgotten: dict[str, list[int]] = {}
        for tp in plan.forget:
            forgotten.setdefault(tp.topic, []).append(tp.partition)
        args: list[Any] = [-1, self._max_wait_ms, self._min_bytes, self._max_bytes, self._isolation_level,
                           plan.session_id, plan.epoch, list(topics.items()), list(forgotten.items())]
        if version >= 11:
            args.append(self._rack_id)
        return request_struct_class(*args)


def _positions(topics: list[tuple[str, list[tuple[int, int, int]]]]) -> dict[TopicPartition, Position]:
    return {TopicPartition(topic, partition): (offset, max_bytes)
            for topic, partitions in topics for partition, offset, max_bytes in partitions}


class SessionClient:
    """The fetcher's view of aiokafka's client: fetches go within their broker's session, the rest
    as they were."""

    def __init__(self, client: Any, fetcher: "SessionFetcher") -> None:
        self._client = client
        self._fetcher = fetcher

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def send(self, node_id: int, request: Any, **kwargs: Any) -> Any:
        if not isinstance(request, FetchRequest):
            return await self._client.send(node_id, request, **kwargs)
        asked_at = time.monotonic()
        if not isinstance(request, SessionFetchRequest):  # sessions turned off
            response = await self._client.send(node_id, request, **kwargs)
            self._fetcher.answered(node_id, asked_at, response)
            return response
        response = await self._send_in_session(node_id, request, **kwargs)
        if getattr(response, "error_code", 0) in SESSION_ERRORS:
            log.info("fetch session with broker %s ended (%s): opening a new one",
                     node_id, for_code(response.error_code).__name__)
            response = await self._send_in_session(node_id, request.as_full(), **kwargs)
        if response.API_VERSION < FIRST_SESSION_VERSION:
            request.session.reset()
            self._fetcher.answered(node_id, asked_at, response)
        elif response.error_code:  # not a session error: a whole-request error, no data
            request.session.reset()
            raise for_code(response.error_code)()
        else:
            session, plan = request.session, request.plan
            session.answered(plan, response.session_id)
            if plan.epoch == OPEN_EPOCH and session.session_id != NO_SESSION:
                log.info("fetch session %d opened with broker %s for %d partitions",
                         session.session_id, node_id, len(plan.positions))
            self._fetcher.answered(node_id, asked_at, response, session, plan)
        return response

    async def _send_in_session(self, node_id: int, request: SessionFetchRequest, **kwargs: Any) -> Any:
        try:
            return await self._client.send(node_id, request, **kwargs)
        except BaseException:  # the broker may have seen this epoch: start over
            request.session.reset()
            raise


class SessionFetcher(Fetcher):
    """aiokafka's fetcher, fetching within one session per broker (unless sessions are off),
    noting the ends every answer tells."""

    _fetch_sessions: dict[int, FetchSession] | None  # None: sessions off
    ends_heard: dict[TopicPartition, HeardEnd]
    _answers: dict[int, int]
    _gathering: Gathering | None  # None: every fetch asks as the consumer was configured
    _brought_records: dict[int, bool]  # per broker: whether its last answer brought records

    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
        if self._gathering is not None and self._brought_records.get(node_id):
            request = self._gathering.applied_to(request)
        if self._fetch_sessions is not None:
            session = self._fetch_sessions.setdefault(node_id, FetchSession())
            request = SessionFetchRequest(request, session)
        return await super()._proc_fetch_request(assignment, node_id, request)

    def answered(self, node_id: int, asked_at: float, response: Any, session: FetchSession | None = None,
                 plan: SessionPlan | None = None) -> None:
        """Note the ends an answer tells, before aiokafka hands its records on (so a record's
        answer is noted by the time the record is handled).

        An incremental answer leaves out the partitions whose high watermark and stable offset
        did not change: they are as current as the ones it lists, with the ends the session last
        heard. faust's event-path check reads the poll time per partition and would log an idle
        partition as never fetched; and a partition assigned anew by a rebalance that kept it
        starts with no ends in aiokafka, which an idle one would never get back (due work waits
        for its input to be read up to its end: seen waiting for ever after a broker restart)."""
        answer = self._answers[node_id] = self._answers.get(node_id, 0) + 1
        with_lso = response.API_VERSION >= 4
        heard = self.ends_heard
        listed = set()
        brought = False
        for topic, partitions in response.topics:
            for partition, error_code, highwater, *part_data in partitions:
                tp = TopicPartition(topic, partition)
                listed.add(tp)
                brought = brought or bool(part_data and part_data[-1])  # the record bytes come last
                if error_code == 0:
                    lso = part_data[0] if with_lso else None
                    heard[tp] = HeardEnd(node_id, answer, asked_at, highwater, lso)
                    if session is not None:
                        session.ends[tp] = (highwater, lso)
        self._brought_records[node_id] = brought
        if session is None or plan is None or plan.epoch == OPEN_EPOCH:
            return  # a full answer lists every partition; aiokafka stamps them
        subscription = self._subscriptions.subscription
        assignment = subscription.assignment if subscription is not None else None
        now_ms = int(1000 * time.time())
        for tp in plan.positions:
            if tp in listed or (ends := session.ends.get(tp)) is None:
                continue
            heard[tp] = HeardEnd(node_id, answer, asked_at, *ends)
            if assignment is None or not assignment.active:
                continue
            try:
                state = assignment.state_value(tp)
            except KeyError:
                continue
            if state is not None:
                state.timestamp = now_ms
                if state.highwater is None:
                    state.highwater, state.lso = ends

    def mark(self, tp: TopicPartition) -> FetchMark:
        """The mark an input's end must pass for everything written before `tp`'s last record
        read to count (see FetchMark)."""
        heard = self.ends_heard.get(tp)
        read_at = time.monotonic()
        return FetchMark(None, 0, read_at) if heard is None else FetchMark(heard.node_id, heard.answer, read_at)

    def sessions(self) -> dict[int, FetchSession]:
        return self._fetch_sessions or {}


def use_fetch_sessions(fetcher: Fetcher, sessions: bool = True, gathering: Gathering | None = None) -> SessionFetcher:
    """Make a running aiokafka fetcher note every answer's ends, fetch within sessions (unless
    `sessions` is off) and gather while records flow (with `gathering`) from its next fetch on. A
    fetch already under way finishes as it began."""
    fetcher.__class__ = SessionFetcher
    fetcher._fetch_sessions = {} if sessions else None
    fetcher.ends_heard = {}
    fetcher._answers = {}
    fetcher._gathering = gathering
    fetcher._brought_records = {}
    fetcher._client = SessionClient(fetcher._client, fetcher)  # type: ignore[assignment]
    return fetcher  # type: ignore[return-value]


class SessionFetchingConsumer(AIOKafkaConsumer):
    """aiokafka's consumer, whose fetcher notes every answer's ends, fetches within sessions
    (unless `fetch_sessions` is off) and gathers while records flow (`fetch_gathering`) once it
    starts."""

    fetch_sessions = True
    fetch_gathering: Gathering | None = None

    async def start(self) -> None:
        await super().start()
        use_fetch_sessions(self._fetcher, self.fetch_sessions, self.fetch_gathering)


def fetch_in_sessions(consumer: AIOKafkaConsumer, sessions: bool = True, gathering: Gathering | None = None) -> None:
    """Make a consumer not yet started note its fetch answers' ends, fetch within sessions unless
    `sessions` is off, and gather while records flow with `gathering` (faust creates the consumer
    itself)."""
    if type(consumer) is not AIOKafkaConsumer:
        raise TypeError(f"expected aiokafka's own consumer, got {type(consumer).__name__}")
    consumer.__class__ = SessionFetchingConsumer
    consumer.fetch_sessions = sessions
    consumer.fetch_gathering = gathering
