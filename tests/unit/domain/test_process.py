from datetime import timedelta

import pytest

from remarket.domain.process import RejectedEvent, advance, apply
from remarket.domain.state import CustomerState

from .factories import T0, Driver, days, event, minutes, paid, placed, policy_with, view


def test_erasure_forgets_the_customer_and_cancels_pending_work(driver):
    driver.feed(placed(T0), view(T0, "p1"), view(T0 + minutes(1), "p1")).tick(T0 + minutes(4))
    request = T0 + minutes(5)
    held = apply(driver.state, event("consent.erasure_requested", request), driver.policy)
    assert held.state is not None  # waits out the reorder tolerance like every event
    assert held.state.due_at == request + driver.policy.events.reorder_tolerance
    erased = advance(held.state, held.state.due_at, driver.policy)
    assert erased.state is None and erased.actions == ()
    assert ("payment_reminder", "erasure") in erased.suppressions
    assert ("targeted_coupon", "erasure") in erased.suppressions


def test_an_event_from_before_the_erasure_arriving_after_it_is_erased_too(driver):
    """Erasure and attention come on different topics, so they can arrive in either order."""
    driver.feed(event("consent.erasure_requested", T0 + minutes(1)))
    driver.feed(event("visit.favourite", T0, product_id="p1"))
    driver.run_until(T0 + days(3))
    assert driver.state is None and driver.actions == []


def test_an_event_after_the_erasure_starts_a_fresh_customer(driver):
    driver.feed(paid(T0), event("consent.erasure_requested", T0 + minutes(1)),
                event("visit.page_view", T0 + minutes(2))).run_until(T0 + minutes(10))
    assert driver.state is not None and driver.state.orders == 0
    assert driver.state.events_by_family == {"visits": 1}


def test_nothing_is_emitted_after_erasure_unless_the_customer_comes_back(driver):
    driver.feed(placed(T0), event("consent.erasure_requested", T0 + minutes(1))).run_until(T0 + minutes(2))
    assert driver.state is None
    comeback = Driver().feed(event("visit.page_view", T0 + days(1))).run_until(T0 + days(3))
    assert comeback.actions == [] and comeback.state.orders == 0


def test_repeated_event_id_is_ignored(driver):
    order = paid(T0)
    driver.feed(order).run_until(T0 + minutes(1))
    again = apply(driver.state, order, driver.policy)
    assert again.duplicate and again.state == driver.state
    assert driver.state.orders == 1


def test_event_far_in_the_future_is_rejected(driver):
    with pytest.raises(RejectedEvent, match="ahead of the time it was received"):
        apply(None, placed(T0 + minutes(6)), driver.policy, received_at=T0)
    assert apply(None, placed(T0 + minutes(4)), driver.policy, received_at=T0).state is not None


def test_an_ancient_event_is_rejected(driver):
    with pytest.raises(RejectedEvent, match="before the time it was received"):
        apply(None, placed(T0 - days(3651)), driver.policy, received_at=T0)
    assert apply(None, placed(T0 - days(3000)), driver.policy, received_at=T0).state is not None


def test_payment_arriving_before_its_order_within_tolerance_still_prevents_the_reminder(driver):
    driver.feed(paid(T0 + minutes(20)), placed(T0)).run_until(T0 + days(1))
    assert "payment_reminder" not in driver.kinds()


def test_out_of_order_events_never_move_the_clock_back(driver):
    driver.feed(event("visit.page_view", T0 + days(1)))
    clock = driver.state.clock
    driver.feed(event("visit.page_view", T0))  # a day late: folded at once, clock unchanged
    assert driver.state.clock == clock
    assert driver.state.events_by_family["visits"] == 2


def test_very_late_order_is_still_reminded_once_at_the_processed_time(driver):
    driver.feed(event("visit.page_view", T0 + days(1)), placed(T0))
    assert [a.created_at for a in driver.actions] == [T0 + days(1) - timedelta(seconds=30)]


