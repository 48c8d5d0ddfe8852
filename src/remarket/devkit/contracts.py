"""JSON Schemas in schemas/ are generated from the pydantic models; this is the generator.

    python -m remarket.devkit.contracts            # rewrite schemas/
    python -m remarket.devkit.contracts --check    # exit 1 if schemas/ drifted from the models
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson
from pydantic import BaseModel, TypeAdapter

from remarket.domain.actions import Action, Withdrawal
from remarket.domain.events import CartEvent, ConsentEvent, EmailEvent, InboundEvent, OrderEvent, VisitEvent
from remarket.shell.ticks import Tick

SCHEMA_ROOT = Path(__file__).resolve().parents[3] / "schemas"
ID_BASE = "https://remarket.dev/schemas/"


def _models() -> dict[str, TypeAdapter | type[BaseModel]]:
    models: dict[str, TypeAdapter | type[BaseModel]] = {
        "events/visit.schema.json": VisitEvent,
        "events/cart.schema.json": CartEvent,
        "events/order.schema.json": OrderEvent,
        "events/email.schema.json": EmailEvent,
        "events/consent.schema.json": ConsentEvent,
        "events/event.schema.json": TypeAdapter(InboundEvent),
        "actions/action.schema.json": Action,
        "actions/withdrawal.schema.json": Withdrawal,
        "internal/tick.schema.json": Tick,
    }
    try:
        from remarket.domain.profile import CustomerProfile
    except ImportError:
        pass
    else:
        models["profiles/profile.schema.json"] = CustomerProfile
    return models


def render() -> dict[str, bytes]:
    """Relative path -> schema file contents, deterministic (sorted keys, trailing newline)."""
    files = {}
    for rel, model in _models().items():
        schema = model.json_schema() if isinstance(model, TypeAdapter) else model.model_json_schema()
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": ID_BASE + rel, **schema}
        files[rel] = orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    return files


def drift(root: Path = SCHEMA_ROOT) -> list[str]:
    """Files in schemas/ that differ from what the models generate (or are missing/extra)."""
    expected = render()
    problems = [f"{rel}: missing" for rel in expected if not (root / rel).exists()]
    problems += [f"{rel}: differs from the model" for rel, body in expected.items()
                 if (root / rel).exists() and (root / rel).read_bytes() != body]
    present = {str(p.relative_to(root)) for p in root.rglob("*.json")}
    problems += [f"{rel}: no model generates it" for rel in sorted(present - set(expected))]
    return problems


def write(root: Path = SCHEMA_ROOT) -> None:
    for rel, body in render().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        problems = drift()
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
