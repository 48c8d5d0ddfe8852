"""`remarket fit`: BG/NBD population parameters (r, alpha, a, b) by maximum likelihood.

Each customer is summarised as in the live score: x = paid orders − 1 (repeat purchases),
t_x = days from first to last paid order, T = days from first paid order to the end of the
calibration period (the last event in the file). The log-likelihood is equation (6) of Fader,
Hardie & Lee (2005); it is maximised over log-parameters with L-BFGS-B. Time unit: days, as in
the policy's [score] section.

How good it is: the same fit on the history before the last `horizon` days scores every customer
known by then with the live score; the report gives how well that ranks who bought in the held-out
tail (AUC), how calibrated it is (predicted vs actual by decile) and the Brier score.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import ValidationError
from scipy.optimize import minimize
from scipy.special import betaln, gammaln
from scipy.stats import rankdata

from remarket.domain.events import parse_event
from remarket.domain.policy import ScorePolicy
from remarket.domain.score import p_purchase_within, repurchase_probability

DAY = 86_400.0


def negative_log_likelihood(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> float:
    r, alpha, a, b = np.exp(log_params)
    ln_a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    ln_a2 = betaln(a, b + x) - betaln(a, b)
    ln_a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        ln_a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
                         -np.inf)
    return -float(np.sum(ln_a1 + ln_a2 + np.logaddexp(ln_a3, ln_a4)))


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[ScorePolicy, float]:
    """Maximum-likelihood parameters and the maximised log-likelihood."""
    best = None
    for start in ([0.0, np.log(max(np.mean(T), 1.0)), 0.0, 0.0], [np.log(0.5), np.log(10.0), np.log(0.5), np.log(2.0)]):
        result = minimize(negative_log_likelihood, np.array(start), args=(x, t_x, T), method="L-BFGS-B",
                          bounds=[(-10, 10)] * 4)
        if best is None or result.fun < best.fun:
            best = result
    r, alpha, a, b = (float(v) for v in np.exp(best.x))
    return ScorePolicy(r=r, alpha=alpha, a=a, b=b), -float(best.fun)


def purchase_summary(input_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(x, t_x, T) per customer with at least one paid order; counts of what was read."""
    paid = paid_order_times(input_path)
    x, t_x, T, stats = summarise(paid.times, paid.end)
    return x, t_x, T, {"lines": paid.lines, "invalid_lines": paid.invalid, **stats}


@dataclass
class PaidOrders:
    times: dict[str, list[float]]  # customer -> epoch seconds of their paid orders
    end: float | None  # the last event in the file
    lines: int
    invalid: int


def paid_order_times(input_path: Path) -> PaidOrders:
    times: dict[str, list[float]] = {}
    seen_orders: set[tuple[str, str]] = set()
    end = None
    lines = invalid = 0
    with open(input_path, "rb") as source:
        for lines, raw in enumerate(source, start=1):
            if not raw.strip():
                continue
            try:
                event = parse_event(raw)
            except ValidationError:
                invalid += 1
                continue
            at = event.occurred_at.timestamp()
            end = at if end is None else max(end, at)
            if event.event_type != "order.paid" or (event.customer_id, event.order_id) in seen_orders:
                continue
            seen_orders.add((event.customer_id, event.order_id))
            times.setdefault(event.customer_id, []).append(at)
    return PaidOrders(times, end, lines, invalid)


