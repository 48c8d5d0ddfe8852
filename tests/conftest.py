"""Shared fixtures: the real Kafka broker for integration tests.

Broker choice, in order: REMARKET_KAFKA_BOOTSTRAP if set (CI and scripts/test.sh start one);
else Kafka in testcontainers when a Docker engine answers; else a local broker from Maven jars.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_local_broker_module():
    spec = importlib.util.spec_from_file_location("local_broker", ROOT / "deploy" / "kafka" / "local_broker.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("local_broker", module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


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
    broker = load_local_broker_module().LocalBroker(tmp_path_factory.mktemp("kafka"))
    bootstrap = broker.start()
    try:
        yield bootstrap
    finally:
        broker.stop()
