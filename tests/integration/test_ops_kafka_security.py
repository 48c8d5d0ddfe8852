"""Kafka security against a real broker with a SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512 in KRaft): topics apply, the worker, the simulator and tail work with the right
password; a wrong one fails with an authentication error; the password is never printed or logged.
"""
from __future__ import annotations

import orjson
import pytest

from remarket.devkit.broker import LocalBroker
from tests.integration.harness import Deployment, WorkerProcess, free_port

USER = "remarket-svc"
PASSWORD = "s3cret-Pa55word-that-must-not-leak"
WRONG_PASSWORD = "wrong-Pa55word-also-secret"


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    broker = LocalBroker(tmp_path_factory.mktemp("kafka-sasl"))
    broker.start(sasl_users={USER: PASSWORD})
    try:
        yield broker
    finally:
        broker.stop()


def _sasl_deployment(broker, workdir, mechanism: str, password: str) -> Deployment:
    return Deployment(broker.sasl_bootstrap, workdir, extra_env={
        "REMARKET_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "REMARKET_KAFKA_SASL_MECHANISM": mechanism,
        "REMARKET_KAFKA_SASL_USERNAME": USER,
        "REMARKET_KAFKA_SASL_PASSWORD": password,
    })


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_topics_worker_simulator_and_tail_work_over_sasl_without_printing_the_password(
        sasl_broker, tmp_path, mechanism):
    deployment = _sasl_deployment(sasl_broker, tmp_path, mechanism, PASSWORD)
    outputs = []
    try:
        applied = deployment.cli("topics", "apply")
        outputs.append(applied.stdout + applied.stderr)
        assert applied.returncode == 0, outputs[-1]
        assert "created" in applied.stdout

        worker = deployment.start_worker("w1", REMARKET_LOG_LEVEL="info")  # the default level
        simulated = deployment.cli("simulate", "--customers", "20", "--rate", "20", "--duration", "3",
                                   "--history-days", "30", "--malformed", "0")
        outputs.append(simulated.stdout + simulated.stderr)
        assert simulated.returncode == 0, outputs[-1]

        tailed = deployment.cli("tail", "profiles", "--from-beginning", "--raw", "--limit", "5",
                                "--idle-timeout", "30", timeout=90)
        outputs.append(tailed.stdout + tailed.stderr)
        assert tailed.returncode == 0, outputs[-1]
        profiles = [orjson.loads(line) for line in tailed.stdout.splitlines() if line.startswith("{")]
        assert len(profiles) == 5, tailed.stdout  # the worker consumed over SASL and produced profiles

        status, body = worker.get("/metrics")
        assert status == 200 and b"remarket_events_total" in body
    finally:
        deployment.stop_all()
    logs = "\n".join(outputs) + "\n".join(w.log_path.read_text(errors="replace") for w in deployment.workers)
    assert "due-work index rebuilt" in logs  # the worker's own log is part of what was checked
    assert PASSWORD not in logs


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_a_wrong_password_fails_with_an_authentication_error_and_is_not_printed(sasl_broker, tmp_path, mechanism):
    deployment = _sasl_deployment(sasl_broker, tmp_path, mechanism, WRONG_PASSWORD)
    applied = deployment.cli("topics", "apply", timeout=60)
    output = applied.stdout + applied.stderr
    assert applied.returncode != 0
    assert "SaslAuthenticationFailed" in output and "Authentication failed" in output, output
    assert WRONG_PASSWORD not in output and PASSWORD not in output

    worker = WorkerProcess(deployment, "w1", free_port())
    try:
        with pytest.raises(AssertionError, match="exited with"):
            worker.start(ready_timeout=60)
    finally:
        worker.stop()
    logs = worker.log_path.read_text(errors="replace")
    assert "SaslAuthenticationFailed" in logs, logs[-2000:]
    assert WRONG_PASSWORD not in logs


def test_debug_logging_does_not_print_the_plain_password(sasl_broker, tmp_path):
    deployment = _sasl_deployment(sasl_broker, tmp_path, "PLAIN", PASSWORD)
    try:
        assert deployment.cli("topics", "apply").returncode == 0
        worker = deployment.start_worker("w1", REMARKET_LOG_LEVEL="debug")
    finally:
        deployment.stop_all()
    logs = worker.log_path.read_text(errors="replace")
    assert "Authenticated as" in logs  # debug output of the SASL handshake is there
    assert PASSWORD not in logs
