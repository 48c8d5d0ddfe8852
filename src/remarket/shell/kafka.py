"""aiokafka plumbing shared by the CLI commands: client security config and topic admin."""
from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from remarket.catalog import CO_PARTITIONED_DIRECTIONS, Catalog
from remarket.settings import Settings


class BootstrapMissing(RuntimeError):
    pass


def bootstrap_of(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        raise BootstrapMissing(
            "REMARKET_KAFKA_BOOTSTRAP is not set: point it at your brokers (host:port), or start the "
            "local broker with `python deploy/kafka/local_broker.py start`")
    return settings.kafka_bootstrap


def client_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client, security included."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap_of(settings),
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        config["ssl_context"] = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        config["sasl_plain_username"] = settings.kafka_sasl_username
        config["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None)
    return config


def ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(str(settings.kafka_ssl_certfile),
                                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None)
    return context


def changelog_topic(settings: Settings) -> str:
    """Faust names a table's changelog `{app_id}-{table}-changelog`."""
    return f"{settings.app_id}-customers-changelog"


@dataclass(frozen=True)
class TopicReport:
    name: str
    status: str  # created | ok | mismatch
    detail: str = ""


async def apply_topics(settings: Settings, catalog: Catalog) -> list[TopicReport]:
    """Create missing topics; check existing ones. Idempotent; never alters an existing topic."""
    admin = AIOKafkaAdminClient(**client_config(settings))
    await admin.start()
    try:
        existing = await _partition_counts(admin)
        reports: list[TopicReport] = []
        to_create = []
        for spec in catalog:
            have = existing.get(spec.name)
            if have is None:
                to_create.append(NewTopic(spec.name, spec.partitions, spec.replication_factor,
                                          topic_configs=spec.config()))
                reports.append(TopicReport(spec.name, "created", f"{spec.partitions} partitions"))
            elif have != spec.partitions and spec.direction in CO_PARTITIONED_DIRECTIONS:
                reports.append(TopicReport(
                    spec.name, "mismatch",
                    f"has {have} partitions, the catalog says {spec.partitions}: input topics, ticks and the "
                    f"state changelog must share one partition count (co-partitioning by customer id)"))
            else:
                reports.append(TopicReport(spec.name, "ok", f"{have} partitions"))
        changelog = changelog_topic(settings)
        if changelog in existing and existing[changelog] != catalog.partitions:
            reports.append(TopicReport(
                changelog, "mismatch",
                f"has {existing[changelog]} partitions, inputs have {catalog.partitions}"))
        for new_topic in to_create:
            try:
                await admin.create_topics([new_topic])
            except TopicAlreadyExistsError:  # raced with another worker: fine
                pass
        return reports
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    names = [n for n in await admin.list_topics() if not n.startswith("__")]
    if not names:
        return {}
    described = await admin.describe_topics(names)
    return {d["topic"]: len(d["partitions"]) for d in described if not d.get("error_code")}
