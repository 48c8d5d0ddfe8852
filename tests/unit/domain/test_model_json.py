"""What remarket.domain.model_json writes is pydantic's `model_dump_json`, byte for byte: a state's
and a held event's (`exclude_defaults=True, by_alias=True`), an action's, a withdrawal's and a
profile's (every field). For those the core makes, for every field of every model set, and for
the values orjson and pydantic could write differently (offsets, microseconds, floats, escapes,
big ints)."""
from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field, PlainSerializer, field_serializer

from remarket.domain.actions import (Action, ActionKind, Coupon, CouponUnit, Reason, Withdrawal, WithdrawalReason,
                                     message_json)
from remarket.domain.events import Channel
from remarket.domain.model_json import compact_encoder
from remarket.domain.profile import CustomerProfile, Rfm, profile_json
from remarket.domain.vocabulary import Activity
from remarket.domain.events import PromotionType, parse_event, stored_json
from remarket.domain.state import (Attention, CustomerState, Offer, OpenOrder, PendingSend, Proposal,
                                   ring_add)
from remarket.domain.vocabulary import Stage

from .factories import T0, Driver, event, minutes, paid, placed, view
from .test_properties import _fast, histories


def pydantic_json(state: CustomerState) -> bytes:
    return state.model_dump_json(exclude_defaults=True, by_alias=True).encode()


@_fast
@given(histories())
def test_every_state_the_core_makes_is_written_as_pydantic_writes_it(events):
    driver = Driver()
    for e in events:
        driver.feed(e)
        if driver.state is not None:
            assert driver.state.to_json() == pydantic_json(driver.state)


def a_state_with_every_field_set() -> CustomerState:
    berlin = timezone(timedelta(hours=1))
    held = parse_event(orjson.dumps({
        "event_id": "e-1", "customer_id": "c-ü", "occurred_at": "2026-12-07T08:46:35.302902+05:30",
        "event_type": "order.paid", "order_id": "o-1", "total": 12.5, "coupon_type": "gift",
        "context": {"timezone": "Asia/Kolkata", "country": "IN"}, "items": [{"product_id": "p-1", "quantity": 2}]}))
    offer = Offer(type=PromotionType.GIFT, percent=12.5, min_spend=30.0, valid=86_400, boost=True)
    proposal = Proposal(kind="winback", ref="r-1", rule="churned", valid=3600, stage="churned", offer=offer,
                        products=("p-1", "p\"2"), order="o-1", cart="k-1", events=("e-1",), detail="why\n",
                        since=5, retry=6)
    order = OpenOrder(at=7, event_id="e-2", cart_id="k-2", total=1e16, coupon_type=PromotionType.DISCOUNT)
    return CustomerState(
        customer_id="c-\u00fc\u2028\x01", upto=1, due_at=datetime(2026, 12, 7, 8, 46, 35, 1, tzinfo=berlin),
        orders=3, spent=0.1 + 0.2, products={"p-1": Attention(last=9, views=2, since=8, event_id="e-3")},
        email_engagements=[1, 2], site_visits=[3], stage=Stage.CHURNED, policy_version="pv-1", clock=11,
        buffer=[held], recent_event_hashes=ring_add(b"", "e-1", 4), events_by_family={"orders": 2},
        last_seen_by_family={"orders": datetime(2026, 12, 7, tzinfo=UTC), "visits": T0 + minutes(1)},
        timezone="Europe/Berlin", country="DE", first_order=12, last_order=13, redeemed={"gift": 1},
        paid_orders=ring_add(b"", "o-1", 4), closed_orders=ring_add(b"", "o-2", 4),
        closed_carts=ring_add(b"", "k-1", 4), open_orders={"o-3": order}, open_checkouts={"k-3": order},
        email_bounces=1, consent={"sms": False, "email": True}, stage_since=14, reactivations=1, campaign_due=15,
        campaign_seq=2, festival_due=16, festival_done=17, early_due=18, early_for=19, last_reminded=20,
        contacts=[21], couponed={"p-1": 22}, bought_couponed=ring_add(b"", "p-1", 4),
        pending=[PendingSend(id="a-1", kind="reminder", ch="email", at=23, stage="new", order="o-3", cart="k-3",
                             products=("p-1",), hold=True)],
        waiting=[proposal])