def summarise(times: dict[str, list[float]], end: float | None,
              until: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(x, t_x, T) per customer from the paid orders up to `until` (default: all), observed to `until`."""
    end = until if until is not None else end
    kept = {c: sorted(t for t in ts if until is None or t <= until) for c, ts in times.items()}
    customers = [c for c, ts in kept.items() if ts]
    x = np.array([len(kept[c]) - 1 for c in customers], dtype=float)
    t_x = np.array([(kept[c][-1] - kept[c][0]) / DAY for c in customers])
    T = np.array([((end or 0) - kept[c][0]) / DAY for c in customers])
    stats = {"customers_with_orders": len(customers), "paid_orders": int(x.sum() + len(customers)),
             "calibration_end": datetime.fromtimestamp(end, UTC).isoformat() if end else None}
    return x, t_x, T, stats


def auc(scores: np.ndarray, outcomes: np.ndarray) -> float | None:
    """Probability that a random buyer scores higher than a random non-buyer (ties count half)."""
    positives, negatives = int(outcomes.sum()), int(len(outcomes) - outcomes.sum())
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[outcomes == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def deciles(scores: np.ndarray, outcomes: np.ndarray) -> list[dict]:
    """Customers in ten equal groups by predicted score: predicted vs actual share who bought."""
    order = np.argsort(scores, kind="stable")
    return [{"decile": i + 1, "customers": int(len(group)),
             "predicted": round(float(scores[group].mean()), 4), "actual": round(float(outcomes[group].mean()), 4)}
            for i, group in enumerate(np.array_split(order, 10)) if len(group)]


def validate(paid: PaidOrders, horizon_days: float) -> dict:
    """Fit on the history before the last `horizon_days`, then score every customer known by then
    with the live score and compare with who actually bought in that held-out tail."""
    if paid.end is None:
        return {"error": "no events"}
    split = paid.end - horizon_days * DAY
    x, t_x, T, stats = summarise(paid.times, paid.end, until=split)
    if len(x) < 10 or not np.any(x > 0):
        return {"error": f"not enough purchase history before the held-out {horizon_days:g} days to validate"}
    params, _ = fit_bgnbd(x, t_x, T)
    customers = [c for c, ts in paid.times.items() if min(ts) <= split]
    bought = np.array([any(split < t <= paid.end for t in paid.times[c]) for c in customers], dtype=float)
    scores = np.array([repurchase_probability(int(xi), float(ti), float(Ti), horizon_days, params)
                       for xi, ti, Ti in zip(x, t_x, T)])
    plain = np.array([p_purchase_within(int(xi), float(ti), float(Ti), horizon_days, params)
                      for xi, ti, Ti in zip(x, t_x, T)])
    area = auc(scores, bought)
    return {
        "held_out_days": horizon_days,
        "fitted_until": stats["calibration_end"],
        "customers": len(customers),
        "bought_in_held_out": int(bought.sum()),
        "auc": round(area, 4) if area is not None else None,
        "mean_predicted": round(float(scores.mean()), 4),
        "mean_predicted_plain_bgnbd": round(float(plain.mean()), 4),
        "actual_share": round(float(bought.mean()), 4),
        "brier": round(float(np.mean((scores - bought) ** 2)), 4),
        "by_decile": deciles(scores, bought),
        "how_to_read": "auc: 0.5 = no better than chance, 1 = perfect ranking; by_decile: predicted should "
                       "track actual (calibration). Scores use the live score on the parameters fitted "
                       "without the held-out tail; the live score never lets more purchases lower it (an "
                       "upper envelope), so it reads higher than plain BG/NBD (mean_predicted_plain_bgnbd).",
    }


def run(input_path: Path, horizon_days: float = 90) -> dict:
    paid = paid_order_times(Path(input_path))
    x, t_x, T, summary = summarise(paid.times, paid.end)
    stats = {"lines": paid.lines, "invalid_lines": paid.invalid, **summary}
    if len(x) < 10 or not np.any(x > 0):
        return {**stats, "error": "not enough purchase history to fit (need 10+ buyers, some repeat buyers)"}
    params, log_likelihood = fit_bgnbd(x, t_x, T)
    horizon = float(horizon_days)
    expected = [p_purchase_within(int(xi), float(ti), float(Ti), horizon, params) for xi, ti, Ti in zip(x, t_x, T)]
    toml = (f"[score]\nhorizon = \"{horizon:g}d\"\nr = {params.r:.4g}\nalpha = {params.alpha:.4g}\n"
            f"a = {params.a:.4g}\nb = {params.b:.4g}\n")
    return {
        **stats,
        "model": "BG/NBD (Fader, Hardie & Lee 2005), time unit days",
        "params": {"r": round(params.r, 6), "alpha": round(params.alpha, 6), "a": round(params.a, 6),
                   "b": round(params.b, 6)},
        "log_likelihood": round(log_likelihood, 3),
        "horizon_days": horizon,
        "mean_repurchase_probability": round(float(np.mean(expected)), 4),
        "validation": validate(paid, horizon),
        "policy_toml": toml,
    }
