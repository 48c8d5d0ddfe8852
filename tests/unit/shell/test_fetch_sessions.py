"""Fetch sessions, client side: what each request names, and when a session starts over.
The broker's side is tested in tests/integration/test_fetch_sessions.py."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import FetchSessionIdNotFound, InvalidFetchSessionEpoch, ClusterAuthorizationFailedError
from aiokafka.protocol.fetch import FetchRequest, FetchRequest_v4, FetchRequest_v7, FetchRequest_v11
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.structs import TopicPartition

from remarket.catalog import load_catalog
from remarket.domain.policy import Policy
from remarket.settings import Settings
from remarket.shell.app import Worker
from remarket.shell.fetch_sessions import (
    LAST_EPOCH,
    FetchSession,
    Gathering,
    HeardEnd,
    SessionClient,
    SessionFetchingConsumer,
    SessionFetcher,
    SessionFetchRequest,
    fetch_in_sessions,
)

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)
MAX = 1_048_576


def request(positions: dict[TopicPartition, int]) -> FetchRequest:
    topics: dict[str, list[tuple[int, int, int]]] = {}
    for tp, offset in positions.items():
        topics.setdefault(tp.topic, []).append((tp.partition, offset, MAX))
    return FetchRequest(100, 1, 50_000_000, 1, list(topics.items()), rack_id="")


def wanted(positions: dict[TopicPartition, int]) -> dict[TopicPartition, tuple[int, int]]:
    return {tp: (offset, MAX) for tp, offset in positions.items()}


def test_the_first_request_opens_a_session_with_every_partition():
    plan = FetchSession().next_request(wanted({A0: 5, A1: 0, B0: 7}))
    assert (plan.session_id, plan.epoch) == (0, 0)
    assert plan.send == wanted({A0: 5, A1: 0, B0: 7}) and plan.forget == []


def test_then_a_request_names_only_what_moved_and_what_to_forget():
    session = FetchSession()
    session.answered(session.next_request(wanted({A0: 5, A1: 0, B0: 7})), session_id=42)
    plan = session.next_request(wanted({A0: 9, A1: 0}))  # A0 handled up to 9; B0's records wait
    assert (plan.session_id, plan.epoch) == (42, 1)
    assert plan.send == wanted({A0: 9}) and plan.forget == [B0]
    session.answered(plan, session_id=42)
    plan = session.next_request(wanted({A0: 9, A1: 0, B0: 11}))
    assert (plan.epoch, plan.send, plan.forget) == (2, wanted({B0: 11}), [])
    session.answered(plan, session_id=42)
    plan = session.next_request(wanted({A0: 9, A1: 0, B0: 11}))
    assert (plan.epoch, plan.send, plan.forget) == (3, {}, [])  # nothing moved: a request naming nothing


def test_a_session_the_broker_declines_is_asked_for_again():
    session = FetchSession()
    session.answered(session.next_request(wanted({A0: 1})), session_id=0)
    plan = session.next_request(wanted({A0: 1}))
    assert (plan.session_id, plan.epoch, plan.send) == (0, 0, wanted({A0: 1}))
    assert session.opened == 0


def test_the_epoch_wraps_to_one_not_to_the_opening_epoch():
    session = FetchSession(session_id=3, epoch=LAST_EPOCH, partitions=wanted({A0: 1}))
    session.answered(session.next_request(wanted({A0: 1})), session_id=3)
    assert session.epoch == 1


def test_the_wire_request_carries_the_session_and_only_the_moved_partitions():
    session = FetchSession(session_id=42, epoch=6, partitions=wanted({A0: 5, A1: 0, B0: 7}))
    sent = SessionFetchRequest(request({A0: 5, A1: 3}), session)
    wire = sent.build(FetchRequest_v11)
    assert (wire.session_id, wire.session_epoch) == (42, 6)
    assert wire.topics == [("a", [(1, -1, 3, -1, MAX)])]  # partition, leader epoch, offset, log start, max bytes
    assert wire.forgotten_topics_data == [("b", [0])]
    assert sent.topics == request({A0: 5, A1: 3}).topics  # every partition of the fetch, for aiokafka's handling
    wire7 = sent.build(FetchRequest_v7)
    assert wire7.topics == [("a", [(1, 3, -1, MAX)])]
    assert sent.build(FetchRequest_v4).topics == request({A0: 5, A1: 3}).build(FetchRequest_v4).topics  # no sessions


class FakeClient:
    """Answers fetches with the error codes given, in turn; records the epochs it was sent."""

    def __init__(self, *errors: int, fail: BaseException | None = None) -> None:
        self.errors, self.fail, self.sent = list(errors), fail, []
        self.cluster = "the cluster"

    async def send(self, node_id, request, **kwargs):
        self.sent.append((request.plan.session_id, request.plan.epoch, dict(request.plan.send)))
        if self.fail is not None:
            raise self.fail
        return SimpleNamespace(API_VERSION=11, error_code=self.errors.pop(0), session_id=42, topics=[])


class FakeFetcher:
    def answered(self, node_id, asked_at, response, session=None, plan=None) -> None:
        pass


def send(client: FakeClient, session: FetchSession, positions: dict[TopicPartition, int]):
    return asyncio.run(SessionClient(client, FakeFetcher()).send(1, SessionFetchRequest(request(positions), session)))


@pytest.mark.parametrize("error", [FetchSessionIdNotFound.errno, InvalidFetchSessionEpoch.errno])
def test_a_lost_session_is_reopened_at_once_with_every_partition(error):
    session = FetchSession(session_id=7, epoch=3, partitions=wanted({A0: 5, B0: 7}))
    client = FakeClient(error, 0)
    send(client, session, {A0: 9, B0: 7})
    assert client.sent == [(7, 3, wanted({A0: 9})), (0, 0, wanted({A0: 9, B0: 7}))]
    assert (session.session_id, session.epoch, session.partitions) == (42, 1, wanted({A0: 9, B0: 7}))


def test_a_request_whose_answer_was_not_read_ends_the_session():
    session = FetchSession(session_id=7, epoch=3, partitions=wanted({A0: 5}))
    with pytest.raises(asyncio.CancelledError):
        send(FakeClient(fail=asyncio.CancelledError()), session, {A0: 9})
    assert (session.session_id, session.epoch, session.partitions) == (0, 0, {})


def test_any_other_error_of_the_whole_fetch_is_raised_as_aiokafka_raises_it_and_ends_the_session():
    session = FetchSession(session_id=7, epoch=3, partitions=wanted({A0: 5}))
    with pytest.raises(ClusterAuthorizationFailedError):
        send(FakeClient(ClusterAuthorizationFailedError.errno), session, {A0: 9})
    assert session.epoch == 0


def test_other_requests_pass_through_and_other_attributes_are_the_clients():
    client = FakeClient()
    proxy = SessionClient(client, FakeFetcher())
    assert proxy.cluster == "the cluster"


def test_the_worker_consumer_fetches_in_sessions_unless_turned_off(tmp_path):
    async def build(**settings) -> type:
        worker = Worker(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path, **settings), Policy(), load_catalog())
        consumer = worker.app.consumer
        return type(consumer._new_consumer_thread()._create_worker_consumer(worker.app.transport))

    async def sessions_of(**settings) -> bool:
        worker = Worker(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path, **settings), Policy(), load_catalog())
        return worker.app.consumer._new_consumer_thread()._create_worker_consumer(worker.app.transport).fetch_sessions

    # either way its answers' ends are noted (due work needs them); only the sessions are turned off
    assert asyncio.run(build()) is SessionFetchingConsumer and asyncio.run(sessions_of()) is True
    assert asyncio.run(build(fetch_sessions=False)) is SessionFetchingConsumer
    assert asyncio.run(sessions_of(fetch_sessions=False)) is False


def test_only_aiokafkas_own_consumer_is_switched():
    class Other(AIOKafkaConsumer):
        pass

    async def make() -> AIOKafkaConsumer:
        return Other(bootstrap_servers="127.0.0.1:9")

    with pytest.raises(TypeError):
        fetch_in_sessions(asyncio.run(make()))


def bare_fetcher(subscription: SubscriptionState | None = None) -> SessionFetcher:
    fetcher = SessionFetcher.__new__(SessionFetcher)
    fetcher._subscriptions, fetcher.ends_heard, fetcher._answers = subscription, {}, {}
    fetcher._gathering, fetcher._brought_records = None, {}
    return fetcher


def answer(*partitions: tuple[TopicPartition, int, int, int], records: bytes = b"") -> SimpleNamespace:
    """A v11 fetch answer listing (tp, error code, highwater, last stable offset), each partition
    with `records` (none by default)."""
    topics: dict[str, list] = {}
    for tp, error, highwater, lso in partitions:
        topics.setdefault(tp.topic, []).append((tp.partition, error, highwater, lso, 0, [], -1, records))
    return SimpleNamespace(API_VERSION=11, error_code=0, session_id=42, topics=list(topics.items()))


def opened_session(subscription: SubscriptionState) -> tuple[SessionFetcher, FetchSession]:
    """A session opened for A0 (end 40, stable offset 39) and B0 (end 7), its answer noted as answer 1."""
    fetcher, session = bare_fetcher(subscription), FetchSession()
    opening = session.next_request(wanted({A0: 40, B0: 7}))
    session.answered(opening, 42)
    fetcher.answered(1, 1.0, answer((A0, 0, 40, 39), (B0, 0, 7, 7)), session, opening)
    return fetcher, session


def test_a_partition_an_answer_leaves_out_keeps_the_ends_the_session_last_heard():
    """A rebalance that keeps a partition gives it a fresh state in aiokafka, with no high
    watermark; an idle partition is never listed again in the same session, so without this its
    end stayed unknown for ever (and due work waited on it: shell.due_work)."""
    async def scenario() -> tuple:
        subscription = SubscriptionState()
        subscription.assign_from_user({A0, B0})
        fetcher, session = opened_session(subscription)
        subscription.assign_from_user({A0, B0})  # as a rebalance does: fresh states, ends unknown
        incremental = session.next_request(wanted({A0: 40, B0: 7}))
        fetcher.answered(1, 2.0, answer((A0, 0, 41, 41)), session, incremental)
        state = subscription.subscription.assignment.state_value
        return (state(B0).highwater, state(B0).lso), state(A0).highwater, state(B0).timestamp, fetcher.ends_heard

    b_ends, a_highwater, b_stamped, heard = asyncio.run(scenario())
    assert b_ends == (7, 7) and b_stamped is not None
    assert a_highwater is None  # listed: aiokafka itself sets it from the answer
    # both heard in the second answer: A0 listed, B0 confirmed unchanged
    assert heard[A0] == HeardEnd(1, 2, 2.0, 41, 41) and heard[B0] == HeardEnd(1, 2, 2.0, 7, 7)


def test_an_end_counts_only_if_heard_after_the_record_it_is_for():
    """Due work asks where an input ended after a tick was written. An answer that brought the
    tick tells ends computed after it was written; an older answer's end (before an outage, or a
    partition that answered with an error since) does not count, nor does another broker's
    answer to a fetch sent before the tick was read."""
    ticks = TopicPartition("ticks", 0)
    fetcher = bare_fetcher()
    fetcher.answered(1, 10.0, answer((A0, 0, 5, 5), (ticks, 0, 3, 3)))
    fetcher.answered(1, 11.0, answer((A0, 6, 9, 9), (ticks, 0, 4, 4)))  # A0: NOT_LEADER, the tick arrives
    assert fetcher.ends_heard[A0] == HeardEnd(1, 1, 10.0, 5, 5)  # an error tells no end
    mark = fetcher.mark(ticks)
    assert (mark.node_id, mark.answer) == (1, 2)
    assert not mark.passed_by(fetcher.ends_heard[A0])
    fetcher.answered(1, 12.0, answer((A0, 0, 7, 7)))
    assert mark.passed_by(fetcher.ends_heard[A0])  # the same broker's later answer
    assert mark.passed_by(HeardEnd(1, 2, 10.5, 7, 7))  # the tick's own answer
    assert not mark.passed_by(HeardEnd(2, 9, mark.read_at - 0.001, 7, 7))  # another broker, asked before
    assert mark.passed_by(HeardEnd(2, 1, mark.read_at, 7, 7))  # another broker, asked after the tick was read
    assert not mark.passed_by(None)


def test_answers_are_noted_with_the_time_their_fetch_was_sent_with_sessions_or_without():
    class Answering(FakeClient):
        async def send(self, node_id, request, **kwargs):
            self.sent.append(node_id)
            return answer((A0, 0, 12, 11))

    for sessions in (True, False):
        fetcher = bare_fetcher()
        fetcher._fetch_sessions = {} if sessions else None
        base = request({A0: 3})
        sent = SessionFetchRequest(base, fetcher._fetch_sessions.setdefault(1, FetchSession())) if sessions else base
        before = time.monotonic()
        asyncio.run(SessionClient(Answering(), fetcher).send(1, sent))
        heard = fetcher.ends_heard[A0]
        assert (heard.node_id, heard.answer, heard.highwater, heard.lso) == (1, 1, 12, 11)
        assert before <= heard.asked_at <= time.monotonic()


def test_a_partition_fetched_again_after_a_pause_is_not_vouched_for_with_its_end_from_before():
    """A partition whose records wait to be handled is forgotten from the session and named again
    later; an answer that leaves it out then tells nothing of it (Kafka lists a partition it was
    just given), and its end from before the pause must not count as heard now."""
    async def scenario() -> dict:
        subscription = SubscriptionState()
        subscription.assign_from_user({A0, B0})
        fetcher, session = opened_session(subscription)
        paused = session.next_request(wanted({A0: 40}))  # B0's records wait: forgotten
        session.answered(paused, 42)
        fetcher.answered(1, 2.0, answer(), session, paused)
        again = session.next_request(wanted({A0: 40, B0: 9}))
        session.answered(again, 42)
        fetcher.answered(1, 3.0, answer(), session, again)
        return fetcher.ends_heard

    heard = asyncio.run(scenario())
    assert heard[A0].answer == 3  # left out, unchanged: heard
    assert heard[B0].answer == 1  # still only what the first answer told


GATHERING = Gathering(min_bytes=65_536, max_wait_ms=5)


def asked(fetcher: SessionFetcher, node_id: int, monkeypatch) -> tuple[int, int]:
    """(max wait ms, min bytes) of the fetch the fetcher sends to `node_id` next."""
    seen = []

    async def aiokafkas(self, assignment, node_id, request):
        seen.append((request._max_wait_ms, request._min_bytes))
        return True

    monkeypatch.setattr("aiokafka.consumer.fetcher.Fetcher._proc_fetch_request", aiokafkas)
    asyncio.run(fetcher._proc_fetch_request(None, node_id, request({A0: 3, B0: 4})))
    return seen[0]


@pytest.mark.parametrize("sessions", [True, False])
def test_while_records_flow_a_fetch_gathers_and_after_an_empty_answer_it_long_polls_again(monkeypatch, sessions):
    fetcher = bare_fetcher()
    fetcher._fetch_sessions = {} if sessions else None
    fetcher._gathering = GATHERING
    assert asked(fetcher, 1, monkeypatch) == (100, 1)  # nothing heard yet: as the consumer is configured
    fetcher.answered(1, 1.0, answer((A0, 0, 5, 5), (B0, 0, 7, 7), records=b"\x00records"))
    assert asked(fetcher, 1, monkeypatch) == (5, 65_536)  # records came: gather the next ones
    assert asked(fetcher, 2, monkeypatch) == (100, 1)  # another broker's answers are its own
    fetcher.answered(1, 2.0, answer((A0, 0, 5, 5), (B0, 0, 7, 7)))  # waited its whole wait: nothing
    assert asked(fetcher, 1, monkeypatch) == (100, 1)  # idle: the first record is answered at once


def test_without_gathering_every_fetch_asks_as_configured(monkeypatch):
    fetcher = bare_fetcher()
    fetcher._fetch_sessions = {}
    fetcher.answered(1, 1.0, answer((A0, 0, 5, 5), records=b"\x00records"))
    assert asked(fetcher, 1, monkeypatch) == (100, 1)


def test_a_gathering_fetch_is_the_same_fetch_otherwise():
    base = request({A0: 3, B0: 4})
    gathering = GATHERING.applied_to(base)
    assert (gathering._max_wait_ms, gathering._min_bytes) == (5, 65_536)
    assert (gathering._max_bytes, gathering._isolation_level, gathering._topics, gathering._rack_id) == (
        base._max_bytes, base._isolation_level, base._topics, base._rack_id)


def test_the_worker_consumer_gathers_under_exactly_once_as_set_and_not_at_all_with_zero(tmp_path):
    def gathering_of(**settings) -> Gathering | None:
        async def build() -> Gathering | None:
            worker = Worker(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path, **settings), Policy(),
                            load_catalog())
            return worker.app.consumer._new_consumer_thread()._create_worker_consumer(
                worker.app.transport).fetch_gathering
        return asyncio.run(build())

    assert gathering_of() == Gathering(min_bytes=65_536, max_wait_ms=5)  # exactly-once: hidden by the commit
    assert gathering_of(processing_guarantee="at_least_once") is None  # every ms would be a ms of latency
    assert gathering_of(processing_guarantee="at_least_once", fetch_gather_ms=5) == Gathering(65_536, 5)
    assert gathering_of(fetch_gather_ms=20, fetch_gather_bytes=1_000) == Gathering(min_bytes=1_000, max_wait_ms=20)
    assert gathering_of(fetch_gather_ms=0) is None
