"""Incremental fetch sessions against the real broker: every record arrives, in order, committed
only under read_committed; requests and answers name only the partitions that moved; a session the
broker lost is reopened without losing a record. (The worker fetches this way: every worker test
runs on it, and test_worker_on_broker checks its log says so.)"""
from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from remarket.shell import fetch_sessions
from remarket.shell.fetch_sessions import Gathering, SessionClient, SessionFetcher, fetch_in_sessions

PARTITIONS = 8
IDLE_PARTITIONS = 4


@pytest.fixture
def traffic(monkeypatch):
    """What each fetch named and what each answer listed, per session epoch."""
    seen = {"requests": [], "answers": []}
    build, send = fetch_sessions.SessionFetchRequest.build, SessionClient.send

    def counting_build(self, struct_class):
        seen["requests"].append((self.plan.epoch, len(self.plan.send), len(self.plan.forget)))
        return build(self, struct_class)

    async def counting_send(self, node_id, request, **kwargs):
        response = await send(self, node_id, request, **kwargs)
        if isinstance(request, fetch_sessions.SessionFetchRequest):
            seen["answers"].append((request.plan.epoch, sum(len(p) for _, p in response.topics)))
        return response

    monkeypatch.setattr(fetch_sessions.SessionFetchRequest, "build", counting_build)
    monkeypatch.setattr(SessionClient, "send", counting_send)
    return seen


async def make_topics(bootstrap: str, *specs: tuple[str, int]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name, partitions in specs])
    finally:
        await admin.close()
    await asyncio.sleep(0.5)


async def session_consumer(bootstrap: str, tps: list[TopicPartition], **config) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=100, enable_auto_commit=False,
                                auto_offset_reset="earliest", **config)
    fetch_in_sessions(consumer)
    await consumer.start()
    consumer.assign(tps)
    return consumer


async def read(consumer: AIOKafkaConsumer, count: int, got: dict, timeout: float = 30.0,
               on_batch=None, max_records: int | None = None, pause: float = 0.0) -> None:
    deadline = time.monotonic() + timeout
    total = sum(len(v) for v in got.values())
    while total < count and time.monotonic() < deadline:
        await asyncio.sleep(pause)
        batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
        for tp, records in batches.items():
            got[tp.partition].extend(int(r.value) for r in records)
            total += len(records)
        if batches and on_batch is not None:
            on_batch()


def test_every_record_arrives_in_order_and_fetches_name_only_what_moved(kafka_bootstrap, traffic):
    topic, idle = f"fs-{uuid.uuid4().hex[:8]}", f"fs-idle-{uuid.uuid4().hex[:8]}"
    records = 240

    async def scenario():
        await make_topics(kafka_bootstrap, (topic, PARTITIONS), (idle, IDLE_PARTITIONS))
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)] + [TopicPartition(idle, p) for p in range(IDLE_PARTITIONS)]
        consumer = await session_consumer(kafka_bootstrap, tps)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=0)
        await producer.start()
        got: dict[int, list[int]] = defaultdict(list)
        try:
            async def trickle():  # live traffic: a record every few ms, one partition at a time
                for n in range(records):
                    await producer.send_and_wait(topic, str(n).encode(), partition=n % PARTITIONS)
                    await asyncio.sleep(0.005)

            # a slow reader: fetched records wait over aiokafka's prefetch backoff, so fetches
            # leave their partitions out (forget them) and take them back once handled
            await asyncio.gather(trickle(), read(consumer, records, got, max_records=4, pause=0.05))
            await asyncio.sleep(1.0)  # idle fetches: nothing moves
            fetcher = consumer._fetcher
            sessions = fetcher.sessions()
            stamped = {tp: consumer.last_poll_timestamp(tp) for tp in tps}
            return got, fetcher, sessions, stamped, {tp: consumer.highwater(tp) for tp in tps}
        finally:
            await producer.stop()
            await consumer.stop()

    got, fetcher, sessions, stamped, highwater = asyncio.run(scenario())
    assert isinstance(fetcher, SessionFetcher)
    for p in range(PARTITIONS):
        assert got[p] == list(range(p, records, PARTITIONS)), f"partition {p}: lost, repeated or out of order"
    assert [s.opened for s in sessions.values()] == [1], "one broker, one session for the whole run"
    incremental_requests = [sent for epoch, sent, _ in traffic["requests"] if epoch > 0]
    incremental_answers = [listed for epoch, listed in traffic["answers"] if epoch > 0]
    assert len(incremental_requests) >= 20, traffic["requests"][:40]
    assert any(forgot for epoch, _, forgot in traffic["requests"] if epoch > 0), "the reader never fell behind"
    assigned = len(highwater)  # 12 partitions: every one was named in each fetch before sessions
    assert statistics.median(incremental_requests) <= 2, incremental_requests
    assert statistics.median(incremental_answers) <= 2, incremental_answers
    assert max(incremental_answers) < assigned
    # partitions left out of incremental answers are still known to be current (faust's event-path check)
    now_ms = time.time() * 1000
    assert all(ts is not None and now_ms - ts < 2_000 for ts in stamped.values()), stamped
    assert {tp.partition: hw for tp, hw in highwater.items() if tp.topic == topic} == \
        {p: len(got[p]) for p in range(PARTITIONS)}


