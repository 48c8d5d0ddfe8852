"""Faust's own sensors on /metrics under names that pass `promtool check metrics`.

faust's `setup_prometheus_sensors` exports its latencies as histograms in milliseconds named
`faust_events_runtime_ms`, `faust_producer_send_latency`, ...: promtool rejects the abbreviated
unit, and the unit-less ones hide theirs. Here every latency histogram is exported in seconds
with a `_seconds` suffix (the Prometheus base unit); faust's monitor still feeds milliseconds, so
each histogram divides on the way in. Counters and gauges keep faust's names.
"""
from __future__ import annotations

from typing import Any, Sequence

from aiohttp.web import Response
from faust.sensors.prometheus import MS_LATENCY_BUCKETS, FaustMetrics, PrometheusMonitor
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest

from remarket.shell.tallies import Immediate, Tallies, tallies_of

SECONDS_BUCKETS = tuple(ms / 1000 for ms in MS_LATENCY_BUCKETS)

# FaustMetrics field -> (exported name after the prefix, help)
LATENCIES = {
    "events_runtime_latency": ("events_runtime_seconds", "Time an event spent in the stream (seconds)."),
    "producer_send_latency": ("producer_send_latency_seconds", "Producer send latency (seconds)."),
    "producer_error_send_latency": ("producer_error_send_latency_seconds",
                                    "Latency of producer sends that failed (seconds)."),
    "assign_latency": ("assign_latency_seconds", "Partition assignment latency (seconds)."),
    "rebalance_done_consumer_latency": ("rebalance_done_consumer_latency_seconds",
                                        "Time until the consumer replied that the rebalance is done (seconds)."),
    "rebalance_done_latency": ("rebalance_done_latency_seconds", "Time until a rebalance finished (seconds)."),
    "http_latency": ("http_latency_seconds", "Web response latency (seconds)."),
    "consumer_commit_latency": ("consumer_commit_latency_seconds", "Consumer commit latency (seconds)."),
}


class MillisecondsToSeconds:
    """What faust's monitor calls on a histogram (`observe` in ms), recorded in seconds (tallied:
    the send latency is observed once per record produced)."""

    def __init__(self, histogram: Histogram, tallies: Tallies | Immediate) -> None:
        self.histogram, self.tallies = histogram, tallies

    def observe(self, milliseconds: float) -> None:
        self.tallies.observe(self.histogram, milliseconds / 1000)


def create(registry: CollectorRegistry, prefix: str = "faust") -> FaustMetrics:
    """faust's metrics, registered in `registry` under lint-clean names."""
    scratch = CollectorRegistry()  # faust's originals land here; all but the latencies move over
    metrics = FaustMetrics.create(scratch, prefix)
    replaced: dict[str, Any] = {}
    for field, collector in metrics._asdict().items():
        if field in LATENCIES:
            name, documentation = LATENCIES[field]
            replaced[field] = MillisecondsToSeconds(Histogram(
                f"{prefix}_{name}", documentation, registry=registry, buckets=SECONDS_BUCKETS), tallies_of(registry))
        else:
            registry.register(collector)
    missing = set(LATENCIES) - set(replaced)
    assert not missing, f"faust renamed its latency metrics: {missing}"
    return metrics._replace(**replaced)


def setup(app: Any, registry: CollectorRegistry, pattern: str = "/metrics", prefix: str = "faust") -> None:
    """In place of faust's `setup_prometheus_sensors`: the monitor and the /metrics page."""
    app.monitor = PrometheusMonitor(metrics=create(registry, prefix))
    app.monitor.tallies = tallies_of(registry)  # SendSensors and TableSensors count through it

    @app.page(pattern)
    async def metrics_page(view: Any, request: Any) -> Response:
        return Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}, status=200)


class SendSensors:
    """faust's per-send sensor calls for the monitor set up here, minus prometheus-client's label
    lookup per record (`topic_messages_sent.labels(...)` was 4.3 % of the worker's samples): the
    labelled child of each topic is kept. Same counts, same latency histogram."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor
        self._metrics = getattr(monitor, "_metrics", None)
        self._sent_by_topic: dict[str, Any] = {}
        self._tallies = tallies_of(monitor)

    def initiated(self, topic: str) -> float:
        monitor = self.monitor
        monitor.messages_sent += 1
        monitor.messages_sent_by_topic[topic] += 1
        if self._metrics is not None:
            child = self._sent_by_topic.get(topic)
            if child is None:
                child = self._sent_by_topic[topic] = self._metrics.topic_messages_sent.labels(topic=f"topic.{topic}")
            self._tallies.count(child)
        return monitor.time()

    def completed(self, producer: Any, state: float, metadata: Any) -> None:
        self.completed_many(producer, (state,), metadata)

    def completed_many(self, producer: Any, states: Sequence[float], metadata: Any) -> None:
        """faust's `on_send_completed` for each record of a produce batch (`metadata`: the batch's)."""
        monitor = self.monitor
        if self._metrics is None or type(monitor).on_send_completed is not PrometheusMonitor.on_send_completed:
            for state in states:
                monitor.on_send_completed(producer, state, metadata)
            return
        # PrometheusMonitor.on_send_completed (Monitor's, then its counter, tallied, and its
        # histogram in milliseconds), with the time read once for the batch
        now, latencies = monitor.time(), monitor.send_latency
        histogram = self._metrics.producer_send_latency
        for state in states:
            latencies.append(now - state)
            histogram.observe((now - state) * 1000.0)
        self._tallies.count(self._metrics.total_sent_messages, len(states))

    def error(self, producer: Any, exc: BaseException, state: float) -> None:
        self.monitor.on_send_error(producer, exc, state)


class TableSensors:
    """faust's per-record table sensor calls (`on_table_get`, `on_table_set`, `on_table_del`) for
    the monitor set up here, minus the label lookup per call (`table_operations.labels(...)`,
    2.8 % of the worker's samples for the gets alone): the labelled children are kept. Same
    counts; any other sensor added to the app is still called."""

    def __init__(self, sensors: Any, monitor: Any, table: Any) -> None:
        self.monitor, self.table = monitor, table
        self._others = [sensor for sensor in sensors if sensor is not monitor]
        self._counts = monitor._table_or_create(table)  # faust's TableState: keys_retrieved, ...
        self._tallies = tallies_of(monitor)
        metrics = getattr(monitor, "_metrics", None)
        self._children = {operation: metrics.table_operations.labels(table=f"table.{table.name}", operation=operation)
                          for operation in ("keys_retrieved", "keys_updated", "keys_deleted")} if metrics else {}

    def got(self, key: Any) -> None:
        self._counts.keys_retrieved += 1
        self._count("keys_retrieved")
        for sensor in self._others:
            sensor.on_table_get(self.table, key)

    def set(self, key: Any, value: Any) -> None:
        self._counts.keys_updated += 1
        self._count("keys_updated")
        for sensor in self._others:
            sensor.on_table_set(self.table, key, value)

    def deleted(self, key: Any) -> None:
        self._counts.keys_deleted += 1
        self._count("keys_deleted")
        for sensor in self._others:
            sensor.on_table_del(self.table, key)

    def _count(self, operation: str) -> None:
        child = self._children.get(operation)
        if child is not None:
            self._tallies.count(child)


def table_sensors(app: Any, table: Any, current: TableSensors | None) -> TableSensors:
    """`current` while the app's monitor is the one it was made for (the monitor is chosen after wiring)."""
    if current is None or current.monitor is not app.monitor:
        current = TableSensors(app.sensors, app.monitor, table)
    return current
