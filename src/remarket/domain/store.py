"""What one process knows about the store as a whole: the top-value threshold and the popular products.

Both are DERIVED from the customer states the process holds, never stored on their own:
`StoreTrends.rebuild(states)` when the set of customers changes (the worker: once per assignment
change, in the same table scan as the due-work index), then `update(before, after)` for each handled
customer (subtract the old state's contribution, add the new one's). A restart therefore rebuilds
exactly what was there. A customer contributes:
- its lifetime value (paid amount in the base currency), once it has a paid order: the top
  `top_value.share` of these values (by default 20 %) is the top-value group;
- the products it currently pays attention to (`CustomerState.products`: viewed, favourited,
  carted and not bought since), each on the day of its latest attention: a product looked at by
  the most customers within `popular.window` is popular.

With several workers each holds its share of the customers: customers are hashed to partitions,
so that share is a uniform sample of the store, and the threshold and the ranking are estimates
from it (a product must be looked at by `popular.min_customers` of the sampled customers).
Offline replay feeds the same structure customer by customer; decisions that read it can differ
from the worker's wherever the two have seen different customers (see docs/outcomes.md).

The core only reads it through `StoreView`; `UNKNOWN` (no top-value group, nothing popular) is
what a caller that has no store-wide knowledge passes.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

from remarket.domain.policy import Policy
from remarket.domain.state import STORE_PART, CustomerState, StateFacts, keep, kept

DAY = 86_400
_STEP = math.log(1.01)  # value buckets 1 % wide: the threshold is exact to 1 %
_LOW = -700  # bucket of 1.01**-700 ≈ 0.001; smaller positive values share it
_BUCKETS = 3_000  # up to 1.01**2300 ≈ 8·10^9 base-currency units; larger ones share the last bucket


def value_bucket(value: float) -> int:
    """Index (1-based, for the Fenwick tree) of a lifetime value's 1 %-wide bucket; 0 and less: 1."""
    if value <= 0:
        return 1
    index = math.floor(math.log(value) / _STEP) - _LOW + 2
    return min(max(index, 2), _BUCKETS)


def bucket_floor(index: int) -> float:
    return 0.0 if index <= 1 else math.exp((index - 2 + _LOW) * _STEP)


class StoreView:
    """Read-only store-wide knowledge as the core sees it. This base knows nothing."""

    def top_value_bucket(self) -> int | None:
        """Lifetime values in this bucket or above are in the top-value group; None: unknown."""
        return None

    def popular(self, t: int, limit: int) -> tuple[str, ...]:
        """Up to `limit` products most looked at in the window ending at `t` (epoch s), best first."""
        return ()

    def in_top_value(self, state: CustomerState) -> bool:
        bucket = self.top_value_bucket()
        return bucket is not None and state.orders > 0 and value_bucket(state.spent) >= bucket

    def top_value_from(self) -> float | None:
        """The lowest lifetime value in the top-value group (to 1 %), for people; None: unknown."""
        bucket = self.top_value_bucket()
        return None if bucket is None else bucket_floor(bucket)


UNKNOWN = StoreView()


@dataclass(frozen=True)
class StoreSnapshot(StoreView):
    """Fixed knowledge (tests, tools): a threshold value and a ranking that does not depend on time."""

    top_value: float | None = None
    products: tuple[str, ...] = ()

    def top_value_bucket(self) -> int | None:
        return None if self.top_value is None else value_bucket(self.top_value)

    def popular(self, t: int, limit: int) -> tuple[str, ...]:
        return self.products[:max(limit, 0)]


class Contribution(NamedTuple):  # one or two per record: a frozen dataclass's __init__ cost ~1 µs
    value: float | None  # lifetime value; None: no paid order yet
    attention: tuple[tuple[str, int], ...]  # (product, day of the latest attention)


NOTHING = Contribution(None, ())


