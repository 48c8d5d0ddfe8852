"""Store-wide knowledge, derived from the customers held: the top-value threshold and the popular products."""
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from remarket.domain.state import Attention, new_state, to_ts
from remarket.domain.store import UNKNOWN, StoreSnapshot, StoreTrends, bucket_floor, value_bucket

from .factories import policy_with

T = to_ts(datetime(2025, 6, 2, 12, tzinfo=UTC))
DAY = 86_400
POLICY = policy_with(top_value={"share": 0.2, "min_buyers": 5}, popular={"window": "7d", "min_customers": 2})


def customer(name, spent=0.0, orders=None, looked=()):
    """A state with `spent` over `orders` paid orders and attention to `looked` ((product, at) pairs)."""
    state = new_state(name, "v")
    state.orders = orders if orders is not None else (1 if spent > 0 else 0)
    state.spent = spent
    state.products = {p: Attention(last=at, views=2) for p, at in looked}
    return state


def test_the_top_fifth_of_buyers_by_value_is_the_group():
    trends = StoreTrends(POLICY)
    states = [customer(f"c{i}", spent=10.0 * i) for i in range(1, 11)]
    trends.rebuild(states)
    assert [trends.in_top_value(s) for s in states] == [False] * 8 + [True, True]
    assert 89 < trends.top_value_from() <= 90


def test_the_group_is_unknown_until_enough_buyers_are_known_and_prospects_never_count():
    trends = StoreTrends(POLICY)
    trends.rebuild([customer(f"c{i}", spent=100.0) for i in range(4)] + [customer(f"p{i}") for i in range(50)])
    assert trends.top_value_bucket() is None and not trends.in_top_value(customer("x", spent=1e6))
    assert not UNKNOWN.in_top_value(customer("x", spent=1e6))


def test_the_threshold_follows_customers_as_their_value_changes_and_when_they_are_erased():
    trends = StoreTrends(POLICY)
    states = [customer(f"c{i}", spent=10.0 * i) for i in range(1, 11)]
    trends.rebuild(states)
    richer = customer("c1", spent=500.0, orders=3)
    trends.update(states[0], richer)  # c1 now leads: c9 drops out of the top two
    assert trends.in_top_value(richer) and trends.in_top_value(states[9]) and not trends.in_top_value(states[8])
    trends.update(richer, None)  # erased: 9 buyers, top 2 (ceil 1.8) again 90 and 100
    assert trends.in_top_value(states[8])


def test_popular_products_are_those_most_customers_looked_at_lately():
    trends = StoreTrends(POLICY)
    trends.rebuild([
        customer("a", looked=[("shoes", T), ("hat", T - DAY)]),
        customer("b", looked=[("shoes", T - 2 * DAY), ("hat", T)]),
        customer("c", looked=[("shoes", T), ("scarf", T)]),
        customer("d", looked=[("old", T - 30 * DAY)]), customer("e", looked=[("old", T - 30 * DAY)]),
    ])
    assert trends.popular(T, 5) == ("shoes", "hat")  # 3 customers, then 2; scarf: only 1; old: out of window
    assert trends.popular(T, 1) == ("shoes",)
    assert trends.popular(T - 29 * DAY, 5) == ("old",)  # the window ends at the decision time


def test_a_customer_decides_against_the_store_without_itself():
    trends = StoreTrends(POLICY)
    me = customer("me", spent=1000.0, looked=[("hat", T)])
    others = [customer(f"c{i}", spent=10.0 * i, looked=[("hat", T)] if i == 1 else ()) for i in range(1, 6)]
    trends.rebuild([me, *others])
    assert trends.popular(T, 3) == ("hat",)  # me and c1
    view = trends.excluding(me)
    assert view.popular(T, 3) == ()  # only c1 is left: below min_customers
    alone = StoreTrends(POLICY)
    alone.rebuild(others)
    assert view.top_value_bucket() == alone.top_value_bucket()
    assert trends.popular(T, 3) == ("hat",)  # the view changed nothing


def test_a_fixed_snapshot_for_tools_and_tests():
    snapshot = StoreSnapshot(top_value=100.0, products=("a", "b", "c"))
    assert snapshot.popular(T, 2) == ("a", "b")
    assert snapshot.in_top_value(customer("x", spent=100.0)) and not snapshot.in_top_value(customer("y", spent=98.0))


@given(st.floats(min_value=0.01, max_value=1e9))
def test_value_buckets_are_one_percent_wide_and_ordered(value):
    bucket = value_bucket(value)
    assert bucket_floor(bucket) <= value * (1 + 1e-9)
    assert value < bucket_floor(bucket + 1) * (1 + 1e-9) or bucket == 3000
    assert value_bucket(value * 1.02) >= bucket


_products = st.sampled_from(["p1", "p2", "p3", "p4"])
_states = st.builds(
    lambda name, spent, looked: customer(name, spent=spent, looked=[(p, T - d * DAY) for p, d in looked]),
    st.sampled_from(["a", "b", "c", "d", "e", "f"]),
    st.sampled_from([0.0, 5.0, 50.0, 500.0]),
    st.lists(st.tuples(_products, st.integers(0, 10)), max_size=3, unique_by=lambda pd: pd[0]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(_states, st.sampled_from(["a", "b", "c"])), max_size=30))
def test_updating_customer_by_customer_equals_rebuilding_from_the_states_held(steps):
    """Each step replaces one customer's state (a name alone: erased); the kept aggregate always equals
    a rebuild from the states held now, and `excluding` equals a rebuild without that customer."""
    policy = policy_with(top_value={"min_buyers": 1}, popular={"min_customers": 1})
    trends, held = StoreTrends(policy), {}
    for step in steps:
        name = step if isinstance(step, str) else step.customer_id
        after = None if isinstance(step, str) else step
        trends.update(held.get(name), after)
        if after is None:
            held.pop(name, None)
        else:
            held[name] = after
        fresh = StoreTrends(policy)
        fresh.rebuild(held.values())
        assert trends.top_value_bucket() == fresh.top_value_bucket()
        assert trends.popular(T, 4) == fresh.popular(T, 4)
        for who, state in held.items():
            without = StoreTrends(policy)
            without.rebuild(s for n, s in held.items() if n != who)
            view = trends.excluding(state)
            assert view.top_value_bucket() == without.top_value_bucket()
            assert view.popular(T, 2) == without.popular(T, 2)
