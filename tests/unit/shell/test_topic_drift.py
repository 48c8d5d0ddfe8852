"""How an existing topic is compared with its catalog spec (pure part of `remarket topics apply`)."""
from __future__ import annotations

from remarket.catalog import load_catalog
from remarket.shell.topics import Observed, compare

CATALOG = load_catalog(partitions=4, replication_factor=1)


def observed(spec, partitions=None, replication=1, **configs):
    have = {**spec.config(), **{k.replace("_", "."): v for k, v in configs.items()}}
    return Observed(partitions or spec.partitions, replication, have, have)


def test_a_topic_as_the_catalog_says_has_no_findings():
    for spec in CATALOG:
        assert compare(spec, observed(spec)) == []


def test_every_declared_config_is_compared():
    spec = CATALOG["profiles"]
    findings = compare(spec, observed(spec, cleanup_policy="delete", retention_ms="60000"))
    assert {(f.status, f.setting) for f in findings} == {("drift", "cleanup.policy"), ("drift", "retention.ms")}
    assert any("has delete, the catalog says compact" in f.detail for f in findings)


def test_co_partitioned_topics_with_another_partition_count_are_a_mismatch_never_fixed():
    for role in ("orders", "ticks"):
        [finding] = compare(CATALOG[role], observed(CATALOG[role], partitions=2))
        assert finding.status == "mismatch" and finding.blocking and "co-partitioning" in finding.detail


def test_an_output_topic_with_fewer_partitions_can_grow_a_compacted_one_cannot():
    [actions] = compare(CATALOG["actions"], observed(CATALOG["actions"], partitions=2))
    assert actions.status == "drift" and actions.detail.endswith("(--alter grows it)")
    [profiles] = compare(CATALOG["profiles"], observed(CATALOG["profiles"], partitions=2))
    assert "compacted" in profiles.detail and "--alter grows it" not in profiles.detail
    [more] = compare(CATALOG["actions"], observed(CATALOG["actions"], partitions=8))
    assert "cannot shrink" in more.detail


def test_a_different_replication_factor_is_reported():
    [finding] = compare(CATALOG["actions"], observed(CATALOG["actions"], replication=3))
    assert finding.setting == "replication_factor" and not finding.blocking
