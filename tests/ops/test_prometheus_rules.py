"""The alert rules and the scrape config pass promtool, and the rules' unit tests pass."""
from __future__ import annotations

import subprocess

import yaml

from tests.ops.promql import (PROMETHEUS_DIR, RULES_FILE, RULES_TEST_FILE, alert_rules, exposable_metric_names,
                              metric_names, require_tool)

REQUIRED_ALERTS = {"RemarketWorkerDown", "RemarketConsumerLagGrowing", "RemarketDeadLetterRateHigh",
                   "RemarketEventsButNoActions", "RemarketRecoveryStuck", "RemarketDueWorkLate"}


def test_promtool_check_rules_passes():
    promtool = require_tool("promtool")
    done = subprocess.run([promtool, "check", "rules", str(RULES_FILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in done.stdout


def test_promtool_unit_tests_of_the_alerts_pass():
    promtool = require_tool("promtool")
    done = subprocess.run([promtool, "test", "rules", str(RULES_TEST_FILE)], capture_output=True, text=True,
                          cwd=RULES_TEST_FILE.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_check_config_passes_for_the_scrape_config(tmp_path):
    promtool = require_tool("promtool")
    # the config names its rules by their in-container path; point it at the repo's copy
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(RULES_FILE)]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    done = subprocess.run([promtool, "check", "config", str(local)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_scrape_config_scrapes_both_compose_workers_as_job_remarket():
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["job_name"] == "remarket"
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["worker-1:6066", "worker-2:6066"]


def test_every_required_alert_exists_with_severity_runbook_and_summary():
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert REQUIRED_ALERTS <= set(rules)
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{name.lower()}", name
        assert rule["annotations"]["summary"], name


def test_every_alert_has_a_runbook_section():
    from tests.ops.promql import ROOT

    runbook = (ROOT / "docs" / "runbook.md").read_text()
    for rule in alert_rules():
        assert f"\n## {rule['alert']}\n" in runbook, f"docs/runbook.md has no '## {rule['alert']}' section"


def test_every_alert_is_unit_tested_firing_and_not_firing():
    tests = yaml.safe_load(RULES_TEST_FILE.read_text())["tests"]
    fired, quiet = set(), set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names <= fired, f"never shown firing: {names - fired}"
    assert names <= quiet, f"never shown quiet: {names - quiet}"


def test_alert_expressions_use_only_metrics_a_worker_exposes():
    exposable = exposable_metric_names()
    for rule in alert_rules():
        unknown = metric_names(rule["expr"]) - exposable
        assert not unknown, f"{rule['alert']} selects unknown metrics {unknown}"
