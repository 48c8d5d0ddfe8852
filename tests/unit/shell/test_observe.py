"""The Observer turns each handled record into metrics: counted by role and outcome, once."""
from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from remarket.devkit.metrics import metric_sum
from remarket.shell.metrics import Metrics
from remarket.shell.observe import Observer
from remarket.shell.pipeline import Handled, OutRecord

ROLES = {"remarket.orders": "orders", "remarket.ticks": "ticks", "remarket.rerouted": "rerouted"}


def observer() -> tuple[Observer, CollectorRegistry]:
    registry = CollectorRegistry()
    return Observer(Metrics(registry), ROLES), registry


def message(topic: str) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, timestamp=None)


def exposition(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


def test_records_are_counted_by_role_and_outcome_and_ticks_apart():
    obs, registry = observer()
    obs.record(Handled("applied"), message("remarket.orders"), 0.0)
    obs.record(Handled("rerouted"), message("remarket.orders"), 0.0)
    obs.record(Handled("applied"), message("remarket.rerouted"), 0.0)
    obs.record(Handled("tick"), message("remarket.ticks"), 0.0)
    text = exposition(registry)
    assert metric_sum(text, "remarket_events_total", topic="orders", outcome="applied") == 1
    assert metric_sum(text, "remarket_events_total", topic="orders", outcome="rerouted") == 1
    assert metric_sum(text, "remarket_events_total", topic="rerouted", outcome="applied") == 1
    assert metric_sum(text, "remarket_ticks_total", phase="handled") == 1


def test_a_cut_dead_letter_is_counted_as_truncated_too():
    obs, registry = observer()
    cut = OutRecord("dead_letter", b"k", b"v", [("remarket-dlq-truncated", b"true")])
    obs.record(Handled("dead_lettered", records=[cut], dead_letter_reason="too_large"),
               message("remarket.orders"), 0.0)
    text = exposition(registry)
    assert metric_sum(text, "remarket_dead_letters_total", reason="too_large") == 1
    assert metric_sum(text, "remarket_dead_letters_truncated_total") == 1
    assert metric_sum(text, "remarket_events_total", outcome="dead_lettered") == 1


def test_segment_gauges_follow_moves_and_a_rebuild_replaces_them():
    from collections import Counter

    obs, registry = observer()
    obs.move_segment(None, ("growth", "gold"))
    obs.move_segment(("growth", "gold"), ("mature", "gold"))
    text = exposition(registry)
    assert metric_sum(text, "remarket_customers", stage="mature") == 1
    assert metric_sum(text, "remarket_customers", stage="growth") == 0
    obs.reset_segments(Counter({("churned", "bronze"): 3}))
    text = exposition(registry)
    assert metric_sum(text, "remarket_customers", stage="churned") == 3
    assert metric_sum(text, "remarket_customers", stage="mature") == 0


def test_withdrawals_deferrals_and_expiries_are_counted_by_kind_and_reason():
    from datetime import datetime, timezone

    from remarket.domain.actions import Withdrawal
    from remarket.domain.process import Outcome

    withdrawal = Withdrawal(action_id="w-1", withdrawn_action_id="a-1", withdrawn_kind="payment_reminder",
                            customer_id="c-1", channel="email", withdrawn_send_after=datetime.now(timezone.utc),
                            reason="order_paid", policy_version="p", created_at=datetime.now(timezone.utc))
    core = Outcome(state=None, duplicate=True, withdrawals=(withdrawal,),
                   deferred=(("lifecycle_churned", "daily_cap"),), expired=(("targeted_coupon", "window_passed"),))
    obs, registry = observer()
    obs.record(Handled("applied", core=core), message("remarket.orders"), 0.0)
    text = exposition(registry)
    assert metric_sum(text, "remarket_withdrawals_total", kind="payment_reminder", reason="order_paid") == 1
    assert metric_sum(text, "remarket_deferrals_total", kind="lifecycle_churned", reason="daily_cap") == 1
    assert metric_sum(text, "remarket_expiries_total", kind="targeted_coupon", reason="window_passed") == 1


def test_due_work_run_with_an_input_record_counts_as_ticks_handled_not_as_events():
    """A tick that waited for its partition's input runs its due work with the input record that
    read it up (shell.due_work): those customers are ticks handled, not orders."""
    obs, registry = observer()
    obs.record(Handled("tick"), message("remarket.orders"), 0.0)
    obs.record(Handled("tick_for_unknown_customer"), message("remarket.orders"), 0.0)
    text = exposition(registry)
    assert metric_sum(text, "remarket_ticks_total", phase="handled") == 2
    assert metric_sum(text, "remarket_events_total") == 0


def test_a_tallying_registry_shows_every_count_made_before_the_scrape():
    """The worker's registry adds per-record updates up and hands them over at the scrape: the
    suppressions, transitions, erasures, due-work lateness and waits must all arrive there."""
    from remarket.domain.process import Outcome
    from remarket.shell.tallies import TallyingRegistry

    registry = TallyingRegistry()
    obs = Observer(Metrics(registry), ROLES)
    core = Outcome(state=None, suppressions=(("payment_reminder", "recently_reminded"),),
                   transitions=(("new", "growth"),))
    obs.record(Handled("applied", core=core), message("remarket.orders"), 0.0)
    obs.record(Handled("applied", core=core), message("remarket.orders"), 0.0)
    obs.due_work_late(3.0)
    obs.due_work_late(-1.0)  # early (a clock step): counted as on time
    obs.tick_waited_for_input()
    text = exposition(registry)
    assert metric_sum(text, "remarket_suppressions_total", kind="payment_reminder", reason="recently_reminded") == 2
    assert metric_sum(text, "remarket_stage_transitions_total", from_stage="new", to_stage="growth") == 2
    assert metric_sum(text, "remarket_erasures_total") == 2
    assert metric_sum(text, "remarket_due_work_lateness_seconds_count") == 2
    assert metric_sum(text, "remarket_due_work_lateness_seconds_sum") == 3.0
    assert metric_sum(text, "remarket_ticks_total", phase="waited_for_input") == 1
