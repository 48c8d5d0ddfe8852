"""docker-compose.yml, checked statically (no Docker engine here): services, images, ports,
volumes, and that the worker configuration is valid for the Settings model."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.ops.promql import ROOT
from tests.ops.settings_env import assert_valid_settings

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
REMARKET_SERVICES = ["topics", "worker-1", "worker-2", "simulator"]


def test_services_and_images():
    assert set(SERVICES) == {"kafka", "topics", "worker-1", "worker-2", "simulator", "prometheus", "grafana"}
    assert SERVICES["kafka"]["image"] == "apache/kafka:4.1.1"
    assert SERVICES["prometheus"]["image"].startswith("prom/prometheus:v")
    assert SERVICES["grafana"]["image"].startswith("grafana/grafana:")
    for name in REMARKET_SERVICES:
        assert SERVICES[name]["build"] == "." and (ROOT / "Dockerfile").exists()
    assert SERVICES["simulator"]["profiles"] == ["sim"]
    assert all("profiles" not in SERVICES[s] for s in SERVICES if s != "simulator")


def test_kafka_runs_kraft_without_zookeeper():
    env = SERVICES["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # `topics apply` creates them


def test_topics_are_initialised_before_workers_start():
    assert SERVICES["topics"]["command"] == ["topics", "apply"]
    assert SERVICES["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("worker-1", "worker-2", "simulator"):
        assert SERVICES[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_host_ports_are_unique_and_expected():
    published = {}
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            host, container = mapping.split(":")
            assert host not in published, f"{name} and {published.get(host)} both publish {host}"
            published[host] = name
    assert published == {"9092": "kafka", "6066": "worker-1", "6067": "worker-2", "9090": "prometheus",
                         "3000": "grafana"}
    for name in ("worker-1", "worker-2"):
        assert SERVICES[name]["ports"][0].endswith(":" + SERVICES[name]["environment"]["REMARKET_WEB_PORT"])


def _mounts(service: dict) -> dict[str, str]:
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target] = source
    return mounts


def test_bind_mounts_exist_and_named_volumes_are_declared():
    declared = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        for target, source in _mounts(service).items():
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"


@pytest.mark.parametrize("name", REMARKET_SERVICES)
def test_remarket_environment_is_valid_for_the_settings_model(name, monkeypatch):
    settings = assert_valid_settings(SERVICES[name]["environment"], f"docker-compose {name}", monkeypatch)
    assert settings.kafka_bootstrap == "kafka:9092"


@pytest.mark.parametrize("name", ["worker-1", "worker-2"])
def test_each_worker_keeps_its_own_state_volume_and_the_policy(name, monkeypatch):
    service = SERVICES[name]
    settings = assert_valid_settings(service["environment"], name, monkeypatch)
    mounts = _mounts(service)
    assert mounts[str(settings.data_dir)] == f"{name}-state"
    policy_dir = str(Path(settings.policy_file).parent)
    assert mounts[str(settings.policy_file)] == "./deploy/policy.example.toml" or mounts.get(policy_dir)
    # the web server advertises a name the other worker can reach (routed lookups)
    assert settings.web_host == service["hostname"] == name
    assert name in str(service["healthcheck"]["test"])


def test_prometheus_and_grafana_get_the_repo_config():
    prom = _mounts(SERVICES["prometheus"])
    assert prom["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert prom["/etc/prometheus/rules"] == "./deploy/prometheus/rules"
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())["scrape_configs"][0]
    workers = {f"{n}:{SERVICES[n]['environment']['REMARKET_WEB_PORT']}" for n in ("worker-1", "worker-2")}
    assert set(scrape["static_configs"][0]["targets"]) == workers
    grafana = _mounts(SERVICES["grafana"])
    assert grafana["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert grafana["/var/lib/grafana/dashboards"] == "./deploy/grafana/dashboards"


def test_dockerfile_runs_remarket_as_non_root_with_the_state_volume():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER remarket" in dockerfile
    assert "REMARKET_DATA_DIR=/var/lib/remarket" in dockerfile
    assert 'ENTRYPOINT ["remarket"]' in dockerfile
