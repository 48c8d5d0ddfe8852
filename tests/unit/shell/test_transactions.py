"""The sink produces everything a record causes in the transaction of the record's own partition."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from remarket.shell.pipeline import OutRecord
from remarket.shell.transactions import TransactionalSink


class Sensors:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class Producer:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def send(self, topic, key, value, partition, timestamp, headers, transactional_id=None):
        self.sent.append({"topic": topic, "key": key, "value": value, "partition": partition,
                          "headers": headers, "transactional_id": transactional_id})
        future = asyncio.get_running_loop().create_future()
        future.set_result(SimpleNamespace(topic=topic, partition=partition or 0, offset=7))
        return future


def sink(exactly_once: bool = True) -> tuple[TransactionalSink, Producer, dict]:
    producer, store = Producer(), {}
    tables = SimpleNamespace(persist_offset_on_commit=lambda *a: None)
    app = SimpleNamespace(producer=producer, sensors=Sensors(), tables=tables, conf=SimpleNamespace(id="shop"),
                          assignor=SimpleNamespace(group_for_topic=lambda topic: 0))
    table = SimpleNamespace(data=store)
    return TransactionalSink(app, table, "shop-customers-changelog", {"actions": "remarket.actions",
                                                                      "rerouted": "remarket.rerouted"},
                             exactly_once), producer, store


SOURCE = SimpleNamespace(topic="remarket.orders", partition=3, offset=41)


def test_state_goes_to_the_store_and_the_changelog_partition_of_the_source_in_its_transaction():
    s, producer, store = sink()
    asyncio.run(s.write_state(b"c-1", b"state", SOURCE))
    assert store == {b"c-1": b"state"}
    [sent] = producer.sent
    assert (sent["topic"], sent["partition"], sent["transactional_id"]) == ("shop-customers-changelog", 3, "shop-0-3")


def test_outputs_use_the_sources_transaction_and_keep_an_explicit_partition():
    s, producer, _ = sink()
    asyncio.run(s.send(OutRecord("actions", b"c-1", b"{}"), SOURCE))
    asyncio.run(s.send(OutRecord("rerouted", b"c-1", b"{}", [("h", b"v")], partition=1), SOURCE))
    assert [(p["topic"], p["partition"], p["transactional_id"]) for p in producer.sent] == [
        ("remarket.actions", None, "shop-0-3"), ("remarket.rerouted", 1, "shop-0-3")]


def test_at_least_once_sends_without_a_transaction():
    s, producer, _ = sink(exactly_once=False)
    asyncio.run(s.send(OutRecord("actions", b"c-1", b"{}"), SOURCE))
    assert producer.sent[0]["transactional_id"] is None
