"""The sizing figures in docs/deployment.md rest on a measurement: per-customer state stays small
and bounded as activity accumulates (compact state: short aliases, capped id lists)."""
from __future__ import annotations

from tests.ops.promql import ROOT
from remarket.devkit.sizing import measure

STATE_BUDGET_BYTES = 4096  # docs/deployment.md sizes disks with this ceiling per customer


def test_simulated_customers_state_stays_within_the_documented_budget():
    light = measure(customers=200, days=10, events_per_customer_day=0.5)
    heavy = measure(customers=100, days=30, events_per_customer_day=4)
    assert light["customers_with_state"] > 150 and heavy["customers_with_state"] > 80
    assert heavy["events_applied"] > 10_000
    for figures in (light, heavy):
        assert figures["state_bytes_max"] <= STATE_BUDGET_BYTES, figures
        assert 0 < figures["rocksdb_sst_bytes"]
    # more activity per customer does not make state grow without bound
    assert heavy["state_bytes_p99"] <= 2 * light["state_bytes_p99"] + 1024, (light, heavy)


def test_deployment_guide_states_the_budget_and_how_to_remeasure():
    guide = (ROOT / "docs" / "deployment.md").read_text()
    assert "python -m remarket.devkit.sizing" in guide
    assert f"{STATE_BUDGET_BYTES:,} bytes" in guide or f"{STATE_BUDGET_BYTES} bytes" in guide
