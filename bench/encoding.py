"""What the worker encodes, pydantic's `model_dump_json` against remarket.domain.model_json, on the
bench traffic: each customer state (at every commit that changed it), each held event (once, when
first held), each action and profile (once, as they go out). The same JSON on both sides (checked; a state's
keys now come in declaration order, the held events no longer last).

    .venv/bin/python bench/encoding.py --events 40000 --customers 4000 --repeat 3

Prints µs per item per run and the median of each, both contenders in the same run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from run import generate_events, sample_states  # noqa: E402  (bench/run.py)

from remarket.domain.actions import message_json  # noqa: E402
from remarket.domain.events import _STORED_JSON, parse_event, stored_json  # noqa: E402
from remarket.domain.policy import Policy  # noqa: E402
from remarket.domain.process import advance  # noqa: E402
from remarket.domain.profile import profile_json  # noqa: E402
from remarket.domain.state import CustomerState  # noqa: E402


def state_json_before(state: CustomerState) -> bytes:
    """CustomerState.to_json up to 0bd68a0: pydantic for all but the held events, whose JSON
    (made once per event) was spliced in."""
    if not state.buffer:
        return state.model_dump_json(exclude_defaults=True, by_alias=True).encode()
    rest = state.model_dump_json(exclude_defaults=True, by_alias=True, exclude={"buffer"}).encode()
    held = b",".join([stored_json(event) for event in state.buffer])
    return rest[:-1] + (b',"buffer":[' if len(rest) > 2 else b'"buffer":[') + held + b"]}"


def timed(items: list, encode) -> float:
    started = time.perf_counter()
    for item in items:
        encode(item)
    return (time.perf_counter() - started) / len(items) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--customers", type=int, default=4_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    traffic = generate_events(args.events, args.customers)
    states = sample_states(traffic)
    events = []
    for _, value in traffic:
        try:
            events.append(parse_event(value))
        except ValueError:
            pass  # the traffic's malformed share
    policy = Policy()
    actions, profiles = [], []
    for state in states:  # a year on: campaigns, win-backs, withdrawals, profiles
        if state.due_at is not None:
            outcome = advance(state.working_copy(), state.due_at + timedelta(days=365), policy)
            actions += [*outcome.actions, *outcome.withdrawals]
            profiles += [outcome.profile] if outcome.profile is not None else []

    kinds = {
        "customer state": (states, state_json_before, CustomerState.to_json),
        "held event": (events, lambda e: e.model_dump_json(exclude_defaults=True, by_alias=True).encode(),
                       lambda e: _STORED_JSON[type(e)](e)),
        "action": (actions, lambda a: a.model_dump_json().encode(), message_json),
        "profile": (profiles, lambda p: p.model_dump_json().encode(), profile_json),
    }
    print(f"{len(states):,} states, {len(events):,} events, {len(actions):,} actions, {len(profiles):,} profiles")
    for kind, (items, pydantic, compiled) in kinds.items():
        if not items:
            print(f"{kind}: none in this traffic")
            continue
        assert all(orjson.loads(pydantic(item)) == orjson.loads(compiled(item)) for item in items), kind
        runs = {"pydantic": [], "model_json": []}
        for _ in range(args.repeat):
            runs["pydantic"].append(timed(items, pydantic))
            runs["model_json"].append(timed(items, compiled))
        figures = ", ".join(f"{name} {statistics.median(r):.2f} µs ({', '.join(f'{x:.2f}' for x in r)})"
                            for name, r in runs.items())
        print(f"{kind:15s} {figures}")


if __name__ == "__main__":
    main()
