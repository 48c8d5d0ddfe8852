"""What the ops tests share: the dashboard's and the alert rules' PromQL, and the metric names
a worker can expose (built from the same code the worker runs, no worker needed)."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "rules" / "remarket-alerts.yml"
RULES_TEST_FILE = PROMETHEUS_DIR / "tests" / "remarket-alerts.test.yml"
DASHBOARD_FILE = ROOT / "deploy" / "grafana" / "dashboards" / "remarket.json"

# Grafana template variables and what a test substitutes for them ("all workers").
GRAFANA_VARIABLES = {"$__rate_interval": "2m", "$instance": ".*"}

PROMQL_KEYWORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "max", "min", "avg", "count",
                   "delta", "deriv", "and", "or", "unless", "without", "on", "ignoring", "le",
                   "label_values", "vector", "absent", "topk", "bool"}


def load_rules() -> list[dict]:
    doc = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def alert_rules() -> list[dict]:
    return [rule for rule in load_rules() if "alert" in rule]


def load_dashboard() -> dict:
    return json.loads(DASHBOARD_FILE.read_text())


def dashboard_panels() -> list[dict]:
    return [p for p in load_dashboard()["panels"] if p.get("type") != "row"]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title + refId, PromQL with Grafana variables substituted)."""
    queries = []
    for panel in dashboard_panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((f"{panel['title']} [{target['refId']}]", expr))
    return queries


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (identifiers before a `{` or `[`, minus functions)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "{}", without_strings)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=[{\[])", without_labels))
    names |= set(re.findall(r"\b((?:remarket|faust)_[a-zA-Z0-9_]+)\b", without_labels))
    return {n for n in names if n not in PROMQL_KEYWORDS}


def exposable_metric_names() -> set[str]:
    """Every sample name a worker's /metrics can carry: remarket's Metrics and faust's sensors."""
    from prometheus_client import CollectorRegistry

    from remarket.shell import faust_metrics
    from remarket.shell.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    faust_metrics.create(registry, "faust")
    names = {"up"}
    for family in registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_count", "_sum")}
    return names


def require_tool(name: str) -> str:
    """Path of a Prometheus tool; skipped where it is missing, except in CI (scripts/test.sh installs it)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not on PATH: `apt-get install prometheus` (scripts/test.sh does it when run as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
