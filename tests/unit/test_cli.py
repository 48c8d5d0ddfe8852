"""The `remarket` command's offline subcommands."""
from __future__ import annotations

from pathlib import Path

from remarket.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_policy_check_accepts_the_shipped_policies(capsys):
    for name in ("policy.example.toml", "policy.demo.toml"):
        assert main(["policy", "check", str(ROOT / "deploy" / name)]) == 0
    assert "ok" in capsys.readouterr().out


def test_policy_check_rejects_a_broken_policy_naming_the_field(tmp_path, capsys):
    broken = tmp_path / "policy.toml"
    broken.write_text('[reminder]\ndelay = "soon"\n[lifecycle]\nchurned_factor = 1.2\n')
    assert main(["policy", "check", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "reminder.delay" in err and "lifecycle" in err


def test_commands_that_need_kafka_say_how_to_point_at_it(monkeypatch, capsys):
    monkeypatch.delenv("REMARKET_KAFKA_BOOTSTRAP", raising=False)
    assert main(["topics", "apply"]) == 2
    assert "REMARKET_KAFKA_BOOTSTRAP" in capsys.readouterr().err


def test_cli_help_lists_the_commands(capsys):
    import pytest

    from remarket.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("worker", "topics", "simulate", "tail", "inspect", "policy", "replay", "fit"):
        assert command in out
