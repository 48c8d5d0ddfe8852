"""What noting a fetch answer costs the consumer thread (shell.fetch_sessions.SessionFetcher.answered):
every answer's ends are noted per partition before aiokafka hands its records on (due work reads
them), ~300-800 answers a second in the latency runs.

    .venv/bin/python bench/fetch_answer.py --partitions 32 --answers 20000 --repeat 3

A full answer listing `--partitions` partitions (8 topics), then an incremental answer of a
session that lists one and confirms the rest by leaving them out. Prints µs per answer.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from types import SimpleNamespace

from aiokafka.structs import TopicPartition

from remarket.shell.fetch_sessions import FetchSession, SessionFetcher


def answer(partitions: int, listed: int) -> SimpleNamespace:
    topics: dict[str, list] = {}
    for i in range(listed):
        topics.setdefault(f"topic-{i % 8}", []).append((i // 8, 0, 100, 90, 0, None, b""))
    return SimpleNamespace(API_VERSION=11, topics=list(topics.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=int, default=32)
    parser.add_argument("--answers", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    fetcher = object.__new__(SessionFetcher)
    fetcher.ends_heard, fetcher._answers = {}, {}
    fetcher._subscriptions = SimpleNamespace(subscription=None)
    tps = [TopicPartition(f"topic-{i % 8}", i // 8) for i in range(args.partitions)]
    session = FetchSession()
    session.ends = {tp: (100, 90) for tp in tps}
    plan = SimpleNamespace(epoch=1, positions={tp: 0 for tp in tps})
    cases = {"full answer": (answer(args.partitions, args.partitions), None, None),
             "incremental answer, one listed": (answer(args.partitions, 1), session, plan)}
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, (response, with_session, with_plan) in cases.items():
            started = time.perf_counter()
            for _ in range(args.answers):
                fetcher.answered(1, 0.0, response, with_session, with_plan)
            runs[name].append((time.perf_counter() - started) / args.answers * 1e6)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"commit {commit}, {args.partitions} partitions:")
    for name, values in runs.items():
        print(f"  {name}: median {statistics.median(values):.1f} µs per answer "
              f"({', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
