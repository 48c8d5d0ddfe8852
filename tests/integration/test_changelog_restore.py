"""The customer table is restored from every committed changelog record, whatever faust's own
recovery would have done: remarket.shell.restore reads the changelog itself (read_committed, up
to the last stable offset) before faust looks at it."""
from __future__ import annotations

import asyncio
import os
from datetime import datetime, timezone
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from remarket.devkit.metrics import metric_sum
from remarket.settings import Settings
from remarket.shell.kafka import changelog_topic
from remarket.shell.restore import restore_changelog
from tests.integration.harness import consume_all, produce, run, wait_until

FAULTS = Path(__file__).parent / "faults"


class DictStore:
    """A PartitionStore in memory, to look at exactly what the restore wrote."""

    def __init__(self) -> None:
        self.data: dict[int, dict[bytes, bytes]] = {}
        self.offsets: dict[int, int] = {}
        self.writes = 0

    def persisted_offset(self, partition: int) -> int | None:
        return self.offsets.get(partition)

    def write(self, partition: int, records, upto: int) -> None:
        table = self.data.setdefault(partition, {})
        for key, value in records:
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
        self.offsets[partition] = upto
        self.writes += 1


async def _transactions(bootstrap: str, topic: str) -> None:
    """Partition 0: committed, aborted, committed with a tombstone, aborted tail, then a
    transaction left open (as a SIGKILLed worker leaves it). Partition 1: committed only."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1, topic_configs={"cleanup.policy": "compact"})])
    finally:
        await admin.close()

    async def txn(producer, records, commit: bool) -> None:
        async with producer.transaction() if commit else _aborting(producer):
            for partition, key, value in records:
                await producer.send(topic, value, key=key, partition=partition)

    done = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-a")
    await done.start()
    try:
        await txn(done, [(0, f"k{i}".encode(), b"v1") for i in range(100)], True)
        await txn(done, [(0, f"k{i}".encode(), b"aborted") for i in range(10)], False)
        await txn(done, [*[(0, f"k{i}".encode(), b"v2") for i in range(5)], (0, b"k5", None)], True)
        await txn(done, [(1, f"j{i}".encode(), b"w") for i in range(30)], True)
        await txn(done, [(0, b"k0", b"aborted-tail")], False)
    finally:
        await done.stop()
    dangling = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-b")
    await dangling.start()
    await dangling.begin_transaction()
    await dangling.send_and_wait(topic, b"open", key=b"k1", partition=0)
    return dangling  # the caller leaves it open during the restore


class _aborting:
    def __init__(self, producer) -> None:
        self.producer = producer

    async def __aenter__(self):
        await self.producer.begin_transaction()

    async def __aexit__(self, *exc) -> None:
        await self.producer.abort_transaction()


def test_restore_keeps_every_committed_record_and_nothing_aborted_or_open(kafka_bootstrap):
    topic = f"restore-{os.urandom(4).hex()}-changelog"

    async def scenario():
        dangling = await _transactions(kafka_bootstrap, topic)
        try:
            store = DictStore()
            report = await restore_changelog({"bootstrap_servers": kafka_bootstrap}, topic, [0, 1], store,
                                             stall_seconds=30)
            again = await restore_changelog({"bootstrap_servers": kafka_bootstrap}, topic, [0, 1], store,
                                            stall_seconds=30)
            return store, report, again
        finally:
            await dangling.abort_transaction()
            await dangling.stop()

    store, report, again = asyncio.run(scenario())
    p0, p1 = store.data[0], store.data[1]
    assert {p0[f"k{i}".encode()] for i in range(5)} == {b"v2"}
    assert b"k5" not in p0  # the tombstone deleted it
    assert all(p0[f"k{i}".encode()] == b"v1" for i in range(6, 100))
    assert len(p0) == 99 and len(p1) == 30 and set(p1.values()) == {b"w"}
    assert report.records == 100 + 6 + 30  # committed data records only
    # the offsets reached: everything below partition 0's last stable offset (the open transaction)
    first0, end0 = report.partitions[0]
    assert first0 == 0 and store.offsets[0] == end0 - 1
    # a second restore starts where the first ended and reads nothing
    assert again.records == 0 and again.partitions[0][0] == end0


def test_a_changelog_record_faust_fails_to_deliver_is_still_restored(deployment):
    """Drives the path that lost an action after a SIGKILL: faust's consumer loses the delivery
    of a customer's changelog records after its position moved past them. faust's recovery then
    waits 10 s and declares the partition complete without them (`Aborted tx until highwater`);
    the worker must restore that customer all the same."""
    d = deployment
    first = d.start_worker("first")
    customers = [f"dr-{i}" for i in range(40)]
    run(produce(d.bootstrap, [(d.topics["visits"], c.encode(), orjson.dumps({
        "event_id": f"{c}-v", "event_type": "visit.product_view", "customer_id": c, "product_id": "p-1",
        "occurred_at": datetime.now(timezone.utc).isoformat(),
        "schema_version": 1})) for c in customers]))
    wait_until(lambda: all(first.customer(c) for c in customers), timeout=60, message="every customer stored")
    first.stop()

    topic = changelog_topic(Settings(app_id=d.app_id))
    records = run(consume_all(d.bootstrap, topic, timeout=20, settle=2))
    last_of_partition = {}
    for r in records:
        last_of_partition[r.partition] = r
    victims = {r.key for r in last_of_partition.values()}
    drops = ",".join(f"{r.partition}:{r.offset}" for r in records if r.key in victims)

    second = d.start_worker("second", PYTHONPATH=os.pathsep.join(
        [str(FAULTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep), REMARKET_TEST_DROP_CHANGELOG=drops)
    missing = [c for c in customers if second.customer(c) is None]
    assert missing == [], (f"{len(missing)} customers not restored: {missing} (dropped {drops})\n"
                           f"{second.log_tail(30)}")
    assert "Aborted tx until highwater" not in second.log_path.read_text(errors="replace")


def restored_records(worker) -> float:
    return metric_sum(worker.metrics(), "remarket_restored_records_total")


def test_a_restart_reads_only_the_changelog_written_since_the_local_store_was_last_made_durable(deployment):
    """The local store only ever holds committed states (written after their transaction
    commits, with the changelog offset they reach), so it is kept after a clean stop and after a
    SIGKILL alike, and a restart reads only the changelog's tail beyond it."""
    d = deployment
    worker = d.start_worker("w")
    customers = [f"rr-{i}" for i in range(60)]

    def visit(c: str, n: int):
        return (d.topics["visits"], c.encode(), orjson.dumps({
            "event_id": f"{c}-v{n}", "event_type": "visit.page_view", "customer_id": c,
            "occurred_at": datetime.now(timezone.utc).isoformat(), "schema_version": 1}))

    def visits_seen(w, c: str) -> int:
        found = w.customer(c)
        return found["state"].get("events_by_family", {}).get("visits", 0) if found else 0

    run(produce(d.bootstrap, [visit(c, 1) for c in customers]))
    wait_until(lambda: all(worker.customer(c) for c in customers), timeout=60, message="every customer stored")
    topic = changelog_topic(Settings(app_id=d.app_id))
    written = len(run(consume_all(d.bootstrap, topic, timeout=20, settle=2)))
    worker.stop()

    worker.start()  # same data directory, clean stop
    assert all(worker.customer(c) for c in customers)
    after_clean_stop = restored_records(worker)
    run(produce(d.bootstrap, [visit(c, 2) for c in customers[:20]]))
    wait_until(lambda: all(visits_seen(worker, c) == 2 for c in customers[:20]), timeout=60,
               message="the second visits committed")
    worker.kill()
    worker.start()  # same data directory, after SIGKILL: nothing is dropped
    assert [c for c in customers[:20] if visits_seen(worker, c) != 2] == []
    assert [c for c in customers[20:] if visits_seen(worker, c) != 1] == []
    after_kill = restored_records(worker)
    print(f"changelog records {written}; read after a clean stop {after_clean_stop:.0f}, after SIGKILL {after_kill:.0f}")
    assert after_clean_stop < written / 4, f"{after_clean_stop:.0f} of {written} records read again after a clean stop"
    assert after_kill < written / 4, f"{after_kill:.0f} of {written} records read again after a SIGKILL"
