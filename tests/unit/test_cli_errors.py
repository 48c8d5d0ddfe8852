"""Configuration errors reach the operator as one line on stderr, exit code 2, never a traceback.

The CLI runs as a subprocess, as an operator runs it. No broker is needed: every check here fails
before Kafka is touched (the bootstrap points at a closed port to prove it).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

CLOSED_PORT = "127.0.0.1:9"


def remarket(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("REMARKET_")}
    base["REMARKET_KAFKA_BOOTSTRAP"] = CLOSED_PORT
    base.update(env)
    return subprocess.run([sys.executable, "-m", "remarket.cli", *args], env=base, capture_output=True,
                          text=True, timeout=60)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["worker"], ["topics", "apply"], ["tail", "actions"], ["inspect", "c-1"],
                                     ["dead-letter", "replay"]])
def test_an_out_of_range_web_port_is_one_line_naming_the_setting_and_the_limit(command):
    line = one_line_error(remarket(*command, REMARKET_WEB_PORT="99999"))
    assert "REMARKET_WEB_PORT" in line and "99999" in line and "65535" in line


def test_a_bad_choice_lists_the_allowed_values():
    line = one_line_error(remarket("worker", REMARKET_PROCESSING_GUARANTEE="sometimes"))
    assert "REMARKET_PROCESSING_GUARANTEE" in line and "exactly_once" in line and "at_least_once" in line


def test_a_non_number_says_a_number_is_expected():
    line = one_line_error(remarket("worker", REMARKET_PARTITIONS="four"))
    assert "REMARKET_PARTITIONS" in line and "integer" in line


def test_a_secret_value_is_never_echoed_in_the_error():
    line = one_line_error(remarket("worker", REMARKET_KAFKA_SASL_PASSWORD="hunter2", REMARKET_PARTITIONS="0"))
    assert "REMARKET_PARTITIONS" in line and "hunter2" not in line


def test_an_invalid_policy_file_names_the_setting_the_file_and_each_field(tmp_path):
    broken = tmp_path / "policy.toml"
    broken.write_text('[reminder]\ndelay = "soon"\n[lifecycle]\nchurned_factor = 1.2\n')
    line = one_line_error(remarket("worker", REMARKET_POLICY_FILE=str(broken)))
    assert "REMARKET_POLICY_FILE" in line and str(broken) in line
    assert "reminder.delay" in line and "lifecycle" in line


def test_a_missing_policy_file_is_one_line(tmp_path):
    line = one_line_error(remarket("worker", REMARKET_POLICY_FILE=str(tmp_path / "nope.toml")))
    assert "REMARKET_POLICY_FILE" in line and "nope.toml" in line


def test_worker_help_lists_the_important_settings_and_points_at_the_reference():
    result = remarket("worker", "--help")
    assert result.returncode == 0
    for name in ("REMARKET_KAFKA_BOOTSTRAP", "REMARKET_PROCESSING_GUARANTEE", "REMARKET_DATA_DIR",
                 "REMARKET_PARTITIONS", "REMARKET_POLICY_FILE", "REMARKET_WEB_PORT", "REMARKET_LOOKUP_TOKEN",
                 "REMARKET_TOPIC_"):
        assert name in result.stdout, name
    assert "docs/configuration.md" in result.stdout


def test_dead_letter_replay_names_an_unknown_reason_and_lists_the_allowed_ones():
    line = one_line_error(remarket("dead-letter", "replay", "--reason", "typo_reason"))
    assert "typo_reason" in line and "schema_violation" in line and "not_json" in line


def test_dead_letter_replay_explains_a_time_without_offset():
    line = one_line_error(remarket("dead-letter", "replay", "--since", "2026-11-01T00:00:00"))
    assert "--since" in line and "UTC offset" in line


def test_every_subcommand_reports_a_bad_policy_or_catalog_in_one_line(tmp_path):
    broken = tmp_path / "policy.toml"
    broken.write_text('[reminder]\ndelay = "soon"\n')
    events = tmp_path / "events.jsonl"
    events.write_text("")
    line = one_line_error(remarket("replay", "--input", str(events), "--snapshot", str(tmp_path / "s.jsonl"),
                                   "--policy", str(broken)))
    assert "--policy" in line and "reminder.delay" in line
    line = one_line_error(remarket("inspect", "c-1", REMARKET_POLICY_FILE=str(broken)))
    assert "REMARKET_POLICY_FILE" in line and "reminder.delay" in line
    line = one_line_error(remarket("simulate", REMARKET_CATALOG_FILE=str(tmp_path / "missing.toml")))
    assert "missing.toml" in line


def test_an_unusable_data_dir_or_tls_file_is_one_line_naming_the_setting(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = one_line_error(remarket("worker", REMARKET_DATA_DIR=str(blocker / "data")))
    assert "REMARKET_DATA_DIR" in line and "a-file" in line
    line = one_line_error(remarket("topics", "apply", REMARKET_KAFKA_SECURITY_PROTOCOL="SSL",
                                   REMARKET_KAFKA_SSL_CAFILE=str(tmp_path / "ca.pem")))
    assert "REMARKET_KAFKA_SSL_CAFILE" in line and "ca.pem" in line


def test_an_illegal_topic_name_is_one_line_naming_the_variable():
    line = one_line_error(remarket("topics", "apply", REMARKET_TOPIC_ORDERS="shop orders!"))
    assert "REMARKET_TOPIC_ORDERS" in line and "shop orders!" in line and "legal" in line


def test_a_web_port_in_use_is_one_line_before_kafka_is_touched(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(remarket("worker", REMARKET_WEB_PORT=str(port), REMARKET_DATA_DIR=str(tmp_path)))
    assert "REMARKET_WEB_PORT" in line and str(port) in line and "in use" in line
