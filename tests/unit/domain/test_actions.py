"""The outbound contract's deterministic ids."""
import random
import uuid

from remarket.domain.actions import _ACTION_NAMESPACE, ActionKind, action_id_for


def test_an_action_id_is_the_uuid5_of_customer_kind_and_trigger():
    rng = random.Random(7)
    alphabet = "abcXYZ019-_:.@ \x1féß中文🙂"
    for kind in [*ActionKind, "withdrawal"]:
        for _ in range(300):
            customer = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
            ref = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
            expected = str(uuid.uuid5(_ACTION_NAMESPACE, f"{customer}\x1f{kind}\x1f{ref}"))
            assert action_id_for(customer, kind, ref) == expected
            assert uuid.UUID(expected).version == 5


def test_the_same_trigger_always_gets_the_same_id():
    assert action_id_for("c1", ActionKind.LIFECYCLE_NEW, "stage:new:1:0") == action_id_for(
        "c1", "lifecycle_new", "stage:new:1:0") == "c2c4eefd-2898-5ac3-ab1f-abf25fe37835"  # uuid.uuid5, once
