"""`remarket fit`: BG/NBD population parameters (r, alpha, a, b) by maximum likelihood.

Each customer is summarised as in the live score: x = paid orders − 1 (repeat purchases),
t_x = days from first to last paid order, T = days from first paid order to the end of the
calibration period (the last event in the file). The log-likelihood is equation (6) of Fader,
Hardie & Lee (2005); it is maximised over log-parameters with L-BFGS-B. Time unit: days, as in
the policy's [score] section.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic import ValidationError
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

from remarket.domain.events import parse_event
from remarket.domain.policy import ScorePolicy
from remarket.domain.score import p_purchase_within

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
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    count: dict[str, int] = {}
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
            customer = event.customer_id
            first[customer] = min(first.get(customer, at), at)
            last[customer] = max(last.get(customer, at), at)
            count[customer] = count.get(customer, 0) + 1
    customers = list(count)
    x = np.array([count[c] - 1 for c in customers], dtype=float)
    t_x = np.array([(last[c] - first[c]) / DAY for c in customers])
    T = np.array([((end or 0) - first[c]) / DAY for c in customers])
    stats = {"lines": lines, "invalid_lines": invalid, "customers_with_orders": len(customers),
             "paid_orders": int(x.sum() + len(customers)),
             "calibration_end": datetime.fromtimestamp(end).astimezone().isoformat() if end else None}
    return x, t_x, T, stats


def run(input_path: Path, horizon_days: float = 90) -> dict:
    x, t_x, T, stats = purchase_summary(Path(input_path))
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
        "policy_toml": toml,
    }
