from __future__ import annotations

import pytest

from tests.integration.harness import Deployment


@pytest.fixture
def deployment(kafka_bootstrap, tmp_path):
    deployment = Deployment(kafka_bootstrap, tmp_path)
    result = deployment.cli("topics", "apply")
    assert result.returncode == 0, result.stdout + result.stderr
    yield deployment
    deployment.stop_all()
    for worker in deployment.workers:
        if worker.proc and worker.proc.returncode not in (0, None, -9, -15):
            print(f"--- worker {worker.name} log ---\n{worker.log_tail()}")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