def test_due_at_is_the_earliest_pending_work_plus_the_reorder_lag(driver):
    driver.feed(placed(T0)).tick(T0 + minutes(1))
    assert driver.state.due_at == T0 + minutes(30) + timedelta(seconds=30)


def test_advance_twice_is_the_same_as_once(driver):
    driver.feed(placed(T0), view(T0, "p1"), view(T0, "p1", event_id="v-again"))
    once = advance(driver.state, T0 + days(2), driver.policy)
    twice = advance(once.state, T0 + days(2), driver.policy)
    assert twice.actions == () and twice.state == once.state


def test_late_tick_fires_due_work_once_at_its_own_time(driver):
    driver.feed(placed(T0)).tick(T0 + days(3)).tick(T0 + days(3)).tick(T0 + days(2))
    [reminder] = driver.actions
    assert reminder.created_at == T0 + minutes(30)


def test_profile_is_published_when_stage_or_activity_changes_only(driver):
    driver.feed(paid(T0)).tick(T0 + minutes(5))
    assert driver.outcomes[-1].profile is not None and driver.outcomes[-1].profile.stage == "new"
    driver.tick(T0 + minutes(6))
    assert driver.outcomes[-1].profile is None


def test_state_round_trips_through_bytes(driver):
    driver.feed(placed(T0, context={"timezone": "Europe/Berlin", "country": "DE"}), view(T0 + minutes(1)))
    raw = driver.state.to_bytes()
    assert CustomerState.from_bytes(raw) == driver.state


def test_state_stored_as_plain_json_before_compression_still_loads(driver):
    driver.feed(placed(T0), view(T0 + minutes(1)))
    legacy = driver.state.to_json()
    assert legacy.startswith(b"{") and CustomerState.from_bytes(legacy) == driver.state
    assert len(driver.state.to_bytes()) < len(legacy)


def test_bytes_that_are_not_a_stored_state_are_refused_with_their_format_byte():
    with pytest.raises(ValueError, match=r"format byte b'\\x03' is unknown"):
        CustomerState.from_bytes(b"\x03whatever")


def test_policy_version_is_recorded_with_the_state():
    driver = Driver(policy_with(version="shop-9")).feed(placed(T0))
    assert driver.state.policy_version == "shop-9"


def test_typical_customer_state_stays_under_one_kib():
    driver = Driver()
    when = T0
    for week in range(12):
        when = T0 + days(7 * week)
        driver.feed(event("visit.page_view", when, context={"timezone": "Europe/Berlin", "country": "DE"}),
                    view(when + minutes(1), f"product-{week % 5}"), view(when + minutes(2), f"product-{week % 5}"),
                    event("email.delivered", when), event("email.open", when + minutes(3)))
        if week % 4 == 0:
            driver.feed(placed(when + minutes(4), f"order-{week}", cart_id=f"cart-{week}"),
                        paid(when + minutes(6), f"order-{week}", coupon_type="discount"))
        driver.run_until(when + days(6))
    size = len(driver.state.to_bytes())
    assert driver.state.events_by_family["visits"] == 36
    assert size <= 1024, size


def test_reorder_buffer_is_bounded():
    driver = Driver(policy_with(limits={"reorder_buffer": 3}, events={"reorder_tolerance": "1h"}))
    driver.feed(*(event("visit.page_view", T0 + minutes(i)) for i in range(10)))
    assert len(driver.state.buffer) <= 3


def test_event_at_exactly_the_processed_time_still_starts_its_campaign():
    driver = Driver(policy_with(campaigns={"new": {"delay": "0s"}}))
    driver.feed(event("visit.page_view", T0)).tick(T0 + minutes(10))
    processed_up_to = T0 + minutes(10) - timedelta(seconds=30)
    driver.feed(paid(processed_up_to)).run_until(T0 + days(1))
    assert driver.kinds() == ["lifecycle_new"]


