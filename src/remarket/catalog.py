"""The topic catalog (streams/topics.toml) as frozen specs. No Kafka imports: data only."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

PACKAGED_CATALOG = Path(__file__).parent / "data" / "topics.toml"
INPUT_ROLES = ("visits", "orders", "carts", "email", "consent")
CO_PARTITIONED_DIRECTIONS = ("input", "internal")
LEGAL_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


class CatalogError(ValueError):
    """The catalog file is missing a field or contradicts itself."""


@dataclass(frozen=True)
class TopicSpec:
    role: str
    name: str
    direction: Literal["input", "internal", "output"]
    families: tuple[str, ...]
    partitions: int
    replication_factor: int
    cleanup_policy: Literal["delete", "compact"]
    retention_ms: int
    schema: str
    key: str = "customer_id"

    def config(self) -> dict[str, str]:
        """Topic-level configs as Kafka expects them."""
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


@dataclass(frozen=True)
class Catalog:
    topics: dict[str, TopicSpec]

    def __getitem__(self, role: str) -> TopicSpec:
        return self.topics[role]

    def __iter__(self) -> Iterator[TopicSpec]:
        return iter(self.topics.values())

    @property
    def inputs(self) -> list[TopicSpec]:
        return [t for t in self if t.direction == "input"]

    @property
    def partitions(self) -> int:
        return self["ticks"].partitions

    def role_of(self, topic_name: str) -> str | None:
        return next((t.role for t in self if t.name == topic_name), None)

    def families_by_topic(self) -> dict[str, frozenset[str]]:
        return {t.name: frozenset(t.families) for t in self.inputs}


def load_catalog(
    path: Path | None = None,
    *,
    overrides: dict[str, str] | None = None,
    partitions: int | None = None,
    replication_factor: int | None = None,
) -> Catalog:
    path = path or PACKAGED_CATALOG
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"cannot read topic catalog {path}: {exc}") from exc
    defaults = raw.get("defaults", {})
    overrides = overrides or {}
    unknown = set(overrides) - set(raw.get("topics", {}))
    if unknown:
        raise CatalogError(f"topic overrides for unknown roles: {sorted(unknown)}")
    topics: dict[str, TopicSpec] = {}
    for role, spec in raw.get("topics", {}).items():
        try:
            topics[role] = TopicSpec(
                role=role,
                name=overrides.get(role, spec["name"]),
                direction=spec["direction"],
                families=tuple(spec.get("families", ())),
                partitions=partitions or spec.get("partitions", defaults["partitions"]),
                replication_factor=replication_factor or spec.get("replication_factor", defaults["replication_factor"]),
                cleanup_policy=spec["cleanup_policy"],
                retention_ms=int(spec["retention_ms"]),
                schema=spec.get("schema", ""),
                key=spec.get("key", "customer_id"),
            )
        except KeyError as exc:
            raise CatalogError(f"{path}: topics.{role} is missing {exc}") from exc
    for role, spec in topics.items():
        if not LEGAL_TOPIC_NAME.fullmatch(spec.name) or spec.name in (".", ".."):
            source = f"REMARKET_TOPIC_{role.upper()}" if role in overrides else f"{path}: topics.{role}.name"
            raise CatalogError(f"{source}={spec.name!r} is not a legal Kafka topic name (ASCII letters, digits, "
                               "'.', '_' and '-', at most 249)")
    missing = {*INPUT_ROLES, "ticks", "rerouted", "actions", "holdout", "profiles", "dead_letter"} - set(topics)
    if missing:
        raise CatalogError(f"{path}: the catalog lacks roles {sorted(missing)}")
    names = [t.name for t in topics.values()]
    if len(set(names)) != len(names):
        raise CatalogError(f"{path}: two roles share a topic name: {sorted(names)}")
    return Catalog(topics)
