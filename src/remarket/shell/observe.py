"""What the worker did, as Prometheus metrics: per record, per customer segment, per partition."""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

from remarket.shell.metrics import Metrics
from remarket.shell.pipeline import Handled
from remarket.shell.tallies import tallies_of


DUE_WORK_OUTCOMES = frozenset({"tick", "tick_for_unknown_customer"})


class Observer:
    def __init__(self, metrics: Metrics, role_by_topic: dict[str, str]) -> None:
        self.metrics = metrics
        self.role_by_topic = role_by_topic
        self.processed_offsets: dict[Any, int] = {}
        self._segments: Counter[tuple[str, str]] = Counter()  # (stage, tier) -> customers here
        self._lag_labels: set[tuple[str, str]] = set()
        self._counters: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._segment_gauges: dict[tuple[str, str], Any] = {}
        self._tallies = tallies_of(metrics.registry)

    def _count(self, counter: Any, *labels: str, amount: float = 1) -> None:
        """`counter.labels(*labels).inc()`, minus prometheus-client's label lookup (~3 µs, several
        per record: 4.5 % of the worker's samples) and its lock per increment (tallied)."""
        key = (id(counter), labels)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = counter.labels(*labels)
        self._tallies.count(child, amount)

    def record(self, handled: Handled, message: Any, started: float) -> None:
        m = self.metrics
        role = self.role_by_topic.get(message.topic, "unknown")
        if role == "ticks" or handled.outcome in DUE_WORK_OUTCOMES:  # due work runs in a tick's or an input record's transaction
            self._count(m.ticks, "handled")
        else:  # a forwarded record counts twice: "rerouted" on its input, then its outcome on "rerouted"
            self._count(m.events, role, "dead_lettered" if handled.dead_letter_reason else handled.outcome)
        if handled.dead_letter_reason:
            self._count(m.dead_letters, handled.dead_letter_reason)
            if any(("remarket-dlq-truncated", b"true") in out.headers for out in handled.records):
                self._tallies.count(m.dead_letters_truncated)
        core = handled.core
        if core is not None:
            for action in core.actions:
                if action in handled.expired:
                    self._count(m.suppressions, str(action.kind), "expired_before_publish")
                else:
                    self._count(m.actions, str(action.kind), str(action.channel), str(action.holdout).lower())
                    if action.holdout:  # decided, recorded on the holdout topic, never sent
                        self._count(m.suppressions, str(action.kind), "holdout")
            if len(core.actions) > len(handled.expired) and message.timestamp:
                self._tallies.observe(m.event_to_action, max(0.0, time.time() - message.timestamp))
            for kind, reason in core.suppressions:
                self._count(m.suppressions, str(kind), str(reason))
            for withdrawal in core.withdrawals:
                self._count(m.withdrawals, str(withdrawal.withdrawn_kind), str(withdrawal.reason))
            for kind, reason in core.deferred:
                self._count(m.deferrals, str(kind), str(reason))
            for kind, reason in core.expired:
                self._count(m.expiries, str(kind), str(reason))
            for from_stage, to_stage in core.transitions:
                self._count(m.stage_transitions, str(from_stage), str(to_stage))
            if core.state is None and not core.duplicate:
                self._tallies.count(m.erasures)
        if handled.segment_change is not None:
            self.move_segment(*handled.segment_change)
        self._tallies.observe(m.processing, time.perf_counter() - started)

    def due_work_late(self, seconds: float) -> None:
        """How late one customer's due work ran (once per customer advanced)."""
        self._tallies.observe(self.metrics.tick_lateness, max(0.0, seconds))

    def tick_waited_for_input(self) -> None:
        self._count(self.metrics.ticks, "waited_for_input")

    def move_segment(self, before: tuple[str, str] | None, after: tuple[str, str] | None) -> None:
        for segment, step in ((before, -1), (after, 1)):
            if segment is not None:
                self._segments[segment] += step  # the gauge takes the latest at a scrape (a lock per set)
                self._tallies.set(self._segment_gauge(segment), max(0, self._segments[segment]))

    def _segment_gauge(self, segment: tuple[str, str]) -> Any:
        """The segment's labelled gauge, looked up once (a move per new customer or stage change)."""
        gauge = self._segment_gauges.get(segment)
        if gauge is None:
            gauge = self._segment_gauges[segment] = self.metrics.customers.labels(*segment)
        return gauge

    def reset_segments(self, segments: Counter[tuple[str, str]]) -> None:
        """After a rebuild from the table: these are the customers this worker holds now."""
        for segment in set(self._segments) | set(segments):
            self._tallies.set(self._segment_gauge(segment), segments[segment])
        self._segments = segments

    def update_lag(self, consumer: Any) -> None:
        reported = set()
        for tp in consumer.assignment():
            role = self.role_by_topic.get(tp.topic)
            if role is None:  # changelogs and faust internals: not ours to report
                continue
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            done = self.processed_offsets.get(tp)
            # nothing processed here yet: what the group committed (faust keeps it, privately)
            position = done + 1 if done is not None else consumer._committed_offset.get(tp) or 0
            lag = highwater - position
            self.metrics.consumer_lag.labels(role, str(tp.partition)).set(max(0, lag))
            reported.add((role, str(tp.partition)))
        for labels in self._lag_labels - reported:  # partitions that moved away: not ours to report
            self.metrics.consumer_lag.remove(*labels)
        self._lag_labels = reported
