"""docs/configuration.md is generated from the Settings model and must not drift from it."""
from __future__ import annotations

from remarket.devkit import configdoc
from remarket.settings import Settings


def test_configuration_reference_is_current():
    current = configdoc.DOC_PATH.read_text(encoding="utf-8")
    assert current == configdoc.render(), "docs/configuration.md is out of date: run `python -m remarket.devkit.configdoc`"


def test_check_mode_fails_on_a_stale_file_and_passes_on_a_fresh_one(tmp_path):
    stale = tmp_path / "configuration.md"
    stale.write_text(configdoc.render().replace("REMARKET_WEB_PORT", "REMARKET_WEB_PORTS"))
    assert configdoc.main(["--check", "--output", str(stale)]) == 1
    assert configdoc.main(["--output", str(stale)]) == 0
    assert configdoc.main(["--check", "--output", str(stale)]) == 0


def test_every_setting_is_documented_with_its_variable_and_a_description():
    text = configdoc.render()
    for name, field in Settings.model_fields.items():
        row = next((line for line in text.splitlines() if line.startswith(f"| `REMARKET_{name.upper()}`")), None)
        assert row is not None, f"REMARKET_{name.upper()} missing"
        description = row.rstrip(" |").rsplit(" | ", 1)[-1]
        assert description.strip(), f"REMARKET_{name.upper()} has no description (Field(description=...) or configdoc)"


def test_secrets_are_marked_and_their_defaults_never_shown():
    text = configdoc.render()
    assert "`REMARKET_KAFKA_SASL_PASSWORD` *secret*" in text
    assert "`REMARKET_LOOKUP_TOKEN` *secret*" in text
