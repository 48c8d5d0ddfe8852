"""Per-record metric updates added up (or, for a gauge, the latest value kept) in plain Python,
handed to prometheus-client when the registry is collected (a scrape of /metrics).

prometheus-client takes a lock for every `inc` and walks the buckets for every `observe`: with a
few counters and two histograms per record that was ~6 % of the worker's samples while it drained
a backlog (py-spy, 2026-12-02). Here an update is a dict add (a bisect for a histogram). Every
caller runs on the worker's event loop, as does the /metrics page, so no lock is needed, and a
scrape sees every update made before it: `TallyingRegistry.collect` flushes first.
"""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import Histogram


class Tallies:
    def __init__(self) -> None:
        self._counts: dict[Any, float] = {}  # a counter (or its labelled child) -> amount not yet added
        self._observed: dict[Histogram, _Observed] = {}
        self._values: dict[Any, float] = {}  # a gauge (or its labelled child) -> its latest value, not yet set

    def set(self, gauge: Any, value: float) -> None:
        self._values[gauge] = value

    def count(self, counter: Any, amount: float = 1) -> None:
        self._counts[counter] = self._counts.get(counter, 0) + amount

    def observe(self, histogram: Histogram, value: float) -> None:
        observed = self._observed.get(histogram)
        if observed is None:
            observed = self._observed[histogram] = _Observed(histogram)
        # prometheus-client's own rule: the first bucket whose upper bound is >= the value
        observed.buckets[bisect_left(observed.bounds, value)] += 1
        observed.total += value

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        values, self._values = self._values, {}
        for gauge, value in values.items():
            gauge.set(value)
        for observed in self._observed.values():
            observed.flush()


class _Observed:
    __slots__ = ("histogram", "bounds", "buckets", "total")

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.bounds = list(histogram._upper_bounds)  # ends with +Inf: every value has a bucket
        self.buckets = [0] * len(self.bounds)
        self.total = 0.0

    def flush(self) -> None:
        if not any(self.buckets):
            return
        # What `observe` does per value, once per bucket: the histogram's non-cumulative bucket
        # values and its sum (prometheus-client 0.19-0.26 keep them as `_buckets` and `_sum`).
        for value, n in zip(self.histogram._buckets, self.buckets):
            if n:
                value.inc(n)
        self.histogram._sum.inc(self.total)
        self.buckets = [0] * len(self.bounds)
        self.total = 0.0


class Immediate:
    """The same calls, applied at once: for metrics in a registry that does not tally."""

    @staticmethod
    def count(counter: Any, amount: float = 1) -> None:
        counter.inc(amount)

    @staticmethod
    def observe(histogram: Histogram, value: float) -> None:
        histogram.observe(value)

    @staticmethod
    def set(gauge: Any, value: float) -> None:
        gauge.set(value)

    @staticmethod
    def flush() -> None:
        pass


class TallyingRegistry(CollectorRegistry):
    """A registry whose collection first adds what was tallied, so nothing tallied is missed."""

    def __init__(self) -> None:
        super().__init__()
        self.tallies = Tallies()

    def collect(self) -> Iterator[Any]:
        self.tallies.flush()
        return super().collect()


def tallies_of(owner: object) -> Tallies | Immediate:
    """The tallies a registry (or faust monitor) carries; counts go straight through without one."""
    tallies = getattr(owner, "tallies", None)
    return tallies if tallies is not None else Immediate()
