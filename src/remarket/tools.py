"""Looking inside: `remarket tail` and `remarket inspect` (read-only Kafka consumers)."""
from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import datetime, timezone

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from remarket.catalog import Catalog
from remarket.domain.policy import Policy
from remarket.settings import Settings
from remarket.shell.kafka import changelog_topic, client_config
from remarket.domain.profile import public_view
from remarket.domain.state import CustomerState


def format_record(record, raw: bool = False) -> str:
    """One consumed record as text: headers decoded, JSON values pretty-printed."""
    headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
    try:
        value = orjson.loads(record.value) if record.value is not None else None
        is_json = True
    except orjson.JSONDecodeError:
        value, is_json = record.value.decode(errors="backslashreplace"), False
    key = record.key.decode(errors="backslashreplace") if record.key is not None else None
    when = datetime.fromtimestamp(record.timestamp / 1000, timezone.utc).isoformat(timespec="milliseconds")
    if raw:
        return orjson.dumps({"topic": record.topic, "partition": record.partition, "offset": record.offset,
                             "timestamp": when, "key": key, "headers": headers, "value": value}).decode()
    head = f"── {record.topic}[{record.partition}]@{record.offset}  {when}  key={key}"
    lines = [head]
    lines += [f"   {k}: {v}" for k, v in headers.items() if k != "content-type"]
    if is_json:
        body = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    else:
        body = f"(not JSON) {value!r}" if value is not None else "(tombstone)"
    lines += ["   " + line for line in body.splitlines()]
    return "\n".join(lines)


async def tail(settings: Settings, topic: str, *, from_beginning: bool, limit: int | None,
               idle_timeout: float | None, raw: bool) -> int:
    consumer = AIOKafkaConsumer(
        **client_config(settings), group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest", isolation_level="read_committed")
    await consumer.start()
    seen = 0
    try:
        # list every topic first (a metadata request naming a missing topic waits for it, or
        # creates it on brokers with auto-creation on)
        if topic not in await consumer.topics():
            print(f"remarket tail: topic {topic!r} does not exist (a catalog role such as actions, dead-letter, "
                  "profiles, orders, or an existing topic name)", file=sys.stderr)
            return 2
        consumer.subscribe([topic])
        while limit is None or seen < limit:
            batch = await consumer.getmany(timeout_ms=1000 if idle_timeout is None else int(idle_timeout * 1000))
            if not batch and idle_timeout is not None:
                break
            for records in batch.values():
                for record in records:
                    print(format_record(record, raw), flush=True)
                    seen += 1
                    if limit is not None and seen >= limit:
                        return 0
    finally:
        await consumer.stop()
    return 0


async def read_latest_state(settings: Settings, catalog: Catalog, customer_id: str,
                            timeout: float = 10.0) -> bytes | None:
    """The committed state of one customer: the last changelog value for its key."""
    key = customer_id.encode()
    topic = changelog_topic(settings)
    consumer = AIOKafkaConsumer(**client_config(settings), group_id=f"remarket-inspect-{uuid.uuid4()}",
                                enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
        if not partitions:
            raise LookupError(f"the state changelog {topic} does not exist yet: has the worker run?")
        ordered = sorted(partitions)
        tp = TopicPartition(topic, DefaultPartitioner()(key, ordered, ordered))
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        latest: bytes | None = None
        deadline = asyncio.get_running_loop().time() + timeout
        while await consumer.position(tp) < end and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
            for record in batch.get(tp, ()):
                if record.key == key:
                    latest = record.value
        return latest
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int] | None:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic)


async def inspect_customer(settings: Settings, catalog: Catalog, policy: Policy, customer_id: str) -> int:
    try:
        raw = await read_latest_state(settings, catalog, customer_id)
    except LookupError as exc:
        print(f"remarket inspect: {exc}", file=sys.stderr)
        return 1
    if raw is None:
        print(f"remarket inspect: no state for customer {customer_id!r} (never seen, or erased)", file=sys.stderr)
        return 1
    view = public_view(CustomerState.from_bytes(raw), datetime.now(timezone.utc), policy)
    print(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode())
    return 0
