"""Reading a Prometheus text exposition (a worker's /metrics)."""
from __future__ import annotations

import re

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? ([0-9.eE+-]+|NaN|[+-]Inf)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(exposition: str):
    """(name, labels, value) of every sample line."""
    for line in exposition.splitlines():
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            yield match.group(1), dict(_LABEL.findall(match.group(2) or "")), float(match.group(3))


def metric_sum(exposition: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` (every label set, or those matching `labels`)."""
    return sum(value for sample, have, value in samples(exposition)
               if sample == name and all(have.get(k) == v for k, v in labels.items()))
