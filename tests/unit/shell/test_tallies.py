"""Tallied metric updates: what a scrape shows is what prometheus-client would show had each update
gone straight to it."""
from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from remarket.shell.tallies import Immediate, TallyingRegistry, tallies_of

BUCKETS = (0.001, 0.01, 0.1, 1, 10)


def _metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    counter = Counter("remarket_test_records_total", "Records.", ["outcome"], registry=registry)
    histogram = Histogram("remarket_test_seconds", "Seconds.", buckets=BUCKETS, registry=registry)
    return counter, histogram


def _samples(registry: CollectorRegistry) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): round(s.value, 9)
            for family in registry.collect() for s in family.samples if not s.name.endswith("_created")}


def test_a_scrape_shows_every_tallied_update_as_prometheus_client_would():
    tallied, direct = TallyingRegistry(), CollectorRegistry()
    (t_counter, t_histogram), (d_counter, d_histogram) = _metrics(tallied), _metrics(direct)
    rnd = random.Random(7)
    values = [rnd.choice([0.0, 0.001, 0.0005, 0.01, 0.5, 10, 11, 1e9]) for _ in range(500)]
    values += [rnd.uniform(0, 20) for _ in range(500)]
    for i, value in enumerate(values):
        outcome = ("applied", "duplicate", "dead_lettered")[i % 3]
        tallied.tallies.count(t_counter.labels(outcome), 1 if i % 5 else 2)
        d_counter.labels(outcome).inc(1 if i % 5 else 2)
        tallied.tallies.observe(t_histogram, value)
        d_histogram.observe(value)
    assert _samples(tallied) == _samples(direct)
    # bounds are inclusive, as prometheus-client's: 0.001 and 10 land in their own bucket
    assert _samples(tallied)[("remarket_test_seconds_bucket", (("le", "0.001"),))] == sum(v <= 0.001 for v in values)
    # a second scrape adds nothing twice; new updates are added once
    tallied.tallies.count(t_counter.labels("applied"))
    d_counter.labels("applied").inc()
    assert _samples(tallied) == _samples(direct)
    assert generate_latest(tallied).count(b"remarket_test_records_total{") == 3


def test_nothing_is_added_before_the_registry_is_collected_or_flushed():
    registry = TallyingRegistry()
    counter, histogram = _metrics(registry)
    registry.tallies.count(counter.labels("applied"), 3)
    registry.tallies.observe(histogram, 0.5)
    assert counter.labels("applied")._value.get() == 0 and histogram._sum.get() == 0
    registry.tallies.flush()
    assert counter.labels("applied")._value.get() == 3 and histogram._sum.get() == 0.5


def test_a_plain_registry_gets_its_updates_at_once():
    registry = CollectorRegistry()
    counter, histogram = _metrics(registry)
    tallies = tallies_of(registry)
    assert isinstance(tallies, Immediate)
    tallies.count(counter.labels("applied"))
    tallies.observe(histogram, 0.05)
    assert counter.labels("applied")._value.get() == 1 and histogram._sum.get() == 0.05


def test_a_gauge_shows_its_latest_value_at_the_scrape():
    from prometheus_client import Gauge

    registry = TallyingRegistry()
    gauge = Gauge("remarket_test_customers", "Customers.", ["stage"], registry=registry)
    for value in (3, 5, 4):
        registry.tallies.set(gauge.labels("new"), value)
    registry.tallies.set(gauge.labels("churned"), 0)
    assert gauge.labels("new")._value.get() == 0  # not before the scrape
    assert _samples(registry)[("remarket_test_customers", (("stage", "new"),))] == 4
    assert _samples(registry)[("remarket_test_customers", (("stage", "churned"),))] == 0
    gauge.labels("new").set(9)  # set elsewhere after the scrape: nothing tallied overwrites it
    assert _samples(registry)[("remarket_test_customers", (("stage", "new"),))] == 9
    tallies_of(CollectorRegistry()).set(gauge.labels("new"), 1)  # no tallies: at once
    assert gauge.labels("new")._value.get() == 1
