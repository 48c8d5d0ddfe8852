"""The `remarket` command's offline subcommands."""
from __future__ import annotations

from pathlib import Path

from remarket.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_policy_check_accepts_the_shipped_policies(capsys):
    for name in ("policy.example.toml", "policy.demo.toml"):
        assert main(["policy", "check", str(ROOT / "deploy" / name)]) == 0
    for name in ("policy.latency.toml", "policy.soak.toml"):  # the benchmarks' own
        assert main(["policy", "check", str(ROOT / "bench" / name)]) == 0
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


# ---------------------------------------------------------------- replay: strict, and fails clearly

def _event_line(event_id: str, at: str, **fields) -> str:
    import json

    return json.dumps({"event_id": event_id, "customer_id": "c1", "occurred_at": at,
                       "event_type": "order.paid", "order_id": f"o-{event_id}", "total": 10.0, **fields}) + "\n"


def _replay(tmp_path, *extra, lines=None):
    source = tmp_path / "events.jsonl"
    if lines is not None:
        source.write_text("".join(lines))
    return main(["replay", "--input", str(source), "--snapshot", str(tmp_path / "snapshot.jsonl"),
                 "--actions", str(tmp_path / "actions.jsonl"), *extra])


def _one_clear_line(err: str) -> str:
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.strip()]
    assert line.startswith("remarket")
    return line


GOOD = [_event_line("e1", "2025-06-01T12:00:00+00:00"), _event_line("e2", "2025-06-03T12:00:00+00:00")]


def test_replay_rejects_what_the_worker_rejects_and_says_so(tmp_path, capsys):
    lines = [*GOOD, _event_line("far", "9999-12-30T00:00:00+00:00"), _event_line("old", "1970-01-01T00:00:05+00:00"),
             _event_line("yen", "2025-06-02T12:00:00+00:00", currency="JPY")]
    assert _replay(tmp_path, lines=lines) == 0
    captured = capsys.readouterr()
    summary = __import__("json").loads(captured.out)
    assert summary["events"] == 2 and summary["rejected_lines"] == 3
    assert summary["as_of"].startswith("2025-06-03")  # the far-future event did not move the clock
    assert "line 3: rejected by the core: occurred_at 9999-12-30" in captured.err
    assert "line 4: rejected by the core" in captured.err and "before the time it was received" in captured.err
    assert "line 5: rejected by the core: currency 'JPY'" in captured.err


def test_replay_with_an_unreadable_as_of_fails_in_one_line(tmp_path, capsys):
    assert _replay(tmp_path, "--as-of", "yesterday", lines=GOOD) == 2
    assert "--as-of 'yesterday' is not an ISO 8601 time" in _one_clear_line(capsys.readouterr().err)


def test_replay_as_of_without_offset_or_in_the_far_future_fails_in_one_line(tmp_path, capsys):
    assert _replay(tmp_path, "--as-of", "2025-06-05T00:00:00", lines=GOOD) == 2
    assert "needs a UTC offset" in _one_clear_line(capsys.readouterr().err)
    assert _replay(tmp_path, "--as-of", "9999-12-30T00:00:00+00:00", lines=GOOD) == 2
    assert "ahead of now" in _one_clear_line(capsys.readouterr().err)


def test_replay_of_a_missing_file_fails_in_one_line(tmp_path, capsys):
    assert _replay(tmp_path) == 2
    assert "cannot read --input" in _one_clear_line(capsys.readouterr().err)


def test_replay_with_an_invalid_policy_fails_in_one_line_naming_the_fields(tmp_path, capsys):
    broken = tmp_path / "policy.toml"
    broken.write_text('[reminder]\ndelay = "soon"\n[lifecycle]\nchurned_factor = 1.2\n')
    assert _replay(tmp_path, "--policy", str(broken), lines=GOOD) == 2
    line = _one_clear_line(capsys.readouterr().err)
    assert "invalid policy" in line and "reminder.delay" in line and "lifecycle" in line


def test_replay_of_a_file_with_no_valid_line_exits_non_zero(tmp_path, capsys):
    assert _replay(tmp_path, lines=['{"event_type": "order.paid"}\n', "not json\n",
                                    _event_line("far", "9999-12-30T00:00:00+00:00")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "remarket replay: no valid event in" in err and "2 invalid, 1 rejected by the core" in err
