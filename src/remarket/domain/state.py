"""Per-customer state: compact, bounded and serialisable (JSON via pydantic)."""
from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class CustomerState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str
    policy_version: str
    clock: AwareDatetime | None = Field(None, description="Latest logical time this state has seen.")
    recent_event_ids: list[str] = Field(default_factory=list, description="Bounded, for dedup.")
    events_by_family: dict[str, int] = Field(default_factory=dict)
    last_seen_by_family: dict[str, AwareDatetime] = Field(default_factory=dict)
    due_at: AwareDatetime | None = Field(None, description="Next time advance() may change something.")

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_defaults=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "CustomerState":
        return cls.model_validate_json(raw)


def new_state(customer_id: str, policy_version: str) -> CustomerState:
    return CustomerState(customer_id=customer_id, policy_version=policy_version)


def later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a
