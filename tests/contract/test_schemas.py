"""The JSON Schemas in schemas/ are generated from the models and agree with them."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from remarket.catalog import load_catalog
from remarket.devkit.contracts import SCHEMA_ROOT, drift
from remarket.domain.events import EventType, parse_event

VALID = {
    "visit.product_view": {"product_id": "p-1"},
    "visit.page_view": {},
    "visit.favourite": {"product_id": "p-2"},
    "cart.add": {"cart_id": "k-1", "items": [{"product_id": "p-1", "quantity": 2, "unit_price": 3.5}], "total": 7.0},
    "cart.checkout_started": {"cart_id": "k-1", "total": 7.0},
    "order.placed": {"order_id": "o-1", "total": 12.5},
    "order.paid": {"order_id": "o-1", "total": 12.5, "coupon_type": "free_shipping"},
    "order.cancelled": {"order_id": "o-1"},
    "order.refunded": {"order_id": "o-1", "total": 12.5},
    "email.delivered": {"message_id": "m-1"},
    "email.open": {"message_id": "m-1"},
    "email.click": {},
    "email.bounce": {},
    "email.unsubscribe": {},
    "consent.updated": {"channel": "sms", "granted": False},
    "consent.erasure_requested": {},
}


def document(event_type: str, **extra) -> dict:
    return {"event_id": "e-1", "event_type": event_type, "customer_id": "c-1",
            "occurred_at": "2026-11-01T10:00:00+01:00", "schema_version": 1,
            "context": {"timezone": "Europe/Berlin", "country": "DE"}, **VALID[event_type], **extra}


def union_schema() -> dict:
    return json.loads((SCHEMA_ROOT / "events" / "event.schema.json").read_text())


def validate(doc: dict, schema: dict) -> None:
    """Like a strict consumer would: formats (date-time with offset) checked too."""
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    validator.validate(doc)


def test_schema_files_match_the_models():
    assert drift() == [], "schemas/ drifted: run `python -m remarket.devkit.contracts`"


def test_every_documented_event_type_has_an_example_here():
    assert set(VALID) == {t.value for t in EventType}


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_valid_events_pass_both_the_model_and_the_published_schema(event_type):
    doc = document(event_type)
    assert parse_event(json.dumps(doc)).event_type == event_type
    validate(doc, union_schema())


@pytest.mark.parametrize("mutation", [
    {"occurred_at": "2026-11-01T10:00:00"},  # no offset: event time must be unambiguous
    {"customer_id": ""},
    {"schema_version": 2},
    {"total": -1},
    {"surprise": 1},
    {"event_type": "order.teleported"},
])
def test_invalid_events_fail_both_the_model_and_the_published_schema(mutation):
    doc = {**document("order.paid"), **mutation}
    with pytest.raises(ValidationError):
        parse_event(json.dumps(doc))
    with pytest.raises(jsonschema.ValidationError):
        validate(doc, union_schema())


def test_cross_field_rules_are_enforced_by_the_model():
    with pytest.raises(ValidationError, match="product_id"):
        parse_event(json.dumps({**document("visit.page_view"), "event_type": "visit.product_view"}))
    with pytest.raises(ValidationError, match="channel"):
        parse_event(json.dumps({**document("consent.erasure_requested"), "event_type": "consent.updated"}))


def test_the_catalog_points_at_schema_files_that_exist():
    root = SCHEMA_ROOT.parent
    for spec in load_catalog():
        if spec.schema:
            assert (root / spec.schema).is_file(), f"{spec.role}: {spec.schema} missing"


def test_each_input_topic_schema_covers_exactly_its_families():
    for spec in load_catalog().inputs:
        schema = json.loads((Path(SCHEMA_ROOT.parent) / spec.schema).read_text())
        types = set(schema["properties"]["event_type"]["enum"])
        assert {t.split(".")[0] for t in types} == {f.rstrip("s") if f != "email" else f for f in spec.families}
