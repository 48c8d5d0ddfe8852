"""Every metric a worker can expose passes `promtool check metrics` (faust's included, renamed)."""
from __future__ import annotations

import subprocess

from prometheus_client import CollectorRegistry, generate_latest

from remarket.shell import faust_metrics
from remarket.shell.metrics import Metrics
from tests.ops.promql import require_tool


def exposition() -> bytes:
    registry = CollectorRegistry()
    Metrics(registry)
    faust = faust_metrics.create(registry, "faust")
    for field in faust_metrics.LATENCIES:
        getattr(faust, field).observe(250.0)  # faust's monitor observes milliseconds
    return generate_latest(registry)


def test_the_exposition_passes_promtool_lint():
    lint = subprocess.run([require_tool("promtool"), "check", "metrics"], input=exposition(), capture_output=True)
    assert lint.returncode == 0, (lint.stdout + lint.stderr).decode()


def test_faust_latencies_are_exported_in_seconds():
    text = exposition().decode()
    assert "faust_events_runtime_ms" not in text
    assert "faust_events_runtime_seconds_sum 0.25" in text
    assert 'faust_producer_send_latency_seconds_bucket{le="0.25"} 1.0' in text


def test_faust_counters_and_gauges_keep_their_names():
    text = exposition().decode()
    for name in ("faust_messages_received_per_topic_total", "faust_table_operations_total",
                 "faust_topic_partition_end_offset", "faust_total_rebalances"):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name


def test_sends_are_counted_per_topic_as_faust_counts_them():
    from faust.sensors.prometheus import PrometheusMonitor
    from remarket.devkit.metrics import metric_sum

    registry = CollectorRegistry()
    monitor = PrometheusMonitor(metrics=faust_metrics.create(registry, "faust"))
    sends = faust_metrics.SendSensors(monitor)
    for topic in ("remarket.actions", "remarket.actions", "remarket.profiles"):
        sends.completed(None, sends.initiated(topic), None)
    text = generate_latest(registry).decode()
    assert metric_sum(text, "faust_topic_messages_sent_total", topic="topic.remarket.actions") == 2
    assert metric_sum(text, "faust_total_sent_messages_total") == 3
    assert monitor.messages_sent_by_topic["remarket.profiles"] == 1
