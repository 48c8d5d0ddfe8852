"""A `remarket worker` process, driven the way an operator would: env, HTTP, signals."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def process_cpu_seconds(pid: int | str) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def http_get(port: int, path: str, token: str | None = None, authorization: str | None = None,
             timeout: float = 5) -> tuple[int, bytes]:
    """GET a worker's web port with `Authorization: Bearer <token>`, or the exact `authorization`
    header given; (0, b"") when nothing answers in time."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


class WorkerNotReady(AssertionError):
    pass


class WorkerProcess:
    def __init__(self, name: str, env: dict[str, str], web_port: int, log_path: Path,
                 cwd: Path | None = None) -> None:
        self.name, self.env, self.web_port, self.log_path, self.cwd = name, env, web_port, log_path, cwd
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def launch(self) -> None:
        self.started = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "remarket.cli", "worker"], env=self.env, cwd=self.cwd,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 90, interval: float = 0.25) -> float:
        """Seconds from launch to the first 200 of /readyz."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise WorkerNotReady(f"worker {self.name} exited with {self.proc.returncode}\n{self.log_tail()}")
            if self.get("/readyz")[0] == 200:
                return time.perf_counter() - self.started
            time.sleep(interval)
        raise WorkerNotReady(f"worker {self.name} not ready after {timeout}s\n{self.log_tail()}")

    def get(self, path: str, token: str | None = None, authorization: str | None = None) -> tuple[int, bytes]:
        return http_get(self.web_port, path, token, authorization)

    def metrics(self) -> str:
        return self.get("/metrics")[1].decode()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def peak_rss_mb(self) -> float:
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
            return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
        except (OSError, AttributeError):
            return float("nan")


def launch_worker(bootstrap: str, app_id: str, workdir: Path, *, cwd: Path | None = None,
                  **env: str) -> WorkerProcess:
    """A worker of its own (app id, web port, data dir and log under `workdir`), launched now.

    For benchmarks and the soak: REMARKET_* variables of the caller's environment are dropped,
    `env` adds or overrides settings (REMARKET_DATA_DIR included).
    """
    from remarket.devkit.broker import free_port

    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("REMARKET_")}
    full_env.update({"REMARKET_KAFKA_BOOTSTRAP": bootstrap, "REMARKET_APP_ID": app_id,
                     "REMARKET_WEB_PORT": str(port), "REMARKET_DATA_DIR": str(workdir / f"{app_id}-data"),
                     "REMARKET_LOG_LEVEL": "warning", "REMARKET_KAFKA_SESSION_TIMEOUT_SECONDS": "10", **env})
    worker = WorkerProcess(app_id, full_env, port, workdir / f"{app_id}.log", cwd=cwd)
    worker.data_dir = Path(full_env["REMARKET_DATA_DIR"])
    worker.launch()
    return worker
