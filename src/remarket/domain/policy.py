"""Merchant policy: every threshold, window, size and cap, with defaults from the domain notes."""
from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field("default-1", min_length=1, max_length=64)
    dedup_event_ids: int = Field(64, ge=1, le=10_000, description="Recent event ids kept per customer for dedup.")
    future_tolerance: timedelta = Field(timedelta(minutes=5), description="Events further ahead of the clock are rejected.")


DEFAULT_POLICY = Policy()