def _same_contribution(before: CustomerState, after: CustomerState) -> bool:
    """True when `contribution` is sure to give the same for both, read off the fields it uses
    (unchanged containers hold the very same Attention records: the comparison is cheap)."""
    return before.orders == after.orders and before.spent == after.spent and before.products == after.products


def _kept_part(state: CustomerState | StateFacts) -> Contribution | None:
    return kept(state, STORE_PART) if type(state) is CustomerState else None  # StateFacts keep nothing


def _keep_part(state: CustomerState | StateFacts, part: Contribution) -> None:
    if type(state) is CustomerState:
        keep(state, STORE_PART, part)


def contribution(state: CustomerState | StateFacts | None) -> Contribution:
    if state is None:
        return NOTHING
    value = state.spent if state.orders > 0 else None
    attention = tuple(sorted((product, a.last // DAY) for product, a in state.products.items()))
    return Contribution(value, attention)


class StoreTrends(StoreView):
    """The live aggregate: a Fenwick tree of lifetime values by 1 % bucket and, per day, how many
    customers last looked at each product. Memory is bounded by what the states hold.

    A customer's decisions read `excluding(its stored state)`: the store as the other customers
    make it, so that how its own events are split into calls never changes what it sees."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._tree = [0] * (_BUCKETS + 1)
        self.buyers = 0
        self._days: dict[int, Counter[str]] = {}
        self._version = 0  # attention changes so far: a ranking is exact for the version it was made at
        self._rankings: dict[int, tuple[int, list[tuple[int, str]]]] = {}  # day -> (version, ranking)
        self._top: int | None | bool = False  # False: to compute
        self._last_state: CustomerState | None = None
        self._last_contribution = NOTHING

    # ---------------------------------------------------------------- feeding

    def reset(self) -> None:
        """Forget every customer (before a rebuild: `reset`, then `add` each state held)."""
        self.__init__(self.policy)

    def add(self, state: CustomerState | StateFacts) -> None:
        self._add(contribution(state), 1)

    def rebuild(self, states) -> None:
        """Forget everything and take the contributions of `states`."""
        self.reset()
        for state in states:
            self.add(state)

    def update(self, before: CustomerState | None, after: CustomerState | None) -> None:
        """One customer moved from `before` to `after` (None: unknown / erased). Both are final:
        the core changes working copies, never a state it returned (`after`'s contribution is
        kept on it for the customer's next record, when it is the `before`)."""
        if before is not None and after is not None and _same_contribution(before, after):
            if (part := _kept_part(before)) is not None:
                _keep_part(after, part)
            return  # most events: a page view, an email open (and no contribution built to see it)
        old, new = self._contribution(before), contribution(after)
        if after is not None:
            _keep_part(after, new)
        if old == new:  # most events: a page view, an email open
            return
        if old.value != new.value:
            self._add(Contribution(old.value, ()), -1)
            self._add(Contribution(new.value, ()), 1)
        if old.attention != new.attention:
            gone, came = set(old.attention), set(new.attention)
            self._add(Contribution(None, tuple(gone - came)), -1)
            self._add(Contribution(None, tuple(came - gone)), 1)

    def excluding(self, state: CustomerState | None) -> StoreView:
        """The view for one customer's decisions: everyone but that customer (`state` as stored)."""
        if state is None or (state.orders <= 0 and not state.products):
            return self  # contributes NOTHING (most customers: no order, no attention)
        return _Others(self, self._contribution(state))

    def _contribution(self, state: CustomerState | None) -> Contribution:
        """contribution(state) of a stored state: kept on it by `update` when it was the `after`
        of the customer's previous record; else remembered for the last state asked about (the
        pipeline asks for the stored state twice: excluding before the core runs, update after)."""
        if state is None:
            return NOTHING
        if (part := _kept_part(state)) is not None:
            return part
        if state is self._last_state:
            return self._last_contribution
        part = contribution(state)
        self._last_state, self._last_contribution = state, part
        return part

    def _add(self, part: Contribution, sign: int) -> None:
        if part.value is not None:
            self._tree_add(value_bucket(part.value), sign)
            self.buyers += sign
            self._top = False
        days = self._days
        for product, day in part.attention:
            counts = days.get(day)
            if counts is None:
                counts = days[day] = Counter()
            left = counts[product] + sign
            if left > 0:
                counts[product] = left
            else:
                del counts[product]
                if not counts:
                    del days[day]
        if part.attention:
            self._version += 1

    def _tree_add(self, index: int, delta: int) -> None:
        while index <= _BUCKETS:
            self._tree[index] += delta
            index += index & -index

    def _top_bucket(self, buyers: int) -> int | None:
        rules = self.policy.top_value
        if buyers < rules.min_buyers or buyers <= 0:
            return None
        top = max(1, math.ceil(rules.share * buyers))
        # the bucket of the top-th largest value: it and every bucket above are the group
        position, remaining = 0, buyers - top  # the largest index whose prefix count <= buyers - top
        step = 1 << (_BUCKETS.bit_length() - 1)
        while step:
            nxt = position + step
            if nxt <= _BUCKETS and self._tree[nxt] <= remaining:
                position, remaining = nxt, remaining - self._tree[nxt]
            step >>= 1
        return position + 1

    # ---------------------------------------------------------------- reading

    def top_value_bucket(self) -> int | None:
        if self._top is False:
            self._top = self._top_bucket(self.buyers)
        return self._top

    def popular(self, t: int, limit: int) -> tuple[str, ...]:
        minimum = self.policy.popular.min_customers
        return tuple(p for n, p in self.ranking(t // DAY)[:max(limit, 0)] if n >= minimum)

    def ranking(self, today: int) -> list[tuple[int, str]]:
        """(customers, product) looked at in the window ending on `today`, most first (ties: by name)."""
        cached = self._rankings.get(today)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        window = max(1, math.ceil(self.policy.popular.window.total_seconds() / DAY))
        totals: Counter[str] = Counter()
        for day in range(today - window + 1, today + 1):
            if (counts := self._days.get(day)) is not None:
                totals.update(counts)
        ranked = sorted(((n, p) for p, n in totals.items()), key=lambda np: (-np[0], np[1]))
        if len(self._rankings) >= 8 and today not in self._rankings:  # replay asks about many days
            self._rankings.pop(next(iter(self._rankings)))
        self._rankings[today] = (self._version, ranked)
        return ranked

    def window_days(self, today: int) -> range:
        window = max(1, math.ceil(self.policy.popular.window.total_seconds() / DAY))
        return range(today - window + 1, today + 1)


class _Others(StoreView):
    """The store without one customer's contribution (computed on demand, nothing copied)."""

    def __init__(self, trends: StoreTrends, own: Contribution) -> None:
        self.trends, self.own = trends, own
        self._top: int | None | bool = False

    def top_value_bucket(self) -> int | None:
        if self.own.value is None:
            return self.trends.top_value_bucket()
        if self._top is False:
            bucket, trends = value_bucket(self.own.value), self.trends
            trends._tree_add(bucket, -1)
            try:
                self._top = trends._top_bucket(trends.buyers - 1)
            finally:
                trends._tree_add(bucket, 1)
        return self._top

    def popular(self, t: int, limit: int) -> tuple[str, ...]:
        if limit <= 0:
            return ()
        today = t // DAY
        days = self.trends.window_days(today)
        mine = {product for product, day in self.own.attention if day in days}
        head = self.trends.ranking(today)[:limit + len(mine)]  # losing one each, no other can overtake them
        adjusted = sorted(((n - (p in mine), p) for n, p in head), key=lambda np: (-np[0], np[1]))
        minimum = self.trends.policy.popular.min_customers
        return tuple(p for n, p in adjusted[:limit] if n >= minimum)
