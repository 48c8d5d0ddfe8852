"""Topic layout on the real broker: drift is reported and fixed only when asked, the worker refuses a
missing input topic (and does not create it), and `tail` of a missing topic fails fast."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.harness import Deployment, free_port, run, wait_until


async def _admin(bootstrap: str, action):
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await action(admin)
    finally:
        await admin.close()


def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    async def describe(admin):
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [resource] = response.to_object()["resources"]
        return {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
    return run(_admin(bootstrap, describe))


def set_topic_configs(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    async def alter(admin):
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
    run(_admin(bootstrap, alter))


def create_topic(bootstrap: str, topic: str, partitions: int, configs: dict[str, str]) -> None:
    from aiokafka.admin import NewTopic

    async def create(admin):
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
    run(_admin(bootstrap, create))


def partition_counts(bootstrap: str) -> dict[str, int]:
    async def describe(admin):
        names = await admin.list_topics()
        return {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(names)}
    return run(_admin(bootstrap, describe))


def test_topics_apply_reports_config_drift_and_changes_it_only_with_alter(deployment):
    profiles = deployment.topics["profiles"]
    set_topic_configs(deployment.bootstrap, profiles, {"cleanup.policy": "delete", "retention.ms": "60000"})
    # the state changelog (faust's) must stay compacted: one made with delete is drift too
    changelog = f"{deployment.app_id}-customers-changelog"
    create_topic(deployment.bootstrap, changelog, deployment.partitions, {"cleanup.policy": "delete"})

    checked = deployment.cli("topics", "apply")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    drift = [line for line in checked.stdout.splitlines() if line.startswith("drift")]
    assert any(profiles in line and "cleanup.policy: has delete" in line and "compact" in line for line in drift), drift
    assert any(profiles in line and "retention.ms: has 60000" in line and "-1" in line for line in drift), drift
    assert any(changelog in line and "cleanup.policy: has delete" in line for line in drift), drift
    assert len(drift) == 3, checked.stdout  # nothing else drifted
    assert "--alter" in checked.stderr
    configs = topic_configs(deployment.bootstrap, profiles)
    assert (configs["cleanup.policy"], configs["retention.ms"]) == ("delete", "60000"), "changed without --alter"

    altered = deployment.cli("topics", "apply", "--alter")
    assert altered.returncode == 0, altered.stdout + altered.stderr
    assert sum(line.startswith("altered") and profiles in line for line in altered.stdout.splitlines()) == 2
    configs = topic_configs(deployment.bootstrap, profiles)
    assert (configs["cleanup.policy"], configs["retention.ms"]) == ("compact", "-1")
    assert topic_configs(deployment.bootstrap, changelog)["cleanup.policy"] == "compact"

    again = deployment.cli("topics", "apply")
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(line.startswith("ok") for line in again.stdout.splitlines()), again.stdout


def test_alter_grows_output_topics_but_never_repartitions_co_partitioned_ones(deployment):
    more = deployment.env(REMARKET_PARTITIONS="3")
    result = subprocess.run([sys.executable, "-m", "remarket.cli", "topics", "apply", "--alter"], env=more,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    mismatched = [line for line in result.stdout.splitlines() if line.startswith("mismatch")]
    assert any(deployment.topics["orders"] in line and "co-partitioning" in line for line in mismatched), result.stdout
    counts = partition_counts(deployment.bootstrap)
    assert counts[deployment.topics["orders"]] == 2 and counts[deployment.topics["ticks"]] == 2
    assert counts[deployment.topics["actions"]] == 3, "an output topic may grow with --alter"


def test_a_topic_the_broker_refuses_to_create_is_reported_not_claimed_created(kafka_bootstrap, tmp_path):
    deployment = Deployment(kafka_bootstrap, tmp_path)  # its topics do not exist yet
    result = deployment.cli("topics", "apply", env={"REMARKET_REPLICATION_FACTOR": "3"})  # one broker here
    assert result.returncode == 2, result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith("failed")]
    assert len(failed) == len(deployment.topics) and all("replication" in line.lower() for line in failed), failed
    assert not [line for line in result.stdout.splitlines() if line.startswith("created")]


def test_the_worker_refuses_a_missing_input_topic_and_does_not_create_it(deployment, tmp_path):
    typo = deployment.topics["orders"] + "-typo"
    env = deployment.env(REMARKET_TOPIC_ORDERS=typo, REMARKET_WEB_PORT=str(free_port()),
                         REMARKET_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run([sys.executable, "-m", "remarket.cli", "worker"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert typo in line and "remarket topics apply" in line and "REMARKET_TOPIC_ORDERS" in line
    assert typo not in partition_counts(deployment.bootstrap), "the worker created the missing input topic"


def test_a_worker_missing_an_input_creates_none_of_its_other_topics(kafka_bootstrap, tmp_path):
    deployment = Deployment(kafka_bootstrap, tmp_path)  # nothing applied
    env = deployment.env(REMARKET_WEB_PORT=str(free_port()), REMARKET_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run([sys.executable, "-m", "remarket.cli", "worker"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == len(["visits", "orders", "carts", "email", "consent"])
    assert not set(deployment.topics.values()) & set(partition_counts(kafka_bootstrap))


def test_tail_of_a_missing_topic_fails_at_once_naming_it(deployment):
    started = time.monotonic()
    result = deployment.cli("tail", "no-such-topic", timeout=30)
    assert time.monotonic() - started < 10
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "no-such-topic" in line
    assert "no-such-topic" not in partition_counts(deployment.bootstrap)


@pytest.fixture(scope="module")
def auto_creating_broker(tmp_path_factory):
    """Kafka's default: a metadata request naming a missing topic creates it."""
    from remarket.devkit.broker import LocalBroker

    broker = LocalBroker(tmp_path_factory.mktemp("kafka-autocreate"))
    bootstrap = broker.start(extra_config={"auto.create.topics.enable": "true"})
    try:
        yield bootstrap
    finally:
        broker.stop()


def test_on_a_broker_that_auto_creates_topics_neither_worker_nor_tail_creates_a_missing_one(
        auto_creating_broker, tmp_path):
    bootstrap = auto_creating_broker

    async def subscribe_briefly(topic: str) -> None:  # what a naive client does
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None)
        await consumer.start()
        try:
            await consumer.getmany(timeout_ms=2000)
        finally:
            await consumer.stop()

    run(subscribe_briefly("control-auto-created"))
    wait_until(lambda: "control-auto-created" in partition_counts(bootstrap), timeout=10,
               message="the broker auto-creates topics (else this test proves nothing)")

    deployment = Deployment(bootstrap, tmp_path)
    assert deployment.cli("topics", "apply").returncode == 0
    typo = deployment.topics["orders"] + "-typo"
    env = deployment.env(REMARKET_TOPIC_ORDERS=typo, REMARKET_WEB_PORT=str(free_port()),
                         REMARKET_DATA_DIR=str(tmp_path / "data"))
    worker = subprocess.run([sys.executable, "-m", "remarket.cli", "worker"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert worker.returncode == 2 and typo in worker.stderr, worker.stdout + worker.stderr
    tail = deployment.cli("tail", "no-such-topic", timeout=30)
    assert tail.returncode == 2 and "no-such-topic" in tail.stderr
    time.sleep(1)
    topics = partition_counts(bootstrap)
    assert typo not in topics and "no-such-topic" not in topics, sorted(topics)