def test_every_field_of_every_stored_model_away_from_its_default_is_written_as_pydantic_writes_it():
    state = a_state_with_every_field_set()
    written = orjson.loads(state.to_json())
    for model, document in [(CustomerState, written), (Attention, written["products"]["p-1"]),
                            (OpenOrder, written["open_orders"]["o-3"]), (PendingSend, written["pend"][0]),
                            (Proposal, written["wait"][0]), (Offer, written["wait"][0]["offer"])]:
        assert set(document) == {info.alias or name for name, info in model.model_fields.items()}, model
    assert state.to_json() == pydantic_json(state)
    assert CustomerState.from_bytes(state.to_bytes()) == state


def test_a_state_at_its_defaults_is_written_as_pydantic_writes_it():
    state = CustomerState(customer_id="c1", policy_version="1")
    assert state.to_json() == pydantic_json(state) == b'{"customer_id":"c1","pv":"1"}'


@given(text=st.text(), number=st.floats(), whole=st.integers(-2**63, 2**63 - 1),
       moment=st.datetimes(min_value=datetime(1980, 1, 1), timezones=st.timezones()))
def test_strings_floats_ints_and_times_are_written_as_pydantic_writes_them(text, number, whole, moment):
    """Times from 1980 on: offsets in whole minutes (before ~1972 some zones had seconds in their
    offset, which pydantic truncates and orjson rounds; neither keeps them)."""
    state = CustomerState(customer_id=text, policy_version="1", spent=number, clock=whole,
                          last_seen_by_family={text: moment}, country=text)
    assert state.to_json() == pydantic_json(state)


def test_an_int_beyond_64_bits_is_still_written_as_pydantic_writes_it():
    state = CustomerState(customer_id="c1", policy_version="1", clock=2**70)
    assert state.to_json() == pydantic_json(state)


def test_values_the_core_assigns_without_validation_are_written_as_pydantic_writes_them():
    state = CustomerState(customer_id="c1", policy_version="1")
    state.spent = 3  # an int in a float field
    state.products = {"p": Attention(last=1)}
    assert state.to_json() == pydantic_json(state)


def test_a_field_of_a_kind_it_does_not_know_is_refused_when_the_model_is_compiled():
    class WithASet(BaseModel):
        tags: set[str] = Field(default_factory=set)

    with pytest.raises(TypeError, match="WithASet.tags"):
        compact_encoder(WithASet)

    class WithPlainBytes(BaseModel):  # written as UTF-8 by pydantic unless the model says base64
        raw: bytes = b""

    with pytest.raises(TypeError, match="base64"):
        compact_encoder(WithPlainBytes)


def test_a_default_factory_that_is_not_an_empty_container_is_refused():
    class WithAFullDefault(BaseModel):
        seen: list[int] = Field(default_factory=lambda: [1])

    with pytest.raises(TypeError, match="empty containers"):
        compact_encoder(WithAFullDefault)


def test_other_models_are_written_as_pydantic_writes_them():
    class Note(BaseModel):
        at: AwareDatetime
        tags: tuple[str, ...] = ()
        by: dict[str, list[Offer]] = Field(default_factory=dict)

    note = Note(at=T0, tags=("a",), by={"x": [Offer(type=PromotionType.GIFT, percent=1.0, valid=1)]})
    assert compact_encoder(Note)(note) == note.model_dump_json(exclude_defaults=True, by_alias=True).encode()


EVERY_EVENT_FIELD = [  # every field of every event model away from its default
    {"event_type": "visit.product_view", "product_id": "p-1", "url": "https://shop.example/p/1?q=\u00e9\""},
    {"event_type": "cart.checkout_started", "cart_id": "k-1", "total": 0.30000000000000004, "currency": "USD",
     "items": [{"product_id": "p-1", "quantity": 3, "unit_price": 9.99}, {"product_id": "p-2"}]},
    {"event_type": "order.paid", "order_id": "o-1", "cart_id": "k-1", "total": 1e9, "currency": "GBP",
     "items": [{"product_id": "p-1"}], "coupon_type": "free_shipping"},
    {"event_type": "email.click", "message_id": "m-1", "action_id": "a-1"},
    {"event_type": "consent.updated", "channel": "sms", "granted": False},
]


