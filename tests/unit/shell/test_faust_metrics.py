"""faust's sensors, fed without a label lookup per record, count what faust's own calls count."""
from __future__ import annotations

from types import SimpleNamespace

from faust.sensors.prometheus import PrometheusMonitor
from prometheus_client import CollectorRegistry

from remarket.shell.faust_metrics import TableSensors, create, table_sensors


def monitor() -> tuple[PrometheusMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    return PrometheusMonitor(metrics=create(registry)), registry


def operations(registry: CollectorRegistry) -> dict[str, float]:
    return {sample.labels["operation"]: sample.value for metric in registry.collect()
            for sample in metric.samples if sample.name == "faust_table_operations_total"}


def test_table_sensors_count_what_faust_counts_and_call_other_sensors():
    table = SimpleNamespace(name="customers")
    theirs, their_registry = monitor()
    ours, our_registry = monitor()
    other_calls: list[str] = []
    other = SimpleNamespace(on_table_get=lambda t, k: other_calls.append(f"get {k!r}"),
                            on_table_set=lambda t, k, v: other_calls.append(f"set {k!r}"),
                            on_table_del=lambda t, k: other_calls.append(f"del {k!r}"))
    sensors = TableSensors([ours, other], ours, table)
    for key in (b"a", b"b", b"a"):
        theirs.on_table_get(table, key)
        sensors.got(key)
    theirs.on_table_set(table, b"a", b"1")
    sensors.set(b"a", b"1")
    theirs.on_table_del(table, b"b")
    sensors.deleted(b"b")

    assert operations(our_registry) == operations(their_registry) == {
        "keys_retrieved": 3.0, "keys_updated": 1.0, "keys_deleted": 1.0}
    assert (ours.tables["customers"].keys_retrieved, ours.tables["customers"].keys_updated,
            ours.tables["customers"].keys_deleted) == (3, 1, 1)
    assert other_calls == ["get b'a'", "get b'b'", "get b'a'", "set b'a'", "del b'b'"]


def test_table_sensors_follow_the_monitor_the_app_has_now():
    table = SimpleNamespace(name="customers")
    first, _ = monitor()
    app = SimpleNamespace(sensors=[first], monitor=first)
    sensors = table_sensors(app, table, None)
    assert table_sensors(app, table, sensors) is sensors
    app.monitor = app.sensors[0] = monitor()[0]  # faust chose its monitor after wiring
    assert table_sensors(app, table, sensors).monitor is app.monitor


def test_send_sensors_tallied_count_what_faust_counts_once_the_registry_is_collected():
    from remarket.shell.faust_metrics import SendSensors
    from remarket.shell.tallies import TallyingRegistry, tallies_of

    theirs, their_registry = monitor()
    our_registry = TallyingRegistry()
    ours = PrometheusMonitor(metrics=create(our_registry))
    ours.tallies = tallies_of(our_registry)  # as faust_metrics.setup does
    sensors = SendSensors(ours)
    for topic in ("actions", "profiles", "actions"):
        theirs.on_send_completed(None, theirs.on_send_initiated(None, topic, None, 10, 10), None)
        sensors.completed(None, sensors.initiated(topic), None)

    def sent(registry) -> dict:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for metric in registry.collect()
                for s in metric.samples if s.name in ("faust_total_sent_messages_total", "faust_topic_messages_sent_total",
                                                      "faust_producer_send_latency_seconds_count")}

    assert ours.tallies._counts  # not added yet: tallied
    assert sent(our_registry) == sent(their_registry)
    assert sent(our_registry)[("faust_total_sent_messages_total", ())] == 3
    assert len(ours.send_latency) == len(theirs.send_latency) == 3
