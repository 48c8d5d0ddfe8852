from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.harness import CpuContention, Deployment

POLICIES = Path(__file__).parent / "policies"


@pytest.fixture
def make_deployment(kafka_bootstrap, tmp_path):
    """Deployments with their topics applied, optionally under a test policy (policies/NAME.toml);
    every worker they start is stopped at the end."""
    made: list[Deployment] = []

    def make(policy: str | None = None, **kwargs) -> Deployment:
        extra_env = kwargs.pop("extra_env", {})
        if policy is not None:
            extra_env["REMARKET_POLICY_FILE"] = str(POLICIES / f"{policy}.toml")
        deployment = Deployment(kafka_bootstrap, tmp_path, extra_env=extra_env, **kwargs)
        result = deployment.cli("topics", "apply")
        assert result.returncode == 0, result.stdout + result.stderr
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.stop_all()
        for worker in deployment.workers:
            if worker.proc and worker.proc.returncode not in (0, None, -9, -15):
                print(f"--- worker {worker.name} log ---\n{worker.log_tail()}")


@pytest.fixture
def cpu_contended():
    """One busy process per core for the test's duration (CRASH_CONTENTION=0 turns it off)."""
    if os.environ.get("CRASH_CONTENTION", "1") == "0":
        yield 0
        return
    with CpuContention() as contention:
        yield contention.processes


@pytest.fixture
def deployment(make_deployment):
    return make_deployment()


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