@pytest.mark.parametrize("fields", EVERY_EVENT_FIELD, ids=lambda fields: fields["event_type"])
def test_every_field_of_every_event_model_is_written_as_pydantic_writes_it(fields):
    held = parse_event(orjson.dumps({"event_id": "e-1", "customer_id": "c-1",
                                     "occurred_at": "2026-12-07T08:46:35.5-03:00",
                                     "context": {"timezone": "Asia/Kolkata", "country": "IN"}, **fields}))
    model = type(held)
    written = orjson.loads(stored_json(held))
    assert set(written) == {info.alias or name for name, info in model.model_fields.items()} - {"schema_version"}
    assert stored_json(held) == held.model_dump_json(exclude_defaults=True, by_alias=True).encode()


def test_a_model_with_serializers_of_its_own_is_refused():
    class Rounded(BaseModel):
        total: float = 0.0

        @field_serializer("total")
        def _rounded(self, total: float) -> float:
            return round(total)

    with pytest.raises(TypeError, match="serializers"):
        compact_encoder(Rounded)

    class Shouted(BaseModel):
        name: Annotated[str, PlainSerializer(str.upper)] | None = None

    with pytest.raises(TypeError, match="Shouted.name"):
        compact_encoder(Shouted)


def test_a_held_events_stored_json_takes_no_more_memory_than_its_length():
    """orjson's bytes keep its ~4 KiB buffer: a held event keeps its JSON as long as it waits."""
    held = parse_event(orjson.dumps({"event_id": "e-1", "customer_id": "c-1", "occurred_at": "2026-12-07T08:46:35Z",
                                     "event_type": "visit.page_view"}))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = stored_json(held)
        assert tracemalloc.get_traced_memory()[0] - before < len(kept) + 200
    finally:
        tracemalloc.stop()


def pydantic_full_json(message: BaseModel) -> bytes:
    return message.model_dump_json().encode()


@_fast
@given(histories())
def test_every_action_withdrawal_and_profile_the_core_makes_is_written_as_pydantic_writes_it(events):
    driver = Driver()
    driver.feed(*events).run_until(events[-1].occurred_at + timedelta(days=400))
    for message in [*driver.actions, *driver.withdrawals]:
        assert message_json(message) == pydantic_full_json(message)
    for outcome in driver.outcomes:
        if outcome.profile is not None:
            assert profile_json(outcome.profile) == pydantic_full_json(outcome.profile)


def test_every_field_of_an_action_a_withdrawal_and_a_profile_is_written_as_pydantic_writes_it():
    at = datetime(2026, 12, 7, 8, 46, 35, 120, tzinfo=timezone(timedelta(hours=-3)))
    action = Action(
        action_id="a-1", kind=ActionKind.LIFECYCLE_CHURNED, customer_id="c-1", channel=Channel.SMS, send_after=at,
        expires_at=T0, coupon=Coupon(type=PromotionType.GIFT, value=15, unit=CouponUnit.PERCENT, min_spend=30.5,
                                     valid_until=T0, extra_percent=10.0),
        product_ids=["p-1", "p-2"], order_id="o-1", policy_version="pv-1", holdout=True, created_at=T0,
        referral_ask=True, reason=Reason(rule="churned_winback", stage=Stage.CHURNED, tier="gold", top_value=True,
                                         email_activity=Activity.LAPSING, site_activity=Activity.INACTIVE,
                                         repurchase_score=0.25, triggering_event_ids=["e-1"], detail="why \u00e9"))
    withdrawal = Withdrawal(action_id="w-1", withdrawn_action_id="a-1", withdrawn_kind=ActionKind.LIFECYCLE_CHURNED,
                            customer_id="c-1", channel=Channel.EMAIL, withdrawn_send_after=at,
                            reason=WithdrawalReason.ORDER_PAID, policy_version="pv-1", holdout=True, created_at=T0)
    profile = CustomerProfile(customer_id="c-1", stage="mature", tier="gold", rfm=Rfm(r=5, f=3, m=1),
                              email_activity="active", site_activity="lapsing", orders=3, total_spent=99.9,
                              last_order_at=at, repurchase_score=1.0, promotion_preference="gift", reactivations=2,
                              policy_version="pv-1", as_of=T0)
    for message, written in [(action, message_json(action)), (withdrawal, message_json(withdrawal)),
                             (profile, profile_json(profile))]:
        assert written == pydantic_full_json(message)
        assert set(orjson.loads(written)) == set(type(message).model_fields)  # every field, by name
    assert orjson.loads(message_json(action))["coupon"]["value"] == 15.0  # an int in a float field
