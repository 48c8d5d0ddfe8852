"""Proof on a real Prometheus: it scrapes a real worker on the real broker under simulated traffic;
every dashboard query and alert expression is valid there and returns series, and alerts fire
from real data (dead letters above 5%, a stopped worker).

Needs the `prometheus` binary (Debian package `prometheus`; scripts/test.sh installs it as root).
"""
from __future__ import annotations

import math
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import orjson
import pytest
import yaml

from tests.integration.harness import free_port, wait_until
from tests.ops.promql import RULES_FILE, alert_rules, dashboard_queries, metric_names, require_tool

SIMULATED_SECONDS = 30
MALFORMED_SHARE = 0.15  # well above the 5% dead-letter alert threshold


class Prometheus:
    def __init__(self, workdir: Path, targets: list[str]) -> None:
        self.port = free_port()
        self.workdir = workdir
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES_FILE)],
            "scrape_configs": [{"job_name": "remarket", "metrics_path": "/metrics",
                                "static_configs": [{"targets": targets}]}],
        }
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        self.proc: subprocess.Popen | None = None

    def start(self, binary: str) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(self._ready, timeout=30, message=f"prometheus ready\n{self.log_tail()}")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def api(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return orjson.loads(r.read())
        except urllib.error.HTTPError as exc:  # 400/422 carry the PromQL error as JSON
            return orjson.loads(exc.read())

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)

    def series(self, expr: str) -> list[dict]:
        answer = self.query(expr)
        assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
        return answer["data"]["result"]

    def value(self, expr: str) -> float:
        result = self.series(expr)
        return float(result[0]["value"][1]) if result else math.nan

    def alerts(self) -> list[dict]:
        return self.api("alerts")["data"]["alerts"]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


@pytest.fixture
def prometheus_binary() -> str:
    return require_tool("prometheus")


def test_dashboard_and_alerts_work_on_a_real_prometheus_scraping_a_worker_under_traffic(
        deployment, prometheus_binary, tmp_path):
    worker = deployment.start_worker("w1")
    prometheus = Prometheus(tmp_path, [f"127.0.0.1:{worker.web_port}"])
    try:
        prometheus.start(prometheus_binary)
        wait_until(lambda: prometheus.value('up{job="remarket"}') == 1, timeout=20, message="worker scraped")

        sim = deployment.cli("simulate", "--customers", "100", "--rate", "40", "--duration", str(SIMULATED_SECONDS),
                             "--history-days", "60", "--malformed", str(MALFORMED_SHARE), timeout=120)
        assert sim.returncode == 0, sim.stdout + sim.stderr
        wait_until(lambda: prometheus.value('sum(remarket_consumer_lag_records{job="remarket"})') == 0
                   and prometheus.value('sum(remarket_actions_total{job="remarket"})') > 0,
                   timeout=60, message="traffic processed and seen by prometheus")

        # traffic made the business metrics non-zero, as Prometheus sees them
        for expr in ('sum(remarket_events_total{outcome="applied"})', "sum(remarket_actions_total)",
                     "sum(remarket_dead_letters_total)", "sum(remarket_stage_transitions_total)",
                     "sum(remarket_suppressions_total)", "sum(remarket_customers)",
                     "sum(remarket_ticks_total{phase=\"handled\"})", "remarket_ready",
                     "sum(faust_messages_received_per_topic_total)", "faust_rebalance_done_latency_seconds_count",
                     "remarket_event_to_action_latency_seconds_count"):
            assert prometheus.value(expr) > 0, f"{expr} is not > 0 after {SIMULATED_SECONDS}s of traffic"

        # the whole exposition of the real worker, under traffic, passes promtool's lint
        status, exposition = worker.get("/metrics")
        assert status == 200 and b"faust_" in exposition and b"remarket_" in exposition
        lint = subprocess.run([require_tool("promtool"), "check", "metrics"], input=exposition, capture_output=True)
        assert lint.returncode == 0, (lint.stdout + lint.stderr).decode()

        # every dashboard query is valid PromQL on this Prometheus and returns series
        empty = []
        for title, expr in dashboard_queries():
            answer = prometheus.query(expr)
            assert answer["status"] == "success", f"panel {title!r}: {expr}\n{answer.get('error')}"
            if not answer["data"]["result"]:
                empty.append(title)
        assert not empty, f"panels without series under traffic: {empty}"
        p95 = prometheus.value('histogram_quantile(0.95, sum by (le) '
                               '(rate(remarket_event_to_action_latency_seconds_bucket{job="remarket"}[2m])))')
        assert math.isfinite(p95) and p95 >= 0

        # every alert expression is valid; every metric it watches has series; the rule evaluates cleanly
        for rule in alert_rules():
            answer = prometheus.query(rule["expr"])
            assert answer["status"] == "success", f"{rule['alert']}: {answer.get('error')}"
            for name in metric_names(rule["expr"]):
                assert prometheus.series(f'count({{__name__="{name}", job="remarket"}})'), \
                    f"{rule['alert']} watches {name}, which has no series"
        rules = [r for g in prometheus.api("rules")["data"]["groups"] for r in g["rules"]]
        assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
        assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]

        # real data makes alerts fire: the dead-letter share is above 5% ...
        share = prometheus.value('sum(rate(remarket_dead_letters_total[10m])) / sum(rate(remarket_events_total[10m]))')
        assert share > 0.05, share
        wait_until(lambda: _alert_states(prometheus).get("RemarketDeadLetterRateHigh") in ("pending", "firing"),
                   timeout=20, message="RemarketDeadLetterRateHigh pending")
        assert "RemarketEventsButNoActions" not in _alert_states(prometheus)  # actions were sent
        assert "RemarketWorkerDown" not in _alert_states(prometheus)

        # ... and a stopped worker is down
        worker.stop()
        wait_until(lambda: _alert_states(prometheus).get("RemarketWorkerDown") in ("pending", "firing"),
                   timeout=30, message="RemarketWorkerDown pending")
    finally:
        prometheus.stop()
        worker.stop()


def _alert_states(prometheus: Prometheus) -> dict[str, str]:
    return {a["labels"]["alertname"]: a["state"] for a in prometheus.alerts()}
