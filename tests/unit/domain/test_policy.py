import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from remarket.domain.policy import DEFAULT_POLICY, Policy, PolicyError, load_policy, policy_from_dict

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "policy.example.toml"


def _field_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    paths = set()
    for name, info in model.model_fields.items():
        paths.add(prefix + name)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and name not in ("cap",):
            paths |= _field_paths(annotation, f"{prefix}{name}.")
    return paths


def _document_paths(document: dict, prefix: str = "") -> set[str]:
    paths = set()
    for key, value in document.items():
        paths.add(prefix + key)
        if isinstance(value, dict):
            paths |= _document_paths(value, f"{prefix}{key}.")
    return paths


def test_example_policy_file_loads_and_equals_the_defaults():
    assert load_policy(EXAMPLE) == Policy() == DEFAULT_POLICY


def test_example_policy_file_documents_every_field():
    document = tomllib.loads(EXAMPLE.read_text())
    assert _field_paths(Policy) - _document_paths(document) == set()


def test_missing_fields_take_their_defaults(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('version = "shop-7"\n[reminder]\ndelay = "45m"\n')
    policy = load_policy(path)
    assert policy.version == "shop-7"
    assert policy.reminder.delay == timedelta(minutes=45)
    assert policy.lifecycle == DEFAULT_POLICY.lifecycle


@pytest.mark.parametrize("document, message", [
    ({"lifecycle": {"declining_factor": 0.5}}, "lifecycle.declining_factor: must be greater than 1"),
    ({"lifecycle": {"declining_factor": 3, "churned_factor": 2}},
     "lifecycle.declining_factor: must be less than lifecycle.churned_factor"),
    ({"holdout": {"share": 1.5}}, "holdout.share: must be less than or equal to 1"),
    ({"reminder": {"delay": "soon"}}, "reminder.delay:"),
    ({"reminder": {"dealy": "30m"}}, "reminder.dealy: unknown field"),
    ({"quiet_hours": {"start": "24:30"}}, "quiet_hours.start:"),
    ({"contact": {"default_timezone": "Mars/Olympus"}}, "contact.default_timezone: unknown time zone"),
    ({"contact": {"stage_caps": {"dormant": {"max": 1, "window": "7d"}}}}, "contact.stage_caps.dormant: not a stage"),
    ({"tier": {"amount_levels": [{"name": "a", "min": 0}, {"name": "b", "min": 0}]}},
     "tier.amount_levels: minimums must be strictly increasing"),
    ({"rfm": {"recency_days": [30, 20, 180, 365]}}, "rfm.recency_days: needs 4 strictly increasing cut points"),
    ({"campaigns": {"mature": {"cycle_min": "100d"}}}, "campaigns.mature.cycle_min: must not exceed cycle_max"),
    ({"activity": {"email_inactive_after": "10d"}}, "activity.email_inactive_after: must not be shorter"),
    ({"festivals": {"windows": [{"name": "x", "start": "13-01", "end": "01-02"}]}}, "festivals.windows.0.start:"),
])
def test_broken_policy_is_rejected_with_the_field_named(document, message):
    with pytest.raises(PolicyError) as caught:
        policy_from_dict(document)
    assert message in str(caught.value)


def test_invalid_toml_is_a_policy_error(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[reminder\n")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(path)


def test_durations_accept_friendly_units_and_iso():
    policy = policy_from_dict({"reminder": {"delay": "1h30m", "valid_for": "P2D"}, "coupon": {"delay": 600}})
    assert policy.reminder.delay == timedelta(minutes=90)
    assert policy.reminder.valid_for == timedelta(days=2)
    assert policy.coupon.delay == timedelta(minutes=10)


def test_the_shell_reads_tolerances_at_the_top_level():
    assert DEFAULT_POLICY.future_tolerance == timedelta(minutes=5)
    assert DEFAULT_POLICY.dedup_event_ids == 32


def test_overriding_one_campaign_field_keeps_that_stages_other_defaults():
    policy = policy_from_dict({"campaigns": {"mature": {"coupon_percent": 8}}})
    assert policy.campaigns.mature.coupon_percent == 8
    assert policy.campaigns.mature.cadence == "cycle"
