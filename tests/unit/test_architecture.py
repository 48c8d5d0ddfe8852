"""The domain core stays pure: no Kafka or Faust anywhere under remarket.domain."""
import ast
from pathlib import Path

import remarket.domain

FORBIDDEN = {"faust", "aiokafka", "mode", "kafka", "confluent_kafka", "remarket.shell"}


def test_domain_never_imports_kafka_or_faust():
    offenders = []
    for path in Path(remarket.domain.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names
                          if n.split(".")[0] in FORBIDDEN or n.startswith("remarket.shell")]
    assert offenders == []


def test_cli_help_lists_the_commands(capsys):
    import pytest

    from remarket.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("worker", "topics", "simulate", "tail", "inspect", "policy", "replay", "fit"):
        assert command in out
