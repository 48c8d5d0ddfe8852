"""Business metrics (prometheus-client), served beside Faust's own sensors at /metrics.

Label values are bounded enums (topic role, outcome, reason, kind, channel, stage): never a
customer id, event id or free text.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LATENESS_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events = Counter(
            "remarket_events_total", "Input records consumed, by topic role and outcome.",
            ["topic", "outcome"], registry=registry)
        self.dead_letters = Counter(
            "remarket_dead_letters_total", "Records sent to the dead-letter topic, by reason.",
            ["reason"], registry=registry)
        self.dead_letters_truncated = Counter(
            "remarket_dead_letters_truncated_total",
            "Dead letters whose value, key or headers were cut to fit one produce request.", registry=registry)
        self.broker_reachable = Gauge(
            "remarket_broker_reachable", "1 while the Kafka cluster answers metadata requests.", registry=registry)
        self.restored_records = Counter(
            "remarket_restored_records_total", "Changelog records read into the local store at restore.",
            registry=registry)
        self.actions = Counter(
            "remarket_actions_total", "Actions emitted, by kind and channel (holdout: control group).",
            ["kind", "channel", "holdout"], registry=registry)
        self.suppressions = Counter(
            "remarket_suppressions_total", "Actions not sent or deferred, by kind and reason.",
            ["kind", "reason"], registry=registry)
        self.withdrawals = Counter(
            "remarket_withdrawals_total", "Held actions withdrawn because they became moot, by kind and reason.",
            ["kind", "reason"], registry=registry)
        self.deferrals = Counter(
            "remarket_deferrals_total", "Actions held back by a cap to wait for a later slot, by kind and reason.",
            ["kind", "reason"], registry=registry)
        self.expiries = Counter(
            "remarket_expiries_total", "Waiting actions that gave up (their window passed), by kind and reason.",
            ["kind", "reason"], registry=registry)
        self.stage_transitions = Counter(
            "remarket_stage_transitions_total", "Life-cycle stage changes.",
            ["from_stage", "to_stage"], registry=registry)
        self.erasures = Counter(
            "remarket_erasures_total", "Customers whose state was erased on request.", registry=registry)
        self.ticks = Counter(
            "remarket_ticks_total", "Due-work ticks: sent (one per partition with customers due), "
            "handled (one per customer advanced), waited_for_input (read ahead of its partition's input: "
            "its due work runs once that is read up).", ["phase"], registry=registry)
        self.pending_customers = Gauge(
            "remarket_due_customers", "Customers on this worker with due work scheduled.", registry=registry)
        self.tick_lateness = Histogram(
            "remarket_due_work_lateness_seconds", "How late due work was handled against its due time.",
            buckets=_LATENESS_BUCKETS, registry=registry)
        self.event_to_action = Histogram(
            "remarket_event_to_action_latency_seconds",
            "From an input record's broker timestamp to its actions being handed to the producer.",
            buckets=_LATENCY_BUCKETS, registry=registry)
        self.processing = Histogram(
            "remarket_record_processing_seconds", "Time spent handling one record in the agent.",
            buckets=_LATENCY_BUCKETS, registry=registry)
        self.index_rebuilds = Counter(
            "remarket_due_index_rebuilds_total", "Rebuilds of the due-work index after assignment changes.",
            registry=registry)
        self.index_rebuild_seconds = Gauge(
            "remarket_due_index_rebuild_seconds", "How long the last due-work index rebuild held records off: "
            "its scan of every state this worker holds, after each restart, restore and rebalance (~18 us per "
            "customer held).", registry=registry)
        self.customers = Gauge(
            "remarket_customers", "Customers whose state lives on this worker, by stage and tier.",
            ["stage", "tier"], registry=registry)
        self.consumer_lag = Gauge(
            "remarket_consumer_lag_records", "Records not yet processed, per consumed topic role and partition.",
            ["topic", "partition"], registry=registry)
        self.ready = Gauge(
            "remarket_ready", "1 when partitions are assigned and tables recovered.", registry=registry)
