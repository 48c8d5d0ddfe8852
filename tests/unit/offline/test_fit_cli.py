"""`remarket fit` prints the fitted parameters as a policy snippet that loads."""
from datetime import datetime, timedelta, timezone
import random

import orjson

from remarket.cli import main
from remarket.domain.policy import policy_from_dict

import tomllib


def test_fit_prints_a_policy_snippet_that_validates(tmp_path, capsys):
    rng = random.Random(1)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    lines = []
    for c in range(300):
        at = start + timedelta(days=rng.uniform(0, 60))
        for k in range(1 + int(rng.expovariate(0.6))):
            lines.append({"event_id": f"{c}-{k}", "event_type": "order.paid", "customer_id": f"c{c}",
                          "occurred_at": at.isoformat(), "schema_version": 1, "order_id": f"o{c}-{k}", "total": 10})
            at += timedelta(days=rng.uniform(5, 80))
    source = tmp_path / "orders.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    assert main(["fit", "--input", str(source)]) == 0
    snippet = capsys.readouterr().out
    policy = policy_from_dict(tomllib.loads(snippet))
    assert policy.score.r > 0 and policy.score.alpha > 0
