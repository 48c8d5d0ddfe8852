"""Repurchase score: P(at least one purchase within the horizon), from BG/NBD.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive a customer
buys at Poisson rate λ ~ Gamma(r, α); after each purchase they drop out with probability
p ~ Beta(a, b). With x repeat purchases, the last at t_x, observed for T (all in days since the
first purchase), the posterior gives in closed form

    P(alive)             = 1 / D,  D = 1 + [x > 0] · a / (b + x − 1) · ((α + T) / (α + t_x))^(r + x)
    P(≥1 buy in (T,T+h]) = (1 − ((α + T) / (α + T + h))^(r + x)) / D

(alive customers buy at least once in h with probability 1 − e^(−λh); integrate over the
posterior of λ given alive, Gamma(r + x, α + T)).

BG/NBD is not monotone in x at fixed recency: many purchases followed by a long silence read as
"gone". The business rule is that buying more never lowers the score, so the score is the upper
envelope over k ≤ x of the probability with k repeat purchases at the same dates.
"""
from __future__ import annotations

from remarket.domain.policy import ScorePolicy
from remarket.domain.state import CustomerState

DAY = 86_400.0
_MAX_ENVELOPE = 500  # beyond this many repeat purchases the envelope has long flattened


def p_purchase_within(x: int, t_x: float, age: float, horizon: float, params: ScorePolicy) -> float:
    """Plain BG/NBD probability (times in days)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    d = 1.0
    if x > 0:
        d += a / (b + x - 1) * ((alpha + age) / (alpha + t_x)) ** (r + x)
    return (1.0 - ((alpha + age) / (alpha + age + horizon)) ** (r + x)) / d


def repurchase_probability(x: int, t_x: float, age: float, horizon: float, params: ScorePolicy) -> float:
    """Monotone envelope: max over k ≤ x repeat purchases (k = 0 ignores t_x)."""
    best = p_purchase_within(0, 0.0, age, horizon, params)
    for k in range(max(1, x - _MAX_ENVELOPE), x + 1):
        best = max(best, p_purchase_within(k, t_x, age, horizon, params))
    return min(1.0, max(0.0, best))


def repurchase_score(state: CustomerState, now: int, params: ScorePolicy) -> float:
    """0 for a prospect (no purchase to extrapolate from)."""
    if state.orders <= 0 or state.first_order is None or state.last_order is None:
        return 0.0
    age = max(0.0, (now - state.first_order) / DAY)
    t_x = min(age, max(0.0, (state.last_order - state.first_order) / DAY))
    score = repurchase_probability(state.orders - 1, t_x, age, params.horizon.total_seconds() / DAY, params)
    return round(score, 6)
