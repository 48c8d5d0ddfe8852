from datetime import datetime, timedelta, timezone

from remarket.shell.schedule import DueIndex

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_due_customers_pop_in_time_order_once():
    index = DueIndex()
    index.set("b", T0 + timedelta(seconds=2))
    index.set("a", T0 + timedelta(seconds=1))
    index.set("c", T0 + timedelta(seconds=9))
    assert [cid for cid, _ in index.pop_due(T0 + timedelta(seconds=5))] == ["a", "b"]
    assert index.pop_due(T0 + timedelta(seconds=5)) == []
    assert len(index) == 1


def test_rescheduling_replaces_the_old_due_time():
    index = DueIndex()
    index.set("a", T0 + timedelta(seconds=1))
    index.set("a", T0 + timedelta(seconds=10))
    assert index.pop_due(T0 + timedelta(seconds=5)) == []
    index.set("a", None)
    assert index.pop_due(T0 + timedelta(days=1)) == [] and len(index) == 0


def test_an_index_made_from_the_scan_holds_what_it_was_given_and_no_more():
    index = DueIndex.of({"a": T0, "b": T0 + timedelta(minutes=5)})
    assert len(index) == 2 and index.earliest() == T0
    assert index.pop_due(T0) == [("a", T0)]
    index.set("c", T0 - timedelta(minutes=1))
    assert index.pop_due(T0 + timedelta(minutes=5)) == [("c", T0 - timedelta(minutes=1)),
                                                        ("b", T0 + timedelta(minutes=5))]


def test_the_earliest_due_time_skips_customers_rescheduled_or_removed():
    index = DueIndex()
    index.set("a", T0)
    index.set("b", T0 + timedelta(minutes=5))
    index.set("a", T0 + timedelta(hours=1))
    assert index.earliest() == T0 + timedelta(minutes=5)
    index.set("b", None)
    assert index.earliest() == T0 + timedelta(hours=1)
    index.pop_due(T0 + timedelta(hours=2))
    assert index.earliest() is None


def test_heap_stays_bounded_under_many_reschedules():
    index = DueIndex()
    for i in range(20_000):
        index.set("a", T0 + timedelta(seconds=i))
    assert len(index._heap) < 2_000
