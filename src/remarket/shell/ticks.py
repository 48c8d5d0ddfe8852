"""The internal ticks topic's message: "advance this customer to `now`" (due work fed back
through the agent that owns the customer's partition). Pydantic only: its JSON Schema is one of
the contracts in schemas/."""
from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict


class Tick(BaseModel):
    """Internal: 'advance this customer to `now`', keyed by customer id on the ticks topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    now: AwareDatetime


def tick_value(now: datetime) -> bytes:
    return Tick(now=now).model_dump_json().encode()
