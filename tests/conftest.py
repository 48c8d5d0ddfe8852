"""Shared fixtures: the real Kafka broker for integration tests.

Broker choice, in order: REMARKET_KAFKA_BOOTSTRAP if set (CI and scripts/test.sh start one);
else Kafka in testcontainers when a Docker engine answers; else a local broker from Maven jars.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from remarket.devkit.broker import LocalBroker

ROOT = Path(__file__).resolve().parents[1]


def _docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> str:
    if bootstrap := os.environ.get("REMARKET_KAFKA_BOOTSTRAP"):
        yield bootstrap
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    broker = LocalBroker(tmp_path_factory.mktemp("kafka"))
    bootstrap = broker.start()
    try:
        yield bootstrap
    finally:
        broker.stop()
