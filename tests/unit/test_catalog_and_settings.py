import pytest

from remarket.catalog import CatalogError, load_catalog
from remarket.settings import Settings


def test_inputs_ticks_are_co_partitioned():
    catalog = load_catalog()
    counts = {spec.partitions for spec in catalog if spec.direction in ("input", "internal")}
    assert counts == {catalog.partitions}


def test_every_input_family_is_accepted_by_exactly_one_topic():
    families = [f for spec in load_catalog().inputs for f in spec.families]
    assert sorted(families) == sorted({"visits", "orders", "carts", "email", "consent"})


def test_topic_names_and_partitions_are_overridable_from_the_environment(monkeypatch):
    monkeypatch.setenv("REMARKET_TOPIC_ORDERS", "shop.orders")
    monkeypatch.setenv("REMARKET_PARTITIONS", "12")
    settings = Settings()
    catalog = load_catalog(overrides=settings.topic_overrides(), partitions=settings.partitions)
    assert catalog["orders"].name == "shop.orders"
    assert {spec.partitions for spec in catalog} == {12}


def test_override_for_an_unknown_role_is_an_error():
    with pytest.raises(CatalogError, match="unknown roles"):
        load_catalog(overrides={"ordersx": "x"})


def test_secrets_never_print(monkeypatch):
    monkeypatch.setenv("REMARKET_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("REMARKET_LOOKUP_TOKEN", "tok")
    settings = Settings()
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    assert "tok'" not in repr(settings)


def test_the_producer_lingers_by_guarantee_unless_told():
    from remarket.shell.faust_app import producer_linger_seconds

    assert producer_linger_seconds(Settings(kafka_bootstrap="k:9092")) == 0.1  # exactly-once: the commit sends
    assert producer_linger_seconds(Settings(kafka_bootstrap="k:9092", processing_guarantee="at_least_once")) == 0.005
    assert producer_linger_seconds(Settings(kafka_bootstrap="k:9092", producer_linger_ms=20)) == 0.02
    assert producer_linger_seconds(Settings(kafka_bootstrap="k:9092", producer_linger_ms=0)) == 0.0
