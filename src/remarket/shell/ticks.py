"""The internal ticks topic's message: "advance to `now` whatever is due" (due work fed back
through the worker that owns the partition). Pydantic only: its JSON Schema is one of the
contracts in schemas/.

One tick per partition, not per customer: it carries no customer and is produced to the
partition explicitly; the worker handling it advances every customer of that partition due by
`now`, in the transaction that commits the tick (one record for thousands of customers due at
once, where a tick per customer doubled the records the worker handled). A tick keyed by a
customer id (the earlier form) still advances that one customer.
"""
from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Tick(BaseModel):
    """Internal: 'advance to `now` the customers due on this partition' (no key), or, keyed by a
    customer id, 'advance this customer to `now`'."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    now: AwareDatetime
    partition: int | None = Field(None, ge=0, description="The partition whose due customers to advance "
                                                          "(a tick without a key); must be the record's own.")


def tick_value(now: datetime, partition: int | None = None) -> bytes:
    return Tick(now=now, partition=partition).model_dump_json(exclude_none=True).encode()
