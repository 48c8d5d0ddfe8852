"""The local Kafka broker, imported from the checkout's deploy/kafka/local_broker.py."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "deploy" / "kafka" / "local_broker.py"
_MODULE = "remarket_local_broker"


def _load():
    if _MODULE in sys.modules:
        return sys.modules[_MODULE]
    if not SCRIPT.exists():
        raise ImportError(f"remarket.devkit needs a remarket checkout: {SCRIPT} is missing")
    spec = importlib.util.spec_from_file_location(_MODULE, SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE] = module  # before it runs: its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_local_broker = _load()
LocalBroker = _local_broker.LocalBroker
BrokerError = _local_broker.BrokerError
resolve_jars = _local_broker.resolve_jars
free_port = _local_broker.free_port