def test_read_committed_in_a_session_skips_aborted_transactions(kafka_bootstrap):
    topic = f"fs-tx-{uuid.uuid4().hex[:8]}"

    async def scenario():
        await make_topics(kafka_bootstrap, (topic, 2))
        tps = [TopicPartition(topic, p) for p in range(2)]
        consumer = await session_consumer(kafka_bootstrap, tps, isolation_level="read_committed")
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"fs-{uuid.uuid4()}")
        await producer.start()
        got: dict[int, list[int]] = defaultdict(list)
        try:
            await read(consumer, 1, got, timeout=2)  # the session is open before any transaction
            for n, outcome in enumerate(["commit", "abort", "commit", "abort", "commit"]):
                async with producer.transaction() if outcome == "commit" else _aborting(producer):
                    for i in range(10):
                        await producer.send(topic, str(n * 100 + i).encode(), partition=i % 2)
                await asyncio.sleep(0.05)
            await read(consumer, 30, got, timeout=20)
            await asyncio.sleep(0.5)
            await read(consumer, 31, got, timeout=1)  # nothing more may come
            return got, consumer._fetcher.sessions()
        finally:
            await producer.stop()
            await consumer.stop()

    got, sessions = asyncio.run(scenario())
    committed = {n * 100 + i for n in (0, 2, 4) for i in range(10)}
    assert sorted(got[0] + got[1]) == sorted(committed)
    assert all(s.incremental_requests > 0 for s in sessions.values())


class _aborting:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def __aenter__(self):
        await self.producer.begin_transaction()

    async def __aexit__(self, *exc):
        await self.producer.abort_transaction()


def test_a_session_the_broker_lost_is_reopened_and_no_record_is_lost(kafka_bootstrap, traffic):
    topic = f"fs-lost-{uuid.uuid4().hex[:8]}"
    records = 120

    async def scenario():
        await make_topics(kafka_bootstrap, (topic, 4))
        tps = [TopicPartition(topic, p) for p in range(4)]
        consumer = await session_consumer(kafka_bootstrap, tps)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=0)
        await producer.start()
        got: dict[int, list[int]] = defaultdict(list)
        batches = {"n": 0}

        def break_the_session() -> None:  # as a broker restart or an evicted session would
            batches["n"] += 1
            for session in consumer._fetcher.sessions().values():
                if batches["n"] == 5:
                    session.session_id += 1_000_000  # the broker knows no such session
                elif batches["n"] == 10:
                    session.epoch += 3  # an epoch the broker does not expect

        try:
            async def trickle():
                for n in range(records):
                    await producer.send_and_wait(topic, str(n).encode(), partition=n % 4)
                    await asyncio.sleep(0.01)

            await asyncio.gather(trickle(), read(consumer, records, got, on_batch=break_the_session))
            return got, consumer._fetcher.sessions()
        finally:
            await producer.stop()
            await consumer.stop()

    got, sessions = asyncio.run(scenario())
    for p in range(4):
        assert got[p] == list(range(p, records, 4)), f"partition {p}"
    assert [s.opened for s in sessions.values()] == [3], "opened, reopened after each of the two losses"


def test_while_records_flow_fetches_gather_and_the_first_record_after_a_pause_is_fetched_at_once(
        kafka_bootstrap, monkeypatch):
    """A trickle, one record every ~5 ms: once an answer brought records, each fetch asks the broker
    to gather (here up to 60 ms, for more bytes than ever come), so answers come ~60 ms apart with
    many records each; once an answer came back empty, the next fetch answers at its first record."""
    topic = f"fs-gather-{uuid.uuid4().hex[:8]}"
    records, gather_ms = 150, 60
    fetches: list[tuple[int, int, float, bool]] = []  # (min bytes, max wait, answered at, brought records)
    send = SessionClient.send

    async def noting_send(self, node_id, request, **kwargs):
        response = await send(self, node_id, request, **kwargs)
        if isinstance(request, fetch_sessions.FetchRequest):
            brought = any(part[-1] for _, parts in response.topics for part in parts)
            fetches.append((request._min_bytes, request._max_wait_ms, time.monotonic(), brought))
        return response

    monkeypatch.setattr(SessionClient, "send", noting_send)

    async def scenario():
        await make_topics(kafka_bootstrap, (topic, 1))
        tp = TopicPartition(topic, 0)
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, fetch_max_wait_ms=100, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        fetch_in_sessions(consumer, True, Gathering(min_bytes=1 << 20, max_wait_ms=gather_ms))
        await consumer.start()
        consumer.assign([tp])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=0)
        await producer.start()
        got: dict[int, list[int]] = defaultdict(list)
        try:
            await asyncio.sleep(1.0)  # the first fetches: nothing there yet

            async def trickle():
                for n in range(records):
                    await producer.send(topic, str(n).encode(), partition=0)
                    await asyncio.sleep(0.005)
                await producer.flush()

            started = time.monotonic()
            await asyncio.gather(trickle(), read(consumer, records, got))
            flowing = (started, time.monotonic())
            await asyncio.sleep(0.5)  # a pause: fetches come back empty
            paused = time.monotonic()
            await producer.send_and_wait(topic, str(records).encode(), partition=0)
            await read(consumer, records + 1, got)
            return got[0], flowing, paused
        finally:
            await producer.stop()
            await consumer.stop()

    got, (started, ended), paused = asyncio.run(scenario())
    assert got == list(range(records + 1)), "lost, repeated or out of order"
    during = [f for f in fetches if started <= f[2] <= ended and f[3]]
    gathered = [f for f in during if (f[0], f[1]) == (1 << 20, gather_ms)]
    assert len(gathered) >= len(during) / 2, during  # plain fetches: the flow's first, and after a lull
    # the broker held each gathering fetch its whole wait (its byte count is never reached)
    assert len(gathered) <= (ended - started) / (gather_ms / 1000) + 2, (len(gathered), ended - started)
    assert records / len(during) >= 3, "the answers did not gather"
    after_pause = [f for f in fetches if f[2] > paused and f[3]]
    assert after_pause and (after_pause[0][0], after_pause[0][1]) == (1, 100), fetches[-5:]
