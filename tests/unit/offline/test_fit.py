import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("scipy")

from remarket.offline import fit  # noqa: E402

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


def test_auc_is_the_share_of_buyer_non_buyer_pairs_ranked_right():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    bought = np.array([0.0, 0.0, 1.0, 1.0])
    assert fit.auc(scores, bought) == pytest.approx(0.75)
    assert fit.auc(np.array([0.5, 0.5]), np.array([0.0, 1.0])) == pytest.approx(0.5)  # ties count half
    assert fit.auc(scores, np.zeros(4)) is None


def test_fit_reports_ranking_and_calibration_on_a_held_out_tail(tmp_path):
    path = tmp_path / "history.jsonl"
    _simulate_bgnbd(path, 4000)
    validation = fit.run(path, 90)["validation"]
    assert validation["held_out_days"] == 90 and validation["fitted_until"].startswith("2025-10-03")
    assert 0 < validation["bought_in_held_out"] < validation["customers"] <= 4000
    assert validation["auc"] > 0.7  # the model ranks who buys again far better than chance
    groups = validation["by_decile"]
    assert [g["decile"] for g in groups] == list(range(1, 11))
    assert sum(g["customers"] for g in groups) == validation["customers"]
    assert groups[-1]["actual"] > groups[0]["actual"]  # the top decile buys more than the bottom one
    assert all(abs(g["predicted"] - g["actual"]) < 0.12 for g in groups)  # calibrated on its own population
    # plain BG/NBD is calibrated on its own population; the live score's monotone envelope reads higher
    assert abs(validation["mean_predicted_plain_bgnbd"] - validation["actual_share"]) < 0.03
    assert validation["mean_predicted"] >= validation["mean_predicted_plain_bgnbd"]


def test_validation_without_enough_early_history_says_so(tmp_path):
    path = tmp_path / "recent.jsonl"
    lines = [{"event_id": f"e{i}", "customer_id": f"c{i}", "event_type": "order.paid", "order_id": f"o{i}",
              "occurred_at": (END - timedelta(days=i % 30)).isoformat()} for i in range(40)]
    lines += [{"event_id": f"r{i}", "customer_id": f"c{i}", "event_type": "order.paid", "order_id": f"p{i}",
               "occurred_at": (END - timedelta(days=i % 5)).isoformat()} for i in range(10)]
    path.write_bytes(b"\n".join(orjson.dumps(doc) for doc in lines) + b"\n")
    result = fit.run(path, 90)
    assert "params" in result and "not enough purchase history" in result["validation"]["error"]
