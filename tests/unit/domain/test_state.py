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
