"""The layers stay apart: no Kafka or Faust under remarket.domain; the worker never needs the dev kit."""
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


def _imports(package_dir: Path) -> list[tuple[str, str]]:
    found = []
    for path in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found += [(path.name, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found += [(path.name, node.module)]
    return found


def test_the_domain_and_the_shell_never_import_the_dev_kit():
    root = Path(remarket.domain.__file__).parent.parent
    offenders = [f"{where}/{name}: {module}" for where in ("domain", "shell")
                 for name, module in _imports(root / where) if module.startswith("remarket.devkit")]
    assert offenders == []
