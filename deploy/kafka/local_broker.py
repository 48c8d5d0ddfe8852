#!/usr/bin/env python3
"""A real single-node Apache Kafka broker (KRaft) from Maven Central jars, no Docker needed.

    python deploy/kafka/local_broker.py start   # resolves jars once, starts, prints bootstrap
    python deploy/kafka/local_broker.py status
    python deploy/kafka/local_broker.py restart # after a crash: same ports and data, nothing wiped
    python deploy/kafka/local_broker.py stop

Standard library only, so it runs before remarket is installed; the test suite imports it too.
Jars are cached outside the clone (REMARKET_KAFKA_CACHE, default ~/.cache/remarket) so reruns
and CI start in seconds. Each run directory holds its own config, data, log and pid file.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "4.1.1"
HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
DEFAULT_RUN_DIR = HERE.parent.parent / "var" / "kafka"
READY_MARKER = "Kafka Server started"
BROKER_HEAP = "-Xmx512m"


class BrokerError(RuntimeError):
    """The broker could not be resolved, started or reached; the message says why."""


def cache_dir() -> Path:
    root = Path(os.environ.get("REMARKET_KAFKA_CACHE", Path.home() / ".cache" / "remarket"))
    return root / f"kafka-{KAFKA_VERSION}" / "libs"


def resolve_jars() -> Path:
    """Download the broker and its dependencies once (Maven dependency plugin)."""
    libs = cache_dir()
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists() and (libs / ".complete").exists():
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is not on PATH: it is needed once to fetch the Kafka jars")
    libs.mkdir(parents=True, exist_ok=True)
    print(f"resolving Apache Kafka {KAFKA_VERSION} jars into {libs} (once) ...", file=sys.stderr)
    cmd = [
        "mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={libs}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BrokerError("Maven could not resolve the Kafka jars:\n" + (done.stdout + done.stderr)[-3000:])
    (libs / ".complete").write_text(KAFKA_VERSION)
    return libs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the broker binds: TIME_WAIT is fine
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class LocalBroker:
    """One broker process living in `run_dir` (config, data, logs, pid)."""

    run_dir: Path

    @property
    def state_file(self) -> Path:
        return self.run_dir / "broker.json"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "logs" / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.run_dir / "logs" / "stdout.log"

    def state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def running(self) -> dict | None:
        st = self.state()
        if st and _pid_alive(st["pid"]) and _port_open(st["port"]):
            return st
        return None

    @property
    def bootstrap(self) -> str:
        st = self.state()
        if not st:
            raise BrokerError(f"no broker state in {self.run_dir}")
        return f"127.0.0.1:{st['port']}"

    @property
    def sasl_bootstrap(self) -> str:
        """The SASL_PLAINTEXT listener's address (started with `sasl_users`)."""
        st = self.state()
        if not st or not st.get("sasl_port"):
            raise BrokerError(f"no SASL listener in {self.run_dir}: start(sasl_users={{...}})")
        return f"127.0.0.1:{st['sasl_port']}"

    def start(self, port: int | None = None, timeout: float = 90.0, extra_config: dict | None = None,
              sasl_users: dict[str, str] | None = None) -> str:
        """Start the broker; returns the PLAINTEXT bootstrap address.

        `sasl_users` ({name: password}) adds a SASL_PLAINTEXT listener (see `sasl_bootstrap`) that
        accepts these users with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (SCRAM credentials are
        written into the KRaft metadata when storage is formatted).
        """
        if st := self.running():
            return f"127.0.0.1:{st['port']}"
        libs = resolve_jars()
        if shutil.which("java") is None:
            raise BrokerError("java is not on PATH: Java 17+ is needed to run the broker")
        port = port or free_port()
        ctrl_port = free_port()
        data = self.run_dir / "data"
        if data.exists():  # a fresh log dir per start: stale KRaft metadata breaks new ports
            shutil.rmtree(data)
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        config = self.run_dir / "server.properties"
        sasl_port = free_port() if sasl_users else None
        extra = {**_sasl_properties(port, ctrl_port, sasl_port, sasl_users), **(extra_config or {})} \
            if sasl_users else (extra_config or {})
        config.write_text(_server_properties(port, ctrl_port, data, extra))
        log4j = self.run_dir / "log4j2.properties"
        log4j.write_text(_LOG4J2.format(log=self.log_file))
        cp = f"{libs}/*"
        cluster_id = uuid.uuid4().hex[:22].replace("-", "a")
        fmt = subprocess.run(
            ["java", "-cp", cp, f"-Dlog4j2.configurationFile={log4j}",
             "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), "--ignore-formatted",
             *_scram_format_args(sasl_users or {})],
            capture_output=True, text=True,
        )
        if fmt.returncode != 0:
            raise BrokerError("formatting KRaft storage failed:\n" + (fmt.stdout + fmt.stderr)[-3000:])
        self._launch(libs, {"port": port, "controller_port": ctrl_port, "sasl_port": sasl_port,
                            "cluster_id": cluster_id}, timeout)
        return f"127.0.0.1:{port}"

    def restart(self, timeout: float = 90.0) -> str:
        """Start the broker again with the same ports, config, cluster id and data (fault tests).

        Unlike `start()`, nothing is wiped or reformatted: topics, committed offsets, transaction
        state and records written before a `kill()` are all still there, and clients reconnect to
        the same bootstrap address. A broker that is still running is killed first (hard, as a
        crash would). `stop()` forgets the ports (it removes broker.json), so it ends the run dir.
        """
        st = self.state()
        if not st or not st.get("port") or not st.get("controller_port"):
            raise BrokerError(f"nothing to restart in {self.run_dir}: start() it first")
        config = self.run_dir / "server.properties"
        if not config.exists() or not (self.run_dir / "data" / "meta.properties").exists():
            raise BrokerError(f"no formatted broker data in {self.run_dir} to restart from")
        if _pid_alive(st["pid"]):
            _signal_group(st["pid"], signal.SIGKILL)
            deadline = time.monotonic() + 15
            while _pid_alive(st["pid"]) and time.monotonic() < deadline:
                time.sleep(0.2)
        ports = [p for p in (st["port"], st["controller_port"], st.get("sasl_port")) if p]
        deadline = time.monotonic() + 30
        while any(not _port_bindable(p) for p in ports):
            if time.monotonic() > deadline:
                raise BrokerError(f"ports {ports} of {self.run_dir} are still taken; cannot restart there")
            time.sleep(0.5)
        self._launch(resolve_jars(), st, timeout)
        return f"127.0.0.1:{st['port']}"

    def _launch(self, libs: Path, st: dict, timeout: float) -> None:
        """Run the broker on the config in run_dir, record its pid and ports, wait until it serves."""
        config = self.run_dir / "server.properties"
        log4j = self.run_dir / "log4j2.properties"
        log_offset = len(_read(self.log_file))  # a restart appends: only a new ready line counts
        with open(self.stdout_file, "ab") as out:
            proc = subprocess.Popen(
                ["java", BROKER_HEAP, "-Xms128m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                 f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={self.run_dir / 'logs'}",
                 "-cp", f"{libs}/*", "kafka.Kafka", str(config)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the shell that started it; stop() kills the group
            )
        self.state_file.write_text(json.dumps({**st, "pid": proc.pid}))
        try:
            self._wait_ready(proc, st["port"], timeout, log_offset)
        except BrokerError:
            self.stop()
            raise

    def _wait_ready(self, proc: subprocess.Popen, port: int, timeout: float, log_offset: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(f"broker exited with code {proc.returncode}\n{self.log_tail()}")
            if _port_open(port) and READY_MARKER in _read(self.log_file)[log_offset:] and _metadata_ok(port):
                return
            time.sleep(0.5)
        raise BrokerError(f"broker not ready after {timeout:.0f}s\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        text = _read(self.log_file) or _read(self.stdout_file)
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last {lines} lines of {self.log_file} ---\n{tail}"

    def stop(self, timeout: float = 30.0) -> bool:
        st = self.state()
        if not st:
            return False
        pid = st["pid"]
        if _pid_alive(pid):
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.3)
            if _pid_alive(pid):
                _signal_group(pid, signal.SIGKILL)
        self.state_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """Hard-kill the broker (fault tests); the data directory stays for a restart."""
        st = self.state()
        if st and _pid_alive(st["pid"]):
            _signal_group(st["pid"], signal.SIGKILL)


def _server_properties(port: int, ctrl_port: int, data: Path, extra: dict) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{ctrl_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctrl_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": "4",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    props.update({k: str(v) for k, v in extra.items()})
    return "".join(f"{k}={v}\n" for k, v in props.items())


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _sasl_properties(port: int, ctrl_port: int, sasl_port: int, users: dict[str, str]) -> dict:
    """A SASL_PLAINTEXT listener beside PLAINTEXT (which stays the inter-broker listener)."""
    plain_users = " ".join(f'user_{name}="{password}"' for name, password in users.items())
    props = {
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctrl_port},"
                     f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
        "listener.name.sasl_plaintext.plain.sasl.jaas.config":
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
    }
    for mechanism in SASL_MECHANISMS[1:]:
        props[f"listener.name.sasl_plaintext.{mechanism.lower()}.sasl.jaas.config"] = \
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return props


def _scram_format_args(users: dict[str, str]) -> list[str]:
    args = []
    for name, password in users.items():
        for mechanism in SASL_MECHANISMS[1:]:
            args += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return args


_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.apache.name = org.apache
logger.apache.level = warn
"""


def _metadata_ok(port: int) -> bool:
    """An admin metadata round trip when aiokafka is importable; port + log marker otherwise."""
    try:
        import asyncio
        from aiokafka.admin import AIOKafkaAdminClient
    except ImportError:
        return True

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            await admin.close()

    return asyncio.run(probe())


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except OSError:
        return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "restart", "stop", "status", "fetch", "log"])
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("REMARKET_LOCAL_KAFKA_DIR", DEFAULT_RUN_DIR)),
                        help="run directory (config, data, logs, pid); default %(default)s")
    parser.add_argument("--port", type=int, default=None, help="PLAINTEXT port (default: a free one)")
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args(argv)
    broker = LocalBroker(args.dir.resolve())
    try:
        if args.command == "fetch":
            print(resolve_jars())
        elif args.command == "start":
            print(broker.start(port=args.port, timeout=args.timeout))
        elif args.command == "restart":
            print(broker.restart(timeout=args.timeout))
        elif args.command == "stop":
            print("stopped" if broker.stop() else "not running")
        elif args.command == "status":
            st = broker.running()
            print(f"running 127.0.0.1:{st['port']} pid {st['pid']}" if st else "not running")
            return 0 if st else 1
        elif args.command == "log":
            print(broker.log_tail(200))
    except BrokerError as exc:
        print(f"local kafka: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
