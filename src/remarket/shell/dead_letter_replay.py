"""`remarket dead-letter replay`: read the dead letters and the redrive markers, plan, produce.

The markers live in a compacted topic (catalog role `redriven`), one per redriven event, so
they survive restarts and outlive the input topics' retention. Under `--execute` each redriven
record and its marker are produced in one Kafka transaction: after a crash either both are
visible to read_committed readers or neither, and the next run picks up where this one stopped.
One fixed transactional id per app id fences an older run that is still going.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from remarket.catalog import Catalog
from remarket.redrive import DeadLetter, Plan, Selection, marker_value, plan
from remarket.settings import Settings
from remarket.shell.kafka import client_config

TRANSACTION_SIZE = 500
READ_TIMEOUT_SECONDS = 300


async def replay(settings: Settings, catalog: Catalog, selection: Selection, *, execute: bool,
                 report: Callable[[str], None]) -> Plan:
    dead_letter, markers_topic = catalog["dead_letter"].name, catalog["redriven"].name
    partitions = await _partitions(settings, (dead_letter, markers_topic))
    consumer = AIOKafkaConsumer(**client_config(settings), group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        already = {key.decode() for key, _ in await _read_all(consumer, markers_topic, partitions[markers_topic])}
        letters = [DeadLetter(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, tuple(r.headers or ()))
                   for _, r in await _read_all(consumer, dead_letter, partitions[dead_letter])]
    finally:
        await consumer.stop()
    topics = set(partitions)
    result = plan(letters, selection, already, set(topics))
    if execute and result.redrives:
        await _produce(settings, result, markers_topic)
        for decision in result.decisions:
            if decision.redrive is not None:
                decision.outcome = "redriven"
    for decision in result.decisions:
        if decision.outcome != "not_selected":
            letter = decision.letter
            key = letter.key.decode(errors="replace") if letter.key is not None else None
            report(f"{decision.outcome:17} {letter.coordinates} -> {letter.source_topic}  reason={letter.reason} "
                   f"key={key} {letter.marker_key}")
    return result


async def _partitions(settings: Settings, needed: tuple[str, ...]) -> dict[str, list[int]]:
    """Partitions of every existing topic; LookupError naming a needed one that is missing.
    Lists first: a metadata request naming a missing topic could create it."""
    admin = AIOKafkaAdminClient(**client_config(settings))
    await admin.start()
    try:
        names = await admin.list_topics()
        for topic in needed:
            if topic not in names:
                raise LookupError(f"topic {topic} does not exist: run `remarket topics apply`")
        described = await admin.describe_topics(names)
        return {d["topic"]: sorted(p["partition"] for p in d["partitions"]) for d in described}
    finally:
        await admin.close()


async def _read_all(consumer: AIOKafkaConsumer, topic: str, numbers: list[int]) -> list[tuple[bytes, object]]:
    """Every committed record of `topic` up to its end when we looked, as (key, record)."""
    partitions = [TopicPartition(topic, p) for p in numbers]
    if not partitions:
        return []
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    ends = await consumer.end_offsets(partitions)
    records: list[tuple[bytes, object]] = []
    pending = {tp for tp in partitions if ends[tp] > 0}
    deadline = time.monotonic() + READ_TIMEOUT_SECONDS
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {topic} took over {READ_TIMEOUT_SECONDS}s")
        batch = await consumer.getmany(*pending, timeout_ms=1000, max_records=10_000)
        for tp, fetched in batch.items():
            records += [(r.key or b"", r) for r in fetched if r.offset < ends[tp]]
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
    return records


async def _produce(settings: Settings, result: Plan, markers_topic: str) -> None:
    producer = AIOKafkaProducer(**client_config(settings), acks="all", enable_idempotence=True,
                                transactional_id=f"{settings.app_id}-dead-letter-redrive")
    await producer.start()
    try:
        redrives = [d for d in result.decisions if d.redrive is not None]
        for start in range(0, len(redrives), TRANSACTION_SIZE):
            async with producer.transaction():
                now = datetime.now(timezone.utc)
                for decision in redrives[start:start + TRANSACTION_SIZE]:
                    r = decision.redrive
                    await producer.send(r.topic, r.value, key=r.key, headers=r.headers)
                    await producer.send(markers_topic, marker_value(decision.letter, now),
                                        key=r.marker_key.encode())
    finally:
        await producer.stop()
