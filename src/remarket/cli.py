"""The `remarket` command: entry points parse arguments, build settings, and call one function."""
from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import orjson

from pydantic import ValidationError

from remarket.catalog import CatalogError, load_catalog
from remarket.config_errors import ConfigError, policy_error, settings_error, settings_help
from remarket.domain.policy import PolicyError
from remarket.settings import Settings


def _catalog(settings: Settings):
    return load_catalog(settings.catalog_file, overrides=settings.topic_overrides(),
                        partitions=settings.partitions, replication_factor=settings.replication_factor)


def _policy(settings: Settings, path: Path | None = None):
    from remarket.domain import policy as policy_module

    via = "--policy" if path else "REMARKET_POLICY_FILE"
    path = path or settings.policy_file
    if path is None:
        return policy_module.Policy()
    try:
        return policy_module.load_policy(path)
    except policy_module.PolicyError as exc:
        raise policy_error(path, exc, via) from None


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from remarket.shell.app import Worker
    from remarket.shell.topics import apply_topics
    from remarket.shell.stopping import Worker as FaustWorker

    catalog = _catalog(settings)
    policy = _policy(settings)  # a bad policy file or data dir fails before anything touches Kafka
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"REMARKET_DATA_DIR={settings.data_dir}: cannot create it: {exc.strerror or exc}") from None
    _check_web_address(settings)
    # internal and output topics may be created; a missing input topic is an error (a typo in
    # REMARKET_TOPIC_ORDERS must not become an empty topic the worker runs on happily)
    reports = asyncio.run(apply_topics(settings, catalog, create_inputs=False))
    if blocking := [r for r in reports if r.blocking]:
        for r in blocking:
            print(f"remarket worker: {r.name}: {r.detail}", file=sys.stderr)
        return 2
    for r in reports:
        if r.status == "drift":
            print(f"remarket worker: warning: {r.name}: {r.detail} (`remarket topics apply --alter` fixes configs)",
                  file=sys.stderr)
    # The local store holds committed states only (shell.state_cache), so even after a SIGKILL it
    # is kept and the restart reads only the changelog written after it.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = Worker(settings, policy, catalog)
    quiet_client_libraries(settings.log_level)
    FaustWorker(worker.app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
    return 0


def _check_web_address(settings: Settings) -> None:
    """The web server's address, tried before Kafka: faust would fail with a traceback much later."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in settings.web_host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does
            probe.bind((settings.web_host, settings.web_port))
    except OSError as exc:
        raise ConfigError(f"REMARKET_WEB_HOST:REMARKET_WEB_PORT={settings.web_host}:{settings.web_port}: cannot listen "
                          f"there: {exc.strerror or exc}") from None


def quiet_client_libraries(level: str) -> None:
    """aiokafka logs every request at debug, the SASL handshake too (a PLAIN password in clear):
    its connection logger never goes below info; the rest of aiokafka stays at warning unless debug."""
    import logging

    logging.getLogger("aiokafka.conn").setLevel(logging.INFO if level == "debug" else logging.WARNING)
    if level != "debug":
        for name in ("aiokafka", "kafka"):
            logging.getLogger(name).setLevel(logging.WARNING)


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    """0: as the catalog says; 1: drift left (rerun with --alter); 2: a layout remarket cannot fix."""
    from remarket.shell.topics import apply_topics

    reports = asyncio.run(apply_topics(settings, _catalog(settings), alter=args.alter))
    for r in reports:
        print(f"{r.status:9} {r.name}  {r.detail}")
    if any(r.blocking for r in reports):
        print("topic layout does not match the catalog: fix the topics (or REMARKET_PARTITIONS) first",
              file=sys.stderr)
        return 2
    if any(r.status == "drift" for r in reports):
        print("topics drifted from the catalog: `remarket topics apply --alter` changes the topic configs "
              "(and grows output topics); partitions of co-partitioned topics are never changed", file=sys.stderr)
        return 1
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka import AIOKafkaProducer

    from remarket.shell.kafka import client_config
    from remarket.devkit.simulate import TrafficModel, produce

    catalog = _catalog(settings)
    names = {spec.role: spec.name for spec in catalog}
    model = TrafficModel(customers=args.customers, seed=args.seed, malformed_share=args.malformed,
                         history_days=args.history_days)

    async def run() -> dict:
        producer = AIOKafkaProducer(**client_config(settings), linger_ms=5, acks="all")
        await producer.start()
        try:
            return await produce(producer, names, model, rate=args.rate, duration=args.duration,
                                 report=lambda line: print(line, flush=True))
        finally:
            await producer.stop()

    counts = asyncio.run(run())
    print(f"simulate: done: {counts}")
    return 0


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    from remarket.tools import tail

    catalog = _catalog(settings)
    topic = catalog[args.topic.replace("-", "_")].name if args.topic.replace("-", "_") in catalog.topics else args.topic
    return asyncio.run(tail(settings, topic, from_beginning=args.from_beginning, limit=args.limit,
                            idle_timeout=args.idle_timeout, raw=args.raw))


def cmd_inspect(args: argparse.Namespace, settings: Settings) -> int:
    from remarket.tools import inspect_customer

    return asyncio.run(inspect_customer(settings, _catalog(settings), _policy(settings), args.customer_id))


def cmd_policy(args: argparse.Namespace, settings: Settings) -> int:
    from remarket.domain.policy import PolicyError, load_policy

    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        print(f"{args.file}: invalid policy\n{exc}", file=sys.stderr)
        return 1
    print(f"{args.file}: ok (policy version {policy.version})")
    return 0


def cmd_dead_letter(args: argparse.Namespace, settings: Settings) -> int:
    """Redrive dead letters to their original topic: dry run unless --execute."""
    from remarket.redrive import Selection, parse_time
    from remarket.shell.dead_letter_replay import replay
    from remarket.shell.pipeline import DeadLetterReason

    catalog = _catalog(settings)
    if "redriven" not in catalog.topics:
        raise ConfigError("the topic catalog has no `redriven` role (the redrive markers): add it as in "
                          "streams/topics.toml")
    unknown = set(args.reason) - set(DeadLetterReason.ALL)
    if unknown:
        raise ConfigError(f"--reason {', '.join(sorted(unknown))}: unknown; allowed: {', '.join(DeadLetterReason.ALL)}")
    now = datetime.now(timezone.utc)
    try:
        since = parse_time(args.since, now) if args.since else None
        until = parse_time(args.until, now) if args.until else None
    except ValueError as exc:
        raise ConfigError(f"--since/--until: {exc}") from None
    roles = {role.replace("_", "-"): spec.name for role, spec in catalog.topics.items()} | {
        role: spec.name for role, spec in catalog.topics.items()}
    selection = Selection(frozenset(args.reason), frozenset(roles.get(t, t) for t in args.topic), since, until)
    try:
        result = asyncio.run(replay(settings, catalog, selection, execute=args.execute,
                                    report=lambda line: print(line, flush=True)))
    except LookupError as exc:
        print(f"remarket dead-letter replay: {exc}", file=sys.stderr)
        return 2
    counts = result.counts()
    if not args.execute:
        print("dry run: nothing was produced; add --execute to redrive")
        counts.pop("redriven")
    else:
        counts.pop("would_redrive")
    print("counts: " + " ".join(f"{outcome}={n}" for outcome, n in counts.items()))
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from remarket.offline import replay

    def fail(message: str) -> int:
        print(f"remarket replay: {message}", file=sys.stderr)
        return 2

    try:
        as_of = datetime.fromisoformat(args.as_of) if args.as_of else None
    except ValueError:
        return fail(f"--as-of {args.as_of!r} is not an ISO 8601 time, e.g. 2026-11-01T00:00:00+00:00")
    if as_of is not None and as_of.tzinfo is None:
        return fail("--as-of needs a UTC offset, e.g. 2026-11-01T00:00:00+00:00")
    if not args.input.is_file():
        return fail(f"cannot read --input {args.input}: no such file")
    policy = _policy(settings, args.policy)
    try:
        summary = replay.run(args.input, args.snapshot, args.actions, policy, as_of,
                             lambda line: print(line, file=sys.stderr, flush=True))
    except replay.ReplayError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"{exc.strerror or exc}: {exc.filename}")
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2, default=str).decode())
    if summary["events"] == 0:
        return fail(f"no valid event in {args.input} ({summary['lines']:,} lines, {summary['invalid_lines']:,} "
                    f"invalid, {summary['rejected_lines']:,} rejected by the core)")
    return 0


def cmd_fit(args: argparse.Namespace, settings: Settings) -> int:
    from remarket.offline import fit

    result = fit.run(args.input, args.horizon_days)
    snippet = result.pop("policy_toml", None)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode(), file=sys.stderr if snippet else sys.stdout)
    if snippet is None:
        return 1
    print(snippet)  # paste into the policy file
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remarket", description="Real-time remarketing engine for a store's existing customers. "
        "Configuration comes from REMARKET_* environment variables (see docs/configuration.md).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("worker", help="run the stream worker (Faust): state, timers, actions",
                       description="Run the stream worker: state, timers, actions, web views and /metrics.",
                       epilog=settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("topics", help="create missing topics, report drift from the catalog (--alter fixes it)")
    p.add_argument("action", choices=["apply"])
    p.add_argument("--alter", action="store_true",
                   help="change drifted topic configs (cleanup.policy, retention.ms, ...) to the catalog's and grow "
                   "output topics' partitions; co-partitioned topics (inputs, ticks, changelog) are never "
                   "repartitioned")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("simulate", help="produce realistic storefront traffic")
    p.add_argument("--customers", type=int, default=200)
    p.add_argument("--rate", type=float, default=20.0, help="live events per second")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of live traffic")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--malformed", type=float, default=0.01, help="share of malformed events")
    p.add_argument("--history-days", type=int, default=180, help="back-dated order history (0: none)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("tail", help="pretty-print a topic (actions, dead-letter, profiles, an input...)")
    p.add_argument("topic", help="catalog role (actions, dead-letter, orders...) or a topic name")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--limit", type=int, default=None, help="stop after this many records")
    p.add_argument("--idle-timeout", type=float, default=None, help="stop after this many idle seconds")
    p.add_argument("--raw", action="store_true", help="one JSON line per record")
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser("inspect", help="show one customer's state (read from the state changelog)")
    p.add_argument("customer_id")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("policy", help="validate a merchant policy file")
    p.add_argument("action", choices=["check"])
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_policy)

    p = sub.add_parser("dead-letter", help="redrive dead letters to their original topic (dry run by default)",
                       description="Re-produce dead letters (original bytes, key and the producer's headers) to "
                       "the topic they came from, once the cause is fixed. Dry run unless --execute. A redriven "
                       "record carries remarket-redriven-from: TOPIC/PARTITION/OFFSET of its dead letter; a marker "
                       "per event id (compacted topic, catalog role `redriven`) makes a second run skip it. "
                       "Truncated dead letters cannot be redriven byte for byte: skipped and counted.")
    p.add_argument("action", choices=["replay"])
    p.add_argument("--reason", action="append", default=[], metavar="REASON",
                   help="only this dead-letter reason (repeatable): not_json, schema_violation, rejected_by_core, ...")
    p.add_argument("--topic", action="append", default=[], metavar="TOPIC",
                   help="only records from this source topic (a name or a catalog role such as orders; repeatable)")
    p.add_argument("--since", default=None, help="dead-lettered at or after: ISO time with offset, or an age (2h, 7d)")
    p.add_argument("--until", default=None, help="dead-lettered before: ISO time with offset, or an age")
    p.add_argument("--execute", action="store_true", help="produce (default: only print what would happen)")
    p.set_defaults(func=cmd_dead_letter)

    p = sub.add_parser("replay", help="run the core over a JSONL file of events (backfill, what-if)")
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--snapshot", type=Path, required=True)
    p.add_argument("--actions", type=Path, default=None)
    p.add_argument("--as-of", default=None, help="ISO time to advance the clock to (default: last event)")
    p.add_argument("--policy", type=Path, default=None)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("fit", help="fit the repurchase model (BG/NBD) to a JSONL event history")
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--horizon-days", type=float, default=90.0)
    p.set_defaults(func=cmd_fit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"remarket: {settings_error(exc)}", file=sys.stderr)
        return 2
    try:
        return args.func(args, settings)
    except (CatalogError, ConfigError) as exc:
        print(f"remarket: {exc}", file=sys.stderr)
        return 2
    except PolicyError as exc:  # one line: which file, then each problem
        print(f"remarket: invalid policy {args.policy if getattr(args, 'policy', None) else settings.policy_file}: "
              f"{'; '.join(str(exc).splitlines())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the message, not a traceback, for known operator errors
        from aiokafka.errors import KafkaError

        from remarket.shell.kafka import BootstrapMissing

        if isinstance(exc, BootstrapMissing):
            print(f"remarket: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, KafkaError):
            print(f"remarket: Kafka said: {exc!r}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