def test_suppression_reasons_are_a_closed_vocabulary():
    from remarket.domain.contact import Effects

    effects = Effects()
    effects.suppress("targeted_coupon", "once_per_window")
    with pytest.raises(ValueError):
        effects.suppress("targeted_coupon", "once_per_windwo")  # a typo is an error, not a new label
    with pytest.raises(ValueError):
        effects.expire("targeted_coupon", "gave_up")
    assert effects.suppressions == [("targeted_coupon", "once_per_window")]


def test_stage_and_activity_are_enums_that_read_as_their_names(driver):
    from remarket.domain.lifecycle import email_activity
    from remarket.domain.vocabulary import Activity, Stage

    driver.feed(paid(T0)).run_until(T0 + minutes(5))
    assert driver.state.stage is Stage.NEW and driver.state.stage == "new"
    assert email_activity(driver.state, driver.state.upto, driver.policy) is Activity.INACTIVE
    assert b'"stage":"new"' in driver.state.to_json()
    assert CustomerState.from_bytes(driver.state.to_bytes()).stage is Stage.NEW


def test_the_core_never_changes_the_state_it_was_given_even_its_empty_containers():
    from remarket.domain.state import new_state

    policy = policy_with(events={"reorder_tolerance": "0s"})  # folded within the call
    given = new_state("c1", "v")
    before = given.to_bytes()
    outcome = apply(given, view(T0, "p1"), policy)
    assert "p1" in outcome.state.products
    assert given.products == {} and given.to_bytes() == before


def test_state_compressed_by_the_one_shot_zstd_of_earlier_releases_still_loads(driver):
    import cramjam  # what wrote format 1 before 2026-12-02 (and still a dependency: aiokafka's codecs)

    driver.feed(placed(T0), view(T0 + minutes(1)))
    earlier = b"\x01" + bytes(cramjam.zstd.compress(driver.state.to_json(), level=1))
    assert CustomerState.from_bytes(earlier) == driver.state


def test_an_events_cached_json_leaves_its_equality_and_copies_alone(driver):
    from remarket.domain.events import stored_json

    first, second = view(T0, event_id="same"), view(T0, event_id="same")
    assert stored_json(first) == first.model_dump_json(exclude_defaults=True, by_alias=True).encode()
    assert first == second and hash(first) == hash(second) and first.model_copy() == first
    assert stored_json(first) is stored_json(first)  # made once


def test_an_events_time_in_seconds_is_worked_out_once_and_changes_nothing_else():
    from datetime import datetime

    from remarket.domain.events import event_ts, parse_event

    raw = view(T0, event_id="e-1").model_dump_json().replace("Z", "+02:00").replace("+00:00", "+02:00")
    first, second = parse_event(raw), parse_event(raw)
    assert type(first.occurred_at.tzinfo) is not type(T0.tzinfo)  # pydantic's TzInfo: the slow offset
    expected = int(datetime.fromisoformat(first.occurred_at.isoformat()).timestamp())
    assert event_ts(first) == expected == T0.timestamp() - 2 * 3600
    object.__setattr__(first, "occurred_at", T0)  # (frozen events never change: shows the cache is read)
    assert event_ts(first) == expected
    object.__setattr__(first, "occurred_at", second.occurred_at)
    assert first == second and first.model_dump_json() == second.model_dump_json()


def test_an_events_cached_values_are_read_without_pydantics_attribute_fallback(monkeypatch):
    # The first read of an unset slot fell back to BaseModel.__getattr__, which cost more than
    # the time conversion the cache saves (every event misses once).
    from pydantic import BaseModel

    from remarket.domain.events import event_ts, stored_json

    asked: list[str] = []
    fallback = BaseModel.__getattr__

    def recording(self, name):
        asked.append(name)
        return fallback(self, name)

    monkeypatch.setattr(BaseModel, "__getattr__", recording)
    event = view(T0, event_id="e-1")
    assert event_ts(event) == event_ts(event) == int(T0.timestamp())
    assert stored_json(event) is stored_json(event)
    assert asked == []
