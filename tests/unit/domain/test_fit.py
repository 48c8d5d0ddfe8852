import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("scipy")

from remarket import fit  # noqa: E402

END = datetime(2026, 1, 1, tzinfo=UTC)
TRUE = {"r": 0.6, "alpha": 12.0, "a": 0.8, "b": 3.0}


def _simulate_bgnbd(path, customers: int, seed: int = 3) -> None:
    rng = random.Random(seed)
    lines = []
    for i in range(customers):
        rate = rng.gammavariate(TRUE["r"], 1 / TRUE["alpha"])
        dropout = rng.betavariate(TRUE["a"], TRUE["b"])
        age = rng.uniform(180, 540)
        first = END - timedelta(days=age)
        times, t = [0.0], 0.0
        while True:
            t += rng.expovariate(rate) if rate > 0 else float("inf")
            if t > age:
                break
            times.append(t)
            if rng.random() < dropout:
                break
        for n, day in enumerate(times):
            at = first + timedelta(days=day)
            lines.append({"event_id": f"c{i}-{n}", "customer_id": f"c{i}", "event_type": "order.paid",
                          "order_id": f"c{i}-o{n}", "total": 20, "occurred_at": at.isoformat()})
    lines.append({"event_id": "end", "customer_id": "clock", "event_type": "visit.page_view",
                  "occurred_at": END.isoformat()})
    lines.append({"event_id": "bad"})  # invalid lines are counted, not fatal
    path.write_bytes(b"\n".join(orjson.dumps(doc) for doc in lines) + b"\n")


def test_fit_recovers_known_bgnbd_parameters_roughly(tmp_path):
    path = tmp_path / "history.jsonl"
    _simulate_bgnbd(path, 4000)
    result = fit.run(path, 90)
    params = result["params"]
    assert result["invalid_lines"] == 1 and result["customers_with_orders"] == 4000
    assert params["r"] == pytest.approx(TRUE["r"], rel=0.35)
    assert params["alpha"] == pytest.approx(TRUE["alpha"], rel=0.4)
    mean_dropout = params["a"] / (params["a"] + params["b"])
    assert mean_dropout == pytest.approx(TRUE["a"] / (TRUE["a"] + TRUE["b"]), rel=0.4)
    assert "[score]" in result["policy_toml"] and f"r = {params['r']:.4g}" in result["policy_toml"]
    assert 0 < result["mean_repurchase_probability"] < 1


def test_fit_output_pastes_into_a_policy(tmp_path):
    import tomllib

    from remarket.domain.policy import policy_from_dict

    path = tmp_path / "history.jsonl"
    _simulate_bgnbd(path, 300)
    policy = policy_from_dict(tomllib.loads(fit.run(path, 60)["policy_toml"]))
    assert policy.score.horizon == timedelta(days=60)


def test_fit_without_enough_history_says_so(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    assert "error" in fit.run(path, 90)
