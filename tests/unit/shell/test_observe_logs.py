"""The client libraries' repeated errors during an outage are folded, never lost from view."""
from __future__ import annotations

import logging

from remarket.shell.observe_logs import RepeatFolder


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str, level: int = logging.ERROR, *args) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_the_first_of_a_kind_passes_and_repeats_within_the_window_are_folded_then_counted():
    clock = Clock()
    folder = RepeatFolder(window=30, clock=clock)
    assert folder.filter(record("aiokafka.client", "Unable connect to node with id %s: %s", logging.ERROR, 1, "x"))
    passed = [folder.filter(record("aiokafka.client", "Unable connect to node with id %s: %s", logging.ERROR, 1, "x"))
              for _ in range(100)]
    assert not any(passed)
    clock.now = 31
    again = record("aiokafka.client", "Unable connect to node with id %s: %s", logging.ERROR, 1, "x")
    assert folder.filter(again)
    assert "and 100 more like it in the last 30 s" in again.getMessage()


def test_other_kinds_our_own_lines_and_info_always_pass():
    folder = RepeatFolder(window=30, clock=Clock())
    assert folder.filter(record("aiokafka.client", "one"))
    assert folder.filter(record("aiokafka.client", "another"))
    assert folder.filter(record("faust.transport", "one"))
    for _ in range(3):
        assert folder.filter(record("remarket.readiness", "broker still unreachable"))
        assert folder.filter(record("aiokafka.client", "one", logging.INFO))
