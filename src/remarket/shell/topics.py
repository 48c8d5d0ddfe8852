"""`remarket topics apply` and the worker's start-up check: the broker's topics against the catalog.

Creates missing topics (the worker: never an input topic), compares every existing topic with
what the catalog declares (partitions, replication factor and every config `TopicSpec.config()`
names) and reports each difference. It changes an existing topic only when asked (`alter=True`),
and then only what Kafka can change safely: topic configs, and partition counts of output
topics upwards. Co-partitioned topics (inputs, ticks, the state changelog) are never
repartitioned: growing one would send a customer's events and state to different partitions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from remarket.catalog import CO_PARTITIONED_DIRECTIONS, Catalog, TopicSpec
from remarket.settings import Settings
from remarket.shell.kafka import changelog_topic, client_config

DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs config_source: set on this topic (not a broker default)


@dataclass(frozen=True)
class TopicReport:
    name: str
    status: str  # created | ok | missing | mismatch | failed | drift | altered
    detail: str = ""
    setting: str = ""  # what drifted: partitions, replication_factor or a topic config name

    @property
    def blocking(self) -> bool:
        """The worker must not start on this."""
        return self.status in ("missing", "mismatch", "failed")


@dataclass(frozen=True)
class Observed:
    partitions: int
    replication_factor: int
    configs: dict[str, str]
    overrides: dict[str, str]  # the configs set on the topic itself: what a (full) AlterConfigs must keep


def compare(spec: TopicSpec, have: Observed) -> list[TopicReport]:
    """Every way an existing topic differs from its spec (pure)."""
    reports = []
    if have.partitions != spec.partitions:
        if spec.direction in CO_PARTITIONED_DIRECTIONS:
            reports.append(TopicReport(
                spec.name, "mismatch",
                f"partitions: has {have.partitions}, the catalog says {spec.partitions}; input topics, ticks and "
                "the state changelog must share one partition count (co-partitioning by customer id): "
                "remarket never changes it; set REMARKET_PARTITIONS or recreate the topics"))
        else:
            if have.partitions > spec.partitions:
                growable = "Kafka cannot shrink a topic"
            elif spec.cleanup_policy == "compact":
                growable = "compacted: more partitions would split a key's history, recreate it instead"
            else:
                growable = "--alter grows it"
            reports.append(TopicReport(spec.name, "drift", f"partitions: has {have.partitions}, the catalog says "
                                       f"{spec.partitions} ({growable})", "partitions"))
    if have.replication_factor != spec.replication_factor:
        reports.append(TopicReport(
            spec.name, "drift", f"replication factor: has {have.replication_factor}, the catalog says "
            f"{spec.replication_factor} (a partition reassignment changes it; --alter does not)",
            "replication_factor"))
    for name, want in spec.config().items():
        value = have.configs.get(name)
        if value != want:
            reports.append(TopicReport(spec.name, "drift", f"{name}: has {value}, the catalog says {want}", name))
    return reports


async def apply_topics(settings: Settings, catalog: Catalog, *, create_inputs: bool = True,
                       alter: bool = False) -> list[TopicReport]:
    """Create what is missing (inputs only if `create_inputs`), report drift, fix it if `alter`."""
    admin = AIOKafkaAdminClient(**client_config(settings))
    await admin.start()
    try:
        existing = await _layouts(admin)
        if not create_inputs:  # a missing input stops everything: create nothing for a deployment that cannot run
            missing = [await _create(admin, spec, False) for spec in catalog.inputs if spec.name not in existing]
            if missing:
                return missing
        configs = await _configs(admin, [spec.name for spec in catalog if spec.name in existing])
        reports: list[TopicReport] = []
        for spec in catalog:
            if spec.name not in existing:
                reports.append(await _create(admin, spec, create_inputs))
                continue
            partitions, replicas = existing[spec.name]
            if spec.name not in configs:
                reports.append(TopicReport(spec.name, "drift", "configs: the broker did not describe them "
                                           "(DescribeConfigs refused?): not checked", "configs"))
                continue
            drift = compare(spec, Observed(partitions, replicas, *configs[spec.name]))
            if alter and drift:
                drift = await _alter(admin, spec, drift, partitions, configs[spec.name][1])
            reports += drift or [TopicReport(spec.name, "ok", f"{partitions} partitions, {_summary(spec)}")]
        reports += await _check_changelog(admin, changelog_topic(settings), existing, catalog.partitions, alter)
        return reports
    finally:
        await admin.close()


async def _check_changelog(admin: AIOKafkaAdminClient, changelog: str, existing: dict[str, tuple[int, int]],
                           partitions: int, alter: bool) -> list[TopicReport]:
    """faust creates the state changelog (compacted); it must stay compacted and co-partitioned."""
    if changelog not in existing:
        return []
    reports = []
    if existing[changelog][0] != partitions:
        reports.append(TopicReport(
            changelog, "mismatch",
            f"partitions: has {existing[changelog][0]}, inputs have {partitions} (the state changelog "
            "is co-partitioned with them; remarket never changes it)"))
    described = await _configs(admin, [changelog])
    if changelog not in described:
        return reports + [TopicReport(changelog, "drift", "configs: the broker did not describe them: not checked",
                                      "configs")]
    configs, overrides = described[changelog]
    policy = configs.get("cleanup.policy", "")
    if "compact" not in policy.split(","):
        detail = f"cleanup.policy: has {policy}, the state changelog must be compact (or state is lost)"
        if alter:
            await _check(await admin.alter_configs([ConfigResource(
                ConfigResourceType.TOPIC, changelog, {**overrides, "cleanup.policy": "compact"})]))
            reports.append(TopicReport(changelog, "altered", f"cleanup.policy: was {policy}, now compact",
                                       "cleanup.policy"))
        else:
            reports.append(TopicReport(changelog, "drift", detail, "cleanup.policy"))
    return reports or [TopicReport(changelog, "ok", f"{partitions} partitions, cleanup.policy={policy}")]


async def _create(admin: AIOKafkaAdminClient, spec: TopicSpec, create_inputs: bool) -> TopicReport:
    if spec.direction == "input" and not create_inputs:
        return TopicReport(spec.name, "missing",
                           f"the input topic ({spec.role}) does not exist: create it with "
                           f"`remarket topics apply` (or fix REMARKET_TOPIC_{spec.role.upper()})")
    response = await admin.create_topics([NewTopic(spec.name, spec.partitions, spec.replication_factor,
                                                   topic_configs=spec.config())])
    for error in response.to_object()["topic_errors"]:  # aiokafka returns them, it does not raise
        code = error["error_code"]
        if code and code != TopicAlreadyExistsError.errno:  # already exists: raced with another worker, fine
            return TopicReport(spec.name, "failed", f"could not create it: {error['error_message'] or code}")
    return TopicReport(spec.name, "created", f"{spec.partitions} partitions, {_summary(spec)}")


async def _alter(admin: AIOKafkaAdminClient, spec: TopicSpec, drift: list[TopicReport], partitions: int,
                 overrides: dict[str, str]) -> list[TopicReport]:
    """Fix what can be fixed; what cannot stays in the returned reports."""
    configs = [r for r in drift if r.setting in spec.config()]
    grow = [r for r in drift if r.setting == "partitions" and r.detail.endswith("(--alter grows it)")]
    if configs:  # AlterConfigs replaces the topic's whole override set: keep the others, change ours
        await _check(await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name,
                                                               {**overrides, **spec.config()})]))
    if grow:
        await admin.create_partitions({spec.name: NewPartitions(spec.partitions)})
    fixed = configs + grow
    return [r for r in drift if r not in fixed] + [
        TopicReport(r.name, "altered", r.detail.replace(": has ", ": was ", 1).replace(", the catalog says", ", now"),
                    r.setting) for r in fixed]


def _summary(spec: TopicSpec) -> str:
    return ", ".join(f"{k}={v}" for k, v in spec.config().items())


async def _layouts(admin: AIOKafkaAdminClient) -> dict[str, tuple[int, int]]:
    """Partitions and replication factor of every topic. Lists first and describes only what exists:
    a metadata request naming a missing topic would create it on brokers with auto-creation on."""
    names = [n for n in await admin.list_topics() if not n.startswith("__")]
    if not names:
        return {}
    described = await admin.describe_topics(names)
    return {d["topic"]: (len(d["partitions"]), max((len(p["replicas"]) for p in d["partitions"]), default=0))
            for d in described if not d.get("error_code")}


async def _configs(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, tuple[dict, dict]]:
    """For each topic: (every config, the configs set on the topic itself)."""
    if not names:
        return {}
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    found: dict[str, tuple[dict, dict]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                continue
            entries = resource["config_entries"]
            found[resource["resource_name"]] = (
                {e["config_names"]: e["config_value"] for e in entries},
                {e["config_names"]: e["config_value"] for e in entries
                 if e.get("config_source") == DYNAMIC_TOPIC_CONFIG and not e["is_sensitive"]})
    return found


async def _check(responses: list[Any]) -> None:
    from aiokafka.errors import for_code

    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                raise for_code(resource["error_code"])(
                    f"altering {resource['resource_name']}: {resource['error_message']}")
