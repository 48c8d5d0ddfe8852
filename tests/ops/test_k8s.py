"""deploy/k8s/, checked statically: StatefulSet with a RocksDB volume, probes, Services,
policy ConfigMap, ServiceMonitor and PrometheusRule consistent with each other and the repo."""
from __future__ import annotations

import yaml

from remarket.domain.policy import load_policy
from tests.ops.promql import ROOT, RULES_FILE
from tests.ops.settings_env import assert_valid_settings

K8S = ROOT / "deploy" / "k8s"


def _docs() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _one(kind: str, name: str | None = None) -> dict:
    found = [d for d in _docs() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def _container() -> dict:
    [container] = _one("StatefulSet")["spec"]["template"]["spec"]["containers"]
    return container


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in K8S.glob("*.yaml")
                                                       if p.name != "kustomization.yaml")
    assert {d["kind"] for d in _docs()} == {"StatefulSet", "Service", "ConfigMap", "ServiceMonitor", "PrometheusRule"}


def test_statefulset_keeps_rocksdb_on_a_persistent_volume_at_the_data_dir(monkeypatch):
    sts = _one("StatefulSet")
    env = {e["name"]: e.get("value", "<from-k8s>") for e in _container()["env"]}
    settings = assert_valid_settings({k: v for k, v in env.items() if v != "<from-k8s>"}, "statefulset", monkeypatch)
    [claim] = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["mountPath"]: m["name"] for m in _container()["volumeMounts"]}
    assert mounts[str(settings.data_dir)] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert sts["spec"]["serviceName"] == _one("Service", "remarket-headless")["metadata"]["name"]
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001  # the image's user


def test_every_remarket_variable_is_a_setting_including_those_from_secrets(monkeypatch):
    names = {e["name"]: "x" for e in _container()["env"]}
    from tests.ops.settings_env import setting_env_names
    assert set(names) <= setting_env_names(), set(names) - setting_env_names()
    secret_refs = [e for e in _container()["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert {e["name"] for e in secret_refs} >= {"REMARKET_LOOKUP_TOKEN", "REMARKET_KAFKA_SASL_PASSWORD"}
    assert all(e["valueFrom"]["secretKeyRef"]["optional"] for e in secret_refs)


def test_web_host_is_the_pod_ip_so_routed_lookups_reach_the_owner():
    [web_host] = [e for e in _container()["env"] if e["name"] == "REMARKET_WEB_HOST"]
    assert web_host["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_probes_hit_healthz_and_readyz_on_the_web_port():
    container = _container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    web_port = int(next(e["value"] for e in container["env"] if e["name"] == "REMARKET_WEB_PORT"))
    assert ports["web"] == web_port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "web"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "web"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "web"}


def test_policy_configmap_is_the_example_policy_and_is_mounted_where_the_setting_points(tmp_path):
    configmap = _one("ConfigMap", "remarket-policy")
    text = configmap["data"]["policy.toml"]
    assert text == (ROOT / "deploy" / "policy.example.toml").read_text()
    (tmp_path / "policy.toml").write_text(text)
    load_policy(tmp_path / "policy.toml")  # valid policy
    policy_file = next(e["value"] for e in _container()["env"] if e["name"] == "REMARKET_POLICY_FILE")
    mounts = {m["name"]: m["mountPath"] for m in _container()["volumeMounts"]}
    volumes = {v["name"]: v for v in _one("StatefulSet")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == "remarket-policy"
    assert policy_file == f"{mounts['policy']}/policy.toml"


def test_services_select_the_pods_and_the_servicemonitor_selects_the_metrics_service():
    pod_labels = _one("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    for service in (_one("Service", "remarket"), _one("Service", "remarket-headless")):
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert service["spec"]["ports"][0]["targetPort"] == "web"
    monitor = _one("ServiceMonitor")
    metrics_service = _one("Service", "remarket")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= metrics_service["metadata"]["labels"].items()
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= \
        _one("Service", "remarket-headless")["metadata"]["labels"].items()  # scraped once, not twice
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "web" and endpoint["path"] == "/metrics"
    assert metrics_service["metadata"]["name"] == "remarket"  # job="remarket" in the alerts and dashboard


def test_prometheusrule_carries_exactly_the_alert_rules_file():
    assert _one("PrometheusRule")["spec"] == yaml.safe_load(RULES_FILE.read_text())
