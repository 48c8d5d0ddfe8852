"""Write the simulator's traffic as a JSONL event file, for `remarket replay` (docs/outcomes.md).

    python bench/simulated_history.py events.jsonl [--customers 2000] [--days 45] [--steps 60000]

History (back-dated paid orders over `history_days`) up to START, then `steps` live steps spread
evenly over `days` days from START, exactly as `remarket simulate` would produce them (same
seeded TrafficModel), malformed records included.
"""
from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from remarket.devkit.simulate import TrafficModel

START = datetime(2026, 10, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=float, default=45)
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    model = TrafficModel(customers=args.customers, seed=args.seed, malformed_share=0.01, history_days=180)
    step = timedelta(days=args.days) / args.steps
    written = 0
    with open(args.output, "wb") as out:
        for event in model.history(START):
            out.write(event.value + b"\n")
            written += 1
        for i in range(args.steps):
            for event in model.live(START + i * step):
                out.write(event.value + b"\n")
                written += 1
    print(f"{written} lines written to {args.output}")


if __name__ == "__main__":
    main()
