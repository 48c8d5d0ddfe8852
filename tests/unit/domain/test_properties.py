"""Properties the core must keep whatever the input: determinism, idempotence, monotonicity."""
from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remarket.domain.lifecycle import STAGE_RANK, stage_at
from remarket.domain.policy import DEFAULT_POLICY, ScorePolicy
from remarket.domain.process import advance, apply
from remarket.domain.score import repurchase_probability
from remarket.domain.state import CustomerState

from .factories import T0, event, policy_with

DAY = 86_400
POLICY = policy_with(holdout={"share": 0.3})
TOLERANCE = POLICY.events.reorder_tolerance

_KINDS = [
    ("visit.page_view", lambda d: {}),
    ("visit.product_view", lambda d: {"product_id": d(st.sampled_from(["p1", "p2", "p3"]))}),
    ("visit.favourite", lambda d: {"product_id": d(st.sampled_from(["p1", "p2"]))}),
    ("cart.add", lambda d: {"cart_id": "k1", "items": [{"product_id": d(st.sampled_from(["p1", "p3"]))}]}),
    ("cart.checkout_started", lambda d: {"cart_id": d(st.sampled_from(["k1", "k2"]))}),
    ("order.placed", lambda d: {"order_id": d(st.sampled_from(["o1", "o2", "o3"])),
                                "cart_id": d(st.sampled_from([None, "k1", "k2"])), "total": 30.0}),
    ("order.paid", lambda d: {"order_id": d(st.sampled_from(["o1", "o2", "o3", "o4"])), "total": 50.0,
                              "coupon_type": d(st.sampled_from([None, "gift", "discount"]))}),
    ("order.cancelled", lambda d: {"order_id": d(st.sampled_from(["o1", "o2"]))}),
    ("email.open", lambda d: {}),
    ("email.click", lambda d: {}),
    ("email.bounce", lambda d: {}),
    ("email.unsubscribe", lambda d: {}),
    ("consent.updated", lambda d: {"channel": d(st.sampled_from(["sms", "email"])),
                                   "granted": d(st.booleans())}),
]


@st.composite
def histories(draw, max_events: int = 25):
    """One customer's events in time order: bursts of seconds to weeks apart, some with a time zone."""
    count = draw(st.integers(1, max_events))
    at, events = T0, []
    for i in range(count):
        at += timedelta(seconds=draw(st.sampled_from([0, 5, 20, 90, 1800, 7200, 86_400, 20 * 86_400])))
        kind, fields = draw(st.sampled_from(_KINDS))
        extra = fields(draw)
        if draw(st.integers(0, 9)) == 0:
            extra["context"] = {"timezone": draw(st.sampled_from(["Asia/Tokyo", "America/Los_Angeles"]))}
        events.append(event(kind, at, event_id=f"e{i}", **{k: v for k, v in extra.items() if v is not None}))
    return events


def _live(events, arrival_jitter=None, duplicates=()):
    """Simulate the worker: events arrive at occurred_at + jitter; ticks fire at due_at before that."""
    arrivals = [(e.occurred_at + (arrival_jitter[i] if arrival_jitter else timedelta(0)), i, e)
                for i, e in enumerate(events)]
    arrivals += [(e.occurred_at + TOLERANCE, len(events) + j, e) for j, e in enumerate(duplicates)]
    arrivals.sort(key=lambda a: (a[0], a[1]))
    state, actions = None, []
    for arrived, _, e in arrivals:
        while state is not None and state.due_at is not None and state.due_at <= arrived:
            outcome = advance(state, state.due_at, POLICY)
            state, actions = outcome.state, actions + list(outcome.actions)
        outcome = apply(state, e, POLICY)
        if outcome.state is None:
            state = None
            continue
        state, actions = outcome.state, actions + list(outcome.actions)
    end = events[-1].occurred_at + timedelta(days=400)
    while state is not None and state.due_at is not None and state.due_at <= end:
        outcome = advance(state, state.due_at, POLICY)
        state, actions = outcome.state, actions + list(outcome.actions)
    if state is not None:
        outcome = advance(state, end, POLICY)
        state, actions = outcome.state, actions + list(outcome.actions)
    return state, actions


def _comparable(state):
    return state.model_dump(exclude={"recent_event_hashes"}) if state is not None else None


def _by_id(actions):
    return sorted(actions, key=lambda a: a.action_id)


