"""A new customer's state: the same as validating one from scratch, and never shared."""
from remarket.domain.state import CustomerState, new_state


def test_a_new_state_is_the_validated_blank_state_with_its_two_fields_set():
    fresh, validated = new_state("c1", "v7"), CustomerState(customer_id="c1", policy_version="v7")
    assert fresh == validated and fresh.__dict__ == validated.__dict__
    assert fresh.__pydantic_fields_set__ == validated.__pydantic_fields_set__ == {"customer_id", "policy_version"}
    assert fresh.to_bytes() == validated.to_bytes()
    assert CustomerState.from_bytes(fresh.to_bytes()) == validated


def test_new_states_share_no_container():
    first = new_state("c1", "v")
    first.buffer.append("x")
    first.consent["email"] = True
    first.contacts.append(1)
    second = new_state("c2", "v")
    assert second.buffer == [] and second.consent == {} and second.contacts == []
    assert second.customer_id == "c2" and first.customer_id == "c1"


def test_a_new_state_from_a_string_subclass_is_validated_as_before():
    class Name(str):
        pass

    fresh, validated = new_state(Name("c1"), "v"), CustomerState(customer_id=Name("c1"), policy_version="v")
    assert fresh == validated and type(fresh.customer_id) is type(validated.customer_id)


def test_what_the_core_keeps_on_a_final_state_stays_off_its_working_copies_and_its_json():
    """A state the core returned keeps its segment key (and the store view its contribution) for
    the customer's next record; a working copy, which the core then changes, starts without them,
    and neither is part of the stored state."""
    from datetime import UTC, datetime, timedelta

    from remarket.domain.policy import Policy
    from remarket.domain.process import apply
    from remarket.domain.profile import final_segment_key, segment_key
    from remarket.domain.state import SEGMENT, STORE_PART, kept

    from .factories import view

    policy, at = Policy(), datetime(2025, 6, 2, 12, tzinfo=UTC)
    first = apply(None, view(at), policy).state
    state = apply(first, view(at + timedelta(minutes=1), product="p2"), policy).state
    known = kept(state, SEGMENT)
    assert known == (state.upto, policy, segment_key(state, state.upto, policy))
    assert final_segment_key(state, state.upto, policy) is known[2]
    assert final_segment_key(state, state.upto + 86_400 * 400, policy) == segment_key(
        state, state.upto + 86_400 * 400, policy)  # another time: worked out, not the kept one
    assert kept(state.working_copy(), SEGMENT) is None and kept(state.working_copy(), STORE_PART) is None
    decoded = CustomerState.from_bytes(state.to_bytes())
    assert decoded == state and kept(decoded, SEGMENT) is None and b"_segment" not in state.to_json()
