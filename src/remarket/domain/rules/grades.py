"""Value segments drive decisions: each membership grade, and the store's top-value group, gets its
concessions (coupon factor, referral ask, early win-back threshold, room within the caps).

A customer's grade is its tier (lifecycle.tier_of). The top-value group is the top
`top_value.share` of buyers by lifetime value, known from the store-wide view the caller passes
(store.py; unknown: nobody is in it). A customer in the group gets, field by field, the more
generous of its grade's concessions and the group's.
"""
from __future__ import annotations

from functools import lru_cache

from remarket.domain.lifecycle import tier_of
from remarket.domain.policy import NO_CONCESSIONS, GradePolicy, Policy
from remarket.domain.state import CustomerState
from remarket.domain.store import UNKNOWN, StoreView


def concessions(state: CustomerState, policy: Policy, store: StoreView = UNKNOWN) -> GradePolicy:
    grade = policy.grades.get(tier_of(state, policy), NO_CONCESSIONS)
    if store.in_top_value(state):
        return merged(grade, policy.top_value)
    return grade


@lru_cache(maxsize=256)  # grades x policies in use; both frozen, hashed and compared by value
def merged(grade: GradePolicy, group: GradePolicy) -> GradePolicy:
    """`grade.merged(group)`, built once per pair (asked for every message to the top-value group)."""
    return grade.merged(group)
