"""The Grafana dashboard is well formed, covers what ops watch, and only queries real metrics."""
from __future__ import annotations

import yaml

from tests.ops.promql import (DASHBOARD_FILE, ROOT, dashboard_panels, dashboard_queries, exposable_metric_names,
                              load_dashboard, metric_names)

GRAFANA = ROOT / "deploy" / "grafana"


def test_dashboard_has_unique_panel_ids_and_a_stable_uid():
    dashboard = load_dashboard()
    assert dashboard["uid"] == "remarket-overview"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_covers_throughput_lag_latency_actions_suppressions_stages_dead_letters_rebalances():
    exprs = " ".join(expr for _, expr in dashboard_queries())
    for metric in ("remarket_events_total", "remarket_consumer_lag_records",
                   "remarket_event_to_action_latency_seconds_bucket", "remarket_actions_total",
                   "remarket_suppressions_total", "remarket_customers", "remarket_stage_transitions_total",
                   "remarket_dead_letters_total", "faust_rebalance_done_latency_seconds_count",
                   "remarket_due_work_lateness_seconds_bucket", "faust_messages_received_per_topic_total"):
        assert metric in exprs, f"no panel shows {metric}"


def test_every_panel_query_selects_job_remarket_and_the_worker_variable():
    for panel in dashboard_panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'job="remarket"' in target["expr"], panel["title"]
            assert 'instance=~"$instance"' in target["expr"], panel["title"]
            assert target["datasource"]["uid"] == "${datasource}"


def test_dashboard_queries_use_only_metrics_a_worker_exposes():
    exposable = exposable_metric_names()
    for title, expr in dashboard_queries():
        unknown = metric_names(expr) - exposable
        assert not unknown, f"panel {title!r} selects unknown metrics {unknown}"


def test_panels_do_not_overlap_on_the_grid():
    taken: set[tuple[int, int]] = set()
    for panel in load_dashboard()["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"panel {panel['title']!r} overlaps another"
        taken |= cells


def test_provisioning_points_grafana_at_prometheus_and_the_dashboard_folder():
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [ds] = datasources["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "remarket.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert DASHBOARD_FILE.parent.name == "dashboards"