_fast = settings(max_examples=int(__import__("os").environ.get("PROP_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_fast
@given(histories())
def test_no_action_is_ever_emitted_twice(events):
    _, actions = _live(events)
    ids = [a.action_id for a in actions]
    assert len(ids) == len(set(ids))


@_fast
@given(histories(), st.randoms(use_true_random=False))
def test_shuffled_within_tolerance_gives_identical_state_and_actions(events, rnd: random.Random):
    # strictly within: an event arriving exactly when its hold ends races the tick that ends it
    limit = TOLERANCE - timedelta(microseconds=1)
    jitter = [min(limit, timedelta(seconds=rnd.uniform(0, TOLERANCE.total_seconds()))) for _ in events]
    in_order_state, in_order_actions = _live(events)
    shuffled_state, shuffled_actions = _live(events, arrival_jitter=jitter)
    assert _comparable(shuffled_state) == _comparable(in_order_state)
    assert _by_id(shuffled_actions) == _by_id(in_order_actions)


@_fast
@given(histories(), st.randoms(use_true_random=False))
def test_duplicates_change_nothing(events, rnd: random.Random):
    repeated = [e for e in events if rnd.random() < 0.5]
    base_state, base_actions = _live(events)
    dup_state, dup_actions = _live(events, duplicates=repeated)
    assert _comparable(dup_state) == _comparable(base_state)
    assert _by_id(dup_actions) == _by_id(base_actions)


@_fast
@given(histories())
def test_replaying_the_same_events_twice_gives_identical_results(events):
    first = _live(events)
    second = _live(events)
    assert first[0] == second[0] and first[1] == second[1]


@_fast
@given(histories(), st.integers(0, 200 * DAY))
def test_advance_is_idempotent(events, offset):
    state = None
    for e in events:
        state = apply(state, e, POLICY).state or state
    if state is None:
        return
    now = events[-1].occurred_at + timedelta(seconds=offset)
    once = advance(state, now, POLICY)
    twice = advance(once.state, now, POLICY)
    earlier = advance(once.state, now - timedelta(days=1), POLICY)
    assert twice.actions == () and earlier.actions == ()
    assert twice.state == once.state


@_fast
@given(histories())
def test_due_at_is_never_in_the_past_of_the_clock(events):
    state = None
    for e in events:
        state = apply(state, e, POLICY).state or state
        if state is not None and state.due_at is not None:
            assert state.due_at.timestamp() > state.clock - TOLERANCE.total_seconds()


@settings(max_examples=300, deadline=None)
@given(orders=st.integers(1, 30), span_days=st.integers(0, 400), r1=st.integers(0, 500), r2=st.integers(0, 500))
def test_stage_order_is_monotone_in_recency(orders, span_days, r1, r2):
    last = span_days * DAY if orders > 1 else 0
    state = CustomerState(customer_id="c", policy_version="t", orders=orders, first_order=0, last_order=last)
    near, far = sorted((r1, r2))
    near_stage = stage_at(state, last + near * DAY, DEFAULT_POLICY)
    far_stage = stage_at(state, last + far * DAY, DEFAULT_POLICY)
    assert STAGE_RANK[near_stage] <= STAGE_RANK[far_stage]


_params = st.builds(ScorePolicy, r=st.floats(0.05, 5), alpha=st.floats(1, 200), a=st.floats(0.1, 5),
                    b=st.floats(0.1, 10))


@settings(max_examples=300, deadline=None)
@given(params=_params, x=st.integers(0, 40), age=st.floats(1, 1000), f1=st.floats(0, 1), f2=st.floats(0, 1))
def test_score_is_higher_for_more_recent_buyers(params, x, age, f1, f2):
    older, newer = sorted((f1 * age, f2 * age))
    p_old = repurchase_probability(x, older, age, 90, params)
    p_new = repurchase_probability(x, newer, age, 90, params)
    assert 0 <= p_old <= p_new + 1e-12 <= 1 + 1e-12


@settings(max_examples=300, deadline=None)
@given(params=_params, x=st.integers(0, 40), more=st.integers(1, 20), age=st.floats(1, 1000), f=st.floats(0, 1))
def test_score_is_higher_with_more_purchases_at_the_same_recency_and_age(params, x, more, age, f):
    t_x = f * age
    assert repurchase_probability(x + more, t_x, age, 90, params) >= repurchase_probability(x, t_x, age, 90, params)


@_fast
@given(histories())
def test_a_state_encodes_to_pydantics_own_json_document_and_back(events):
    """`to_json` splices each held event's JSON in (made once per event); the document must be the one
    pydantic writes for the whole state, and the stored bytes must load back to an equal state."""
    import orjson

    state = None
    for e in events:  # applied without ticks: every event within the tolerance stays held
        state = apply(state, e, POLICY).state
        if state is None:
            continue
        whole = state.model_dump_json(exclude_defaults=True, by_alias=True)
        assert orjson.loads(state.to_json()) == orjson.loads(whole)
        assert orjson.loads(state.to_json()) == orjson.loads(whole)  # again, from the events' cached JSON
        assert CustomerState.from_bytes(state.to_bytes()) == state
