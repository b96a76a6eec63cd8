"""A client's value figures from the fitted BG/NBD and Gamma-Gamma parameters: closed forms, numpy and
`scipy.special` only, so the service and the pyfunc answer without the fitting code or any sampler.

The parameters are fitted by the trainer (`features/value.py`, maximum likelihood); they and each client's
summary (repeat purchase days x, the last one's age t_x, the history's length T, mean repeat spend m) ship
inside the model (`ModelState.extras` and `meta["value_model"]`). Time is in days.

Why closed forms: the figures are exact under the model, cost microseconds per client, and are the same
numbers pymc-marketing's `expected_purchases`/`expected_probability_alive` give for the same parameters
(`tests/unit/test_value_model.py`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import hyp2f1

# figure names, in the order answers list them; the README's "Client value" section defines each
FIGURES = ("p_alive", "p_purchase", "expected_purchases", "expected_revenue", "expected_value_per_purchase",
           "clv")
#: ModelState.extras key of each figure the trainer precomputed for every client at the model's horizon
#: (`training.value`). The "value_" prefix makes them per-client extras (`scoring.client_state`).
FIGURE_ARRAYS = {name: f"value_{name}" for name in FIGURES}


def p_alive(r: float, alpha: float, a: float, b: float, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(still a client | x, t_x, T) (Fader, Hardie & Lee 2005, eq. 11). A client who never came back is alive
    with certainty under BG/NBD (drop-out happens only right after a purchase): a known weakness, which is why
    `p_purchase` and not `p_alive` is the figure to act on."""
    x, tx, T = (np.asarray(v, np.float64) for v in (x, tx, T))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        odds = (a / np.maximum(b + x - 1, 1e-300)) * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + tx)))
    return np.where(x > 0, 1.0 / (1.0 + odds), 1.0)


def p_no_purchase(r: float, alpha: float, a: float, b: float, x: np.ndarray, tx: np.ndarray, T: np.ndarray,
                  t: float) -> np.ndarray:
    """P(no purchase in (T, T+t] | history): gone, or alive with no purchase in t days.

    Alive, a client drops out only after a purchase, so "no purchase" is e^{-λt}; its mean over the
    posterior of λ given the history and being alive, Gamma(r+x, α+T), is ((α+T)/(α+T+t))^{r+x}.
    """
    alive = p_alive(r, alpha, a, b, x, tx, T)
    x, T = np.asarray(x, np.float64), np.asarray(T, np.float64)
    quiet = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
    return (1.0 - alive) + alive * quiet


def expected_purchases(r: float, alpha: float, a: float, b: float, x: np.ndarray, tx: np.ndarray, T: np.ndarray,
                       t: float) -> np.ndarray:
    """E[purchases in (T, T+t] | x, t_x, T] (Fader, Hardie & Lee 2005, eq. 10).

    The hypergeometric term is taken through Euler's transformation, (1-z)^{r+x} 2F1(r+x, b+x; c; z) =
    (1-z)^{a-1} 2F1(a+b-1-r, a-1; c; z) with c = a+b+x-1: its parameters no longer grow with x, so a
    client with 300 visits does not overflow the series.
    """
    x, tx, T = (np.asarray(v, np.float64) for v in (x, tx, T))
    z = t / (alpha + T + t)
    c = a + b + x - 1
    tail = (1.0 - z) ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1, c, z)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        odds = (a / np.maximum(b + x - 1, 1e-300)) * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + tx)))
    odds = np.where(x > 0, odds, 0.0)
    return np.maximum((c / (a - 1)) * (1.0 - tail) / (1.0 + odds), 0.0)


