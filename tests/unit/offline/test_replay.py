import json
from collections import defaultdict
from datetime import timedelta

from remarket.offline import replay
from remarket.domain.actions import Action, ActionKind, Withdrawal
from remarket.domain.events import parse_event
from remarket.domain.process import advance, apply
from remarket.domain.profile import CustomerProfile
from remarket.domain.store import StoreTrends

from tests.unit.domain.factories import policy_with
from tests.unit.domain.generate import write_events

POLICY = policy_with(holdout={"share": 0.1})
SNAPSHOT_FIELDS = {"customer_id", "stage", "tier", "rfm", "email_activity", "site_activity", "orders",
                   "last_order_at", "repurchase_score", "promotion_preference"}


def _replay(tmp_path, events=3000, **kw):
    source = tmp_path / "events.jsonl"
    write_events(source, events, per_customer=12, days=120, invalid_every=kw.pop("invalid_every", 0))
    messages = []
    summary = replay.run(source, tmp_path / "snapshot.jsonl", tmp_path / "actions.jsonl", POLICY, None,
                         messages.append)
    return source, summary, messages


def replay_kinds():
    return [kind.value for kind in ActionKind]


def test_replay_writes_one_profile_line_per_customer(tmp_path):
    source, summary, messages = _replay(tmp_path, invalid_every=500)
    snapshot = [json.loads(line) for line in (tmp_path / "snapshot.jsonl").read_text().splitlines()]
    assert len(snapshot) == summary["snapshot_lines"] > 100
    assert len({row["customer_id"] for row in snapshot}) == len(snapshot)
    assert all(SNAPSHOT_FIELDS <= row.keys() for row in snapshot)
    CustomerProfile.model_validate(snapshot[0])
    assert {row["stage"] for row in snapshot} >= {"prospect", "new", "declining"}
    assert summary["invalid_lines"] == 6 and summary["invalid_examples"][0]["line"] == 501
    assert any("line 501: invalid event" in m for m in messages)
    lines = [json.loads(line) for line in (tmp_path / "actions.jsonl").read_text().splitlines()]
    actions = [line for line in lines if line["kind"] != "withdrawal"]
    assert summary["actions"] == len(actions) > 0
    assert sum(summary["withdrawals"].values()) == len(lines) - len(actions)
    assert summary["deferred"] and set(summary["expired"]) <= {f"{k}:{r}" for k in replay_kinds()
                                                                 for r in ("wait_over", "waiting_full")}


def test_replay_emits_the_same_actions_as_the_live_worker(tmp_path):
    source, summary, _ = _replay(tmp_path)
    replayed, replayed_withdrawals = {}, {}
    for line in (tmp_path / "actions.jsonl").read_text().splitlines():
        if json.loads(line)["kind"] == "withdrawal":
            withdrawal = Withdrawal.model_validate_json(line)
            replayed_withdrawals[withdrawal.action_id] = withdrawal
        else:
            action = Action.model_validate_json(line)
            replayed[action.action_id] = action
    as_of = parse_event(max(source.read_bytes().splitlines(), key=lambda l: parse_event(l).occurred_at)).occurred_at
    # the worker: events in file order (arrival), a tick whenever a customer's due_at passes; its
    # store-wide view fed from each state before and after, as the pipeline does
    live, live_withdrawals = {}, {}
    trends = StoreTrends(POLICY)

    def step(state, outcome):
        trends.update(state, outcome.state)
        live.update((a.action_id, a) for a in outcome.actions)
        live_withdrawals.update((w.action_id, w) for w in outcome.withdrawals)
        return outcome.state

    by_customer = defaultdict(list)
    for line in source.read_bytes().splitlines():
        event = parse_event(line)
        by_customer[event.customer_id].append(event)
    for customer, events in by_customer.items():
        state = None
        for event in events:
            while state is not None and state.due_at is not None and state.due_at <= event.occurred_at:
                state = step(state, advance(state, state.due_at, POLICY, store=trends.excluding(state)))
            state = step(state, apply(state, event, POLICY, received_at=event.occurred_at, store=trends.excluding(state)))
        end = as_of + POLICY.events.reorder_tolerance
        while state is not None and state.due_at is not None and state.due_at <= end:
            state = step(state, advance(state, state.due_at, POLICY, store=trends.excluding(state)))
        if state is not None:
            step(state, advance(state, end, POLICY, store=trends.excluding(state)))
    assert set(replayed) == set(live)
    assert replayed_withdrawals == live_withdrawals and len(live_withdrawals) > 0
    diff = [(replayed[i], live[i]) for i in replayed if replayed[i] != live[i]]
    assert not diff, [(a.customer_id, a.created_at, a.product_ids, b.product_ids) for a, b in diff[:3]]
    assert sum(a.holdout for a in replayed.values()) == summary["holdout_actions"] > 0
    assert any(a.reason.top_value for a in replayed.values())  # the store-wide view was used


def test_replay_as_of_ignores_later_events(tmp_path):
    source = tmp_path / "events.jsonl"
    write_events(source, 2000, per_customer=8, days=120)
    first = min(parse_event(l).occurred_at for l in source.read_bytes().splitlines())
    summary = replay.run(source, tmp_path / "s.jsonl", None, POLICY, first + timedelta(days=10), lambda m: None)
    assert 0 < summary["events_after_as_of"] < summary["events"]
    assert all(json.loads(l)["as_of"].startswith((first + timedelta(days=10)).date().isoformat())
               for l in (tmp_path / "s.jsonl").read_text().splitlines())
