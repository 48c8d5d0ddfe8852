"""A/B of worker settings or revisions on the throughput drain of bench/run.py: one private broker,
the bench traffic produced once, then the sides in turn, one drain each per round; each drain
prints one JSON line (events/s wall and per CPU-second between the 5 % and 95 % marks).

    python bench/ab_throughput.py --events 60000 --customers 6000 --rounds 3 \\
        before @85ca582  after @HEAD  gc-default REMARKET_GC_YOUNG_THRESHOLD=700

A side is a name followed by REMARKET_* settings and/or `@REV`: the worker of that revision (a
git worktree, as `bench/run.py --throughput-baseline` makes). A side's
REMARKET_PROCESSING_GUARANTEE overrides --guarantee (exactly-once against at-least-once, paired).
The median per side is printed last.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run  # noqa: E402  (bench/run.py)

from remarket.devkit.broker import LocalBroker  # noqa: E402


def parse_sides(words: list[str]) -> list[tuple[str, dict[str, str], str | None]]:
    sides: list[tuple[str, dict[str, str], str | None]] = []
    for word in words:
        if "=" in word or word.startswith("@"):
            if not sides:
                raise SystemExit(f"{word}: a setting before any side's name")
            name, env, rev = sides[-1]
            if word.startswith("@"):
                sides[-1] = (name, env, word[1:])
                continue
            key, value = word.split("=", 1)
            if not key.startswith("REMARKET_"):
                raise SystemExit(f"{key}: only REMARKET_* settings reach the worker")
            env[key] = value
        else:
            sides.append((word, {}, None))
    if len(sides) < 2:
        raise SystemExit("give at least two sides")
    return sides


@contextlib.contextmanager
def revisions_checked_out(sides: list[tuple[str, dict[str, str], str | None]], workdir: Path):
    """Each `@REV` side's worker runs from a git worktree of that revision (PYTHONPATH), removed after."""
    worktrees: list[Path] = []
    try:
        for i, (_, env, rev) in enumerate(sides):
            if rev is not None:
                checkout = workdir / f"rev-{i}"
                subprocess.run(["git", "worktree", "add", "--detach", str(checkout), rev], cwd=run.ROOT, check=True,
                               capture_output=True)
                worktrees.append(checkout)
                env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(checkout / "src"), os.environ.get("PYTHONPATH")]))
        yield
    finally:
        for checkout in worktrees:
            subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], cwd=run.ROOT, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--customers", type=int, default=6_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--guarantee", default="exactly_once", choices=["exactly_once", "at_least_once"])
    parser.add_argument("sides", nargs="+")
    args = parser.parse_args()
    sides = parse_sides(args.sides)
    workdir = Path(tempfile.mkdtemp(prefix="ab-throughput-"))
    broker = LocalBroker(workdir / "kafka")
    bootstrap = broker.start()
    try:
        with revisions_checked_out(sides, workdir):
            run.apply_topics(bootstrap, f"ab-setup-{uuid.uuid4().hex[:6]}")
            asyncio.run(run.produce_all(bootstrap, run.EVENTS_TOPIC, run.generate_events(args.events, args.customers)))
            results: dict[str, list[dict]] = {name: [] for name, _, _ in sides}
            for round_ in range(1, args.rounds + 1):
                for name, env, rev in sides:
                    side_env = dict(env)  # a side may set its own guarantee: REMARKET_PROCESSING_GUARANTEE=...
                    guarantee = side_env.pop("REMARKET_PROCESSING_GUARANTEE", args.guarantee)
                    result = run.run_worker_throughput(bootstrap, workdir, args.events, guarantee, **side_env)
                    result.update(side=name, round=round_, rev=rev, settings={k: v for k, v in env.items() if k != "PYTHONPATH"})
                    results[name].append(result)
                    print(json.dumps(result), flush=True)
            for name, runs in results.items():
                print(f"{name}: median {statistics.median(r['rate'] for r in runs):,.0f} events/s wall, "
                      f"{statistics.median(r['cpu_rate'] for r in runs):,.0f} per CPU-second "
                      f"(runs {', '.join(format(r['rate'], ',.0f') for r in runs)})", flush=True)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