def expected_spend(p: float, q: float, v: float, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """E[spend per purchase | x repeat purchases averaging m] under Gamma-Gamma: a weighted mean of the
    population's p·v/(q-1) and the client's own m, the client's weight growing with x."""
    x, m = np.asarray(x, np.float64), np.asarray(m, np.float64)
    population = p * v / (q - 1) if q > 1 else np.nan
    own = p * (v + x * m) / (p * x + q - 1)
    return np.where(x > 0, own, population)


@dataclass(frozen=True)
class ValueParams:
    """The fitted parameters and the settings figures are computed with (the model's `meta["value_model"]`)."""

    r: float
    alpha: float
    a: float
    b: float
    p: float
    q: float
    v: float
    horizon_days: float = 30.0
    clv_horizon_days: float = 365.0
    annual_discount: float = 0.10
    data_end: str = ""

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> ValueParams:
        names = cls.__dataclass_fields__
        return cls(**{k: meta[k] for k in names if k in meta})

    @property
    def bgnbd(self) -> tuple[float, float, float, float]:
        return self.r, self.alpha, self.a, self.b


def clv(params: ValueParams, x: np.ndarray, tx: np.ndarray, T: np.ndarray, spend: np.ndarray,
        step_days: float = 30.0) -> np.ndarray:
    """Expected revenue over `clv_horizon_days`, discounted per 30-day step at `annual_discount` a year.

    Why steps: the purchases expected in each step are discounted from that step's end, as
    `lifetimes.customer_lifetime_value` did; with no discount it is expected purchases × spend.
    """
    steps = max(int(np.ceil(params.clv_horizon_days / step_days)), 1)
    monthly = (1.0 + params.annual_discount) ** (step_days / 365.0) - 1.0
    total = np.zeros(np.shape(x), np.float64)
    before = np.zeros(np.shape(x), np.float64)
    for i in range(1, steps + 1):
        end = min(i * step_days, params.clv_horizon_days)
        upto = expected_purchases(*params.bgnbd, x, tx, T, end)
        total += (upto - before) * spend / (1.0 + monthly) ** i
        before = upto
    return total


def value_figures(params: ValueParams, x: np.ndarray, tx: np.ndarray, T: np.ndarray, m: np.ndarray,
                  horizon_days: float | None = None) -> dict[str, np.ndarray]:
    """Every figure of `FIGURES` per client, over `horizon_days` (default the model's)."""
    h = params.horizon_days if horizon_days is None else float(horizon_days)
    spend = expected_spend(params.p, params.q, params.v, x, m)
    purchases = expected_purchases(*params.bgnbd, x, tx, T, h)
    return {"p_alive": p_alive(*params.bgnbd, x, tx, T),
            "p_purchase": 1.0 - p_no_purchase(*params.bgnbd, x, tx, T, h),
            "expected_purchases": purchases,
            "expected_revenue": purchases * spend,
            "expected_value_per_purchase": spend,
            "clv": clv(params, x, tx, T, spend)}


def client_value(meta: Mapping[str, Any] | None, extras: Mapping[str, np.ndarray], ci: int | None,
                 horizon_days: float | None = None) -> dict[str, Any] | None:
    """One client's figures as an answer carries them, from the arrays the trainer shipped; None without a
    value model, for an unknown client or one with no purchase. `as_of` is the model's data end: the
    figures are what the model knew then, and `data_end` says so beside them.

    At the model's own horizon the figures are read from those the trainer precomputed (`FIGURE_ARRAYS`, the
    same `value_figures` over every client): the closed forms cost about 0.4 ms a client, paid on every
    answer otherwise. Models without them, or another horizon, compute them here."""
    if not meta or ci is None or "value_frequency" not in extras:
        return None
    if not np.isfinite(extras["value_frequency"][ci]):
        return None
    params = ValueParams.from_meta(meta)
    horizon = params.horizon_days if horizon_days is None else float(horizon_days)
    figures = _precomputed(extras, ci) if horizon == params.horizon_days else None
    if figures is None:
        x, tx, T, m = (np.asarray(extras[k][ci: ci + 1], np.float64)
                       for k in ("value_frequency", "value_recency", "value_T", "value_monetary"))
        figures = {name: float(array[0]) for name, array in value_figures(params, x, tx, T, m, horizon).items()}
    return {**{name: round(figures[name], 4) for name in FIGURES},
            "horizon_days": float(horizon), "clv_horizon_days": float(params.clv_horizon_days),
            "as_of": params.data_end[:10], "data_end": params.data_end[:10]}


def _precomputed(extras: Mapping[str, np.ndarray], ci: int) -> dict[str, float] | None:
    """The client's figures as the trainer computed them, or None when the model has none (older models)."""
    try:
        return {name: float(extras[key][ci]) for name, key in FIGURE_ARRAYS.items()}
    except KeyError:
        return None
