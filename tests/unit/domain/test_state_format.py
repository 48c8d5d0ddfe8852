"""Stored state bytes: format 2 (zstd against dictionary 1) is written, the StateFacts keys first
since 2026-12-07, and every format written before still loads. The dictionary's bytes are part of
format 2: the file may never change."""
from __future__ import annotations

import hashlib
from importlib import resources

import pytest
import zstandard
from hypothesis import given

from remarket.domain.policy import Policy
from remarket.domain.profile import segment_key
from remarket.domain.state import Attention, CustomerState, StateFacts, stored_json_size
from remarket.domain.store import contribution

from .factories import T0, Driver, event, minutes, paid, placed, view
from .test_properties import _fast, histories

DICTIONARY_1_SHA256 = "00ba808501b722cc443b388d19d5181f08dd231f69a1d8c7a90134c8b8cbd5fe"


@pytest.fixture
def state() -> CustomerState:
    driver = Driver()
    driver.feed(event("visit.page_view", T0, context={"timezone": "Europe/Berlin", "country": "DE"}),
                view(T0 + minutes(1), "p1"), view(T0 + minutes(2), "p1"), event("email.open", T0 + minutes(3)),
                placed(T0 + minutes(4), "o-1", cart_id="cart-1"), paid(T0 + minutes(6), "o-1"))
    return driver.state


def test_the_dictionary_is_the_one_format_2_was_written_with():
    raw = (resources.files("remarket") / "data" / "state-dictionary-1.zstd").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == DICTIONARY_1_SHA256, (
        "states stored in format 2 need exactly these bytes to load: put a new dictionary in a new "
        "file with a new format byte, and keep this one")


def format_1(state: CustomerState) -> bytes:
    return b"\x01" + zstandard.ZstdCompressor(level=1).compress(state.to_json())


def test_states_are_written_in_format_2_and_read_back(state: CustomerState):
    raw = state.to_bytes()
    assert raw[:1] == b"\x02"
    assert CustomerState.from_bytes(raw) == state


def test_format_1_still_loads(state: CustomerState):
    assert CustomerState.from_bytes(format_1(state)) == state


def test_format_0_still_loads(state: CustomerState):
    assert CustomerState.from_bytes(state.to_json()) == state


def test_format_2_is_smaller_than_format_1(state: CustomerState):
    assert len(state.to_bytes()) < 0.8 * len(format_1(state)), (len(state.to_bytes()), len(format_1(state)))


# Bytes the encoder of 2026-12-03 wrote (a state of the fixture above): they must load forever.
WRITTEN_2026_12_03 = bytes.fromhex(
    "0228b52ffd63f688bf2fe301f506007347173149ce6969bea7a5a1a23eee9cc856d2ead3d2bc8f3be79420ec86907ea2"
    "84b52b53a02c11b0e02cbed02a387c14a17203a639273cb2a81cea784a8d676d4b15235c96f0162e31a4cc48182d4ba0"
    "2c91832f345f14efe0f59eefe3ce1931fc1413109d2f19be309e69dec516b913efe1375c71bb934a16c1d6da07192663"
    "80eec90cb60547485c4a8c8e91170ac80f80509a230de3357aad8b8fc6e4d504a8e7e80932c037d8274568df8c866420"
    "d2e71786a1369ee3b12f547e01ecce6610b08e14f7e288ff0b3187ab5097850298904289f41260a605f2d9122a")


def test_bytes_written_on_2026_12_03_still_load():
    loaded = CustomerState.from_bytes(WRITTEN_2026_12_03)
    assert loaded.customer_id == "c1" and loaded.country == "DE"
    assert "p1" in loaded.products and "o-1" in loaded.open_orders
    assert [e.event_type for e in loaded.buffer] == ["order.paid"]
    facts = StateFacts.from_bytes(WRITTEN_2026_12_03)  # "pv" second then: the facts are read from the whole
    assert (facts.orders, facts.stage, list(facts.products)) == (loaded.orders, loaded.stage, ["p1"])


def test_the_json_size_of_every_format_is_read_without_decoding(state: CustomerState):
    """What the write cache's memory budget is estimated from (shell/state_cache.py)."""
    json = state.to_json()
    sizes = [stored_json_size(raw) for raw in (state.to_bytes(), format_1(state), json)]
    assert sizes == [len(json)] * 3


def test_state_facts_are_state_fields_under_the_same_names_aliases_and_types():
    """StateFacts is read where a CustomerState was: each of its fields must be the state's own."""
    for name, fact in StateFacts.model_fields.items():
        field = CustomerState.model_fields[name]
        assert (fact.alias, fact.annotation) == (field.alias, field.annotation), name
        assert fact.get_default(call_default_factory=True) == field.get_default(call_default_factory=True), name


def test_the_facts_are_written_first_then_policy_version():
    """The rebuild reads the JSON before the top-level "pv" as the facts: the fields keep this order."""
    names = list(CustomerState.model_fields)
    assert names[:len(StateFacts.model_fields) + 1] == [*StateFacts.model_fields, "policy_version"]
    assert CustomerState.model_fields["policy_version"].is_required()  # so every state writes "pv"


@pytest.mark.parametrize("customer_id", ["c1", 'c1","pv":"x', 'pv","pv":"', "\\", ""])
def test_facts_are_read_whatever_the_ids_look_like(customer_id: str):
    """A "pv" key or text inside the facts (a product id, a customer id) is not where they end."""
    state = CustomerState(customer_id=customer_id, policy_version="1", upto=100, orders=2, spent=5.0,
                          products={'a","pv":"b': Attention(last=80),
                                    "pv": Attention(last=90, views=3, event_id='","pv":"')},
                          email_engagements=[1, 2], site_visits=[3], clock=100, country="DE")
    facts = StateFacts.from_bytes(state.to_bytes())
    for name in StateFacts.model_fields:
        assert getattr(facts, name) == getattr(state, name), name


def test_facts_of_a_state_whose_facts_are_all_defaults():
    state = CustomerState(customer_id="c1", policy_version="1", clock=5)
    assert StateFacts.from_bytes(state.to_bytes()) == StateFacts(customer_id="c1")


@_fast
@given(histories())
def test_what_the_index_rebuild_reads_of_a_stored_state_is_what_the_whole_state_says(events):
    """The rebuild decodes only StateFacts: the due time, the store-wide contribution and the
    segment must come out as from the whole state, from every stored format."""
    driver = Driver()
    driver.feed(*events)
    state = driver.state
    if state is None:
        return
    policy = Policy()
    for raw in (state.to_bytes(), format_1(state), state.to_json()):
        facts = StateFacts.from_bytes(raw)
        assert facts.due_at == state.due_at and facts.customer_id == state.customer_id
        assert contribution(facts) == contribution(state)
        if state.upto is not None:  # the worker's segment gauges: (stage, tier) at the state's own time
            assert segment_key(facts, facts.upto, policy) == segment_key(state, state.upto, policy)
        for name in StateFacts.model_fields:
            assert getattr(facts, name) == getattr(state, name), name
