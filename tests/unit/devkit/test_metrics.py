"""The dev kit's exposition reader: what benchmarks, the soak, the demo and tests rely on."""
from __future__ import annotations

from remarket.devkit.metrics import metric_sum, samples

EXPOSITION = """# HELP remarket_events_total Input records consumed.
# TYPE remarket_events_total counter
remarket_events_total{outcome="applied",topic="visits"} 12.0
remarket_events_total{outcome="rerouted",topic="orders"} 3.0
remarket_events_created{outcome="applied",topic="visits"} 1.7e+09
remarket_restored_records_total 4.0
faust_assignment_latency_seconds_bucket{le="+Inf"} 2.0
"""


def test_samples_are_read_with_their_labels_and_comments_skipped():
    read = list(samples(EXPOSITION))
    assert read[0] == ("remarket_events_total", {"outcome": "applied", "topic": "visits"}, 12.0)
    assert ("remarket_restored_records_total", {}, 4.0) in read
    assert ("faust_assignment_latency_seconds_bucket", {"le": "+Inf"}, 2.0) in read


def test_sums_cover_every_label_set_or_the_chosen_ones_and_never_other_names():
    assert metric_sum(EXPOSITION, "remarket_events_total") == 15.0
    assert metric_sum(EXPOSITION, "remarket_events_total", outcome="rerouted") == 3.0
    assert metric_sum(EXPOSITION, "remarket_restored_records_total") == 4.0
    assert metric_sum(EXPOSITION, "remarket_missing_total") == 0.0
