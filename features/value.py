"""Client value: the buy-till-you-die pair (BG/NBD for purchase counts, Gamma-Gamma for spend), fitted by
maximum likelihood.

Why these two models: a grocery or CRM client never announces that they have left; they just stop
buying. BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way") reads each client's
three numbers (how many repeat purchases, when the last one was, how long we have known them) as
evidence about two hidden things, their purchase rate and whether they are still a client, and gives
closed forms for the probability of being alive and the purchases to expect. Gamma-Gamma (Fader,
Hardie & Lee 2005, "RFM and CLV") shrinks each client's average spend per purchase towards the
population's, more for clients with few purchases. Together they give expected revenue and CLV.

Why our own likelihood: the maintained library (pymc-marketing) needs pymc and pytensor (hundreds of
megabytes, a compiler at import); these likelihoods are ten lines each and `scipy.optimize` finds
the same maximum. `tests/unit/test_value_model.py` checks our fit against pymc-marketing's on the same
data (the fixture says how it was made); `docs/benchmarks.md` has the install size and fit times.
The predictions (closed forms evaluated with numpy) live in `scoring/value.py`, which ships inside
the model; this module only summarises histories and fits.

Units: a purchase is a calendar day with at least one positive line (several baskets on one day are
one visit), and time is in days.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import gammaln

from features.schema import CLIENT, PRICE, QUANTITY, TIMESTAMP

SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary", "first_purchase", "last_purchase")


class ValueFitError(RuntimeError):
    """The likelihood could not be maximised (too few clients, or no client bought twice)."""


@dataclass(frozen=True)
class BetaGeoParams:
    """BG/NBD: purchase rates ~ Gamma(r, alpha); the drop-out chance after a purchase ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma: spend per purchase ~ Gamma(p, nu), each client's nu ~ Gamma(q, v)."""

    p: float
    q: float
    v: float


def value_summary(transactions: pd.DataFrame, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """index client_id; frequency (repeat purchase days), recency (days first→last purchase), T (days first
    purchase→as_of), monetary (mean revenue of the repeat purchase days, 0 without one), first_purchase,
    last_purchase.

    Why repeat days only: BG/NBD models the purchases after the first (the first one says when we met the
    client, not how often they buy), and Gamma-Gamma averages the same purchases' spend. Lines after
    `as_of` are ignored, so the same function gives the summary as of any earlier cut-off. A day's
    revenue is its lines' quantity × unit price (unknown prices 0, returns netted, clipped at 0).
    """
    as_of = transactions[TIMESTAMP].max() if as_of is None else pd.Timestamp(as_of)
    seen = transactions[(transactions[TIMESTAMP] <= as_of)]
    bought = seen[seen[QUANTITY] > 0]
    days = pd.DataFrame({CLIENT: seen[CLIENT].to_numpy(), "day": seen[TIMESTAMP].dt.floor("D").to_numpy(),
                         "revenue": (seen[QUANTITY] * seen[PRICE]).fillna(0.0).to_numpy()})
    per_day = days.groupby([CLIENT, "day"], sort=True)["revenue"].sum().clip(lower=0.0).reset_index()
    visit_days = bought.assign(day=bought[TIMESTAMP].dt.floor("D"))[[CLIENT, "day"]].drop_duplicates()
    per_day = per_day.merge(visit_days, on=[CLIENT, "day"], how="inner")
    if per_day.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS), index=pd.Index([], name=CLIENT))
    first = per_day.groupby(CLIENT)["day"].transform("min")
    repeat = per_day[per_day["day"] > first]
    grouped = per_day.groupby(CLIENT)
    summary = pd.DataFrame({"first_purchase": grouped["day"].min(), "last_purchase": grouped["day"].max()})
    summary["frequency"] = repeat.groupby(CLIENT).size().reindex(summary.index, fill_value=0).astype(np.int64)
    summary["recency"] = (summary["last_purchase"] - summary["first_purchase"]) / pd.Timedelta(days=1)
    summary["T"] = (as_of.floor("D") - summary["first_purchase"]) / pd.Timedelta(days=1)
    summary["monetary"] = repeat.groupby(CLIENT)["revenue"].mean().reindex(summary.index).fillna(0.0)
    summary.index.name = CLIENT
    return summary[list(SUMMARY_COLUMNS)]


def bgnbd_log_likelihood(params: BetaGeoParams | np.ndarray, frequency: np.ndarray, recency: np.ndarray,
                         T: np.ndarray) -> np.ndarray:
    """Per client log-likelihood of (x, t_x, T) under BG/NBD (Fader, Hardie & Lee 2005, eq. 6).

    Written with gammaln and logaddexp so that clients with hundreds of purchases do not overflow.
    """
    r, alpha, a, b = (asdict(params).values() if isinstance(params, BetaGeoParams) else params)
    x = np.asarray(frequency, np.float64)
    tx, T = np.asarray(recency, np.float64), np.asarray(T, np.float64)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + tx),
                      -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def gamma_gamma_log_likelihood(params: GammaGammaParams | np.ndarray, frequency: np.ndarray,
                               monetary: np.ndarray) -> np.ndarray:
    """Per client log-likelihood of the mean spend m over x purchases (Fader, Hardie & Lee 2005, "RFM and CLV",
    the density of the mean of x Gamma(p, nu) draws with nu ~ Gamma(q, v))."""
    p, q, v = (asdict(params).values() if isinstance(params, GammaGammaParams) else params)
    x, m = np.asarray(frequency, np.float64), np.asarray(monetary, np.float64)
    return (gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(v) + (p * x - 1) * np.log(m)
            + p * x * np.log(x) - (p * x + q) * np.log(v + m * x))


def _maximise(negative: Callable[[np.ndarray], float], start: np.ndarray, what: str) -> np.ndarray:
    """Minimise over log-parameters (positivity for free); L-BFGS-B, then Nelder-Mead if it stalls.

    A step into overflow (a parameter running away on data that do not pin it down) is a bad step, not
    an error: the objective answers +inf there and the optimiser backs off."""

    def guarded(log_params: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            value = negative(np.clip(log_params, -30.0, 30.0))
        return value if np.isfinite(value) else np.inf

    result = minimize(guarded, np.log(start), method="L-BFGS-B")
    if not result.success or not np.isfinite(result.fun):
        result = minimize(guarded, result.x if np.all(np.isfinite(result.x)) else np.log(start),
                          method="Nelder-Mead", options={"maxiter": 20_000, "xatol": 1e-8, "fatol": 1e-10})
    if not np.isfinite(result.fun) or not np.all(np.isfinite(result.x)) or np.any(np.abs(result.x) >= 30.0):
        raise ValueFitError(f"{what}: the likelihood could not be maximised ({result.message})")
    return np.exp(result.x)


def fit_bgnbd(frequency: np.ndarray, recency: np.ndarray, T: np.ndarray,
              penalizer: float = 0.0) -> BetaGeoParams:
    """Maximum-likelihood BG/NBD parameters from per-client (x, t_x, T).

    `penalizer` adds penalizer × Σ params² (as `lifetimes` did) for data where the maximum runs away
    (a, b → ∞ when nobody seems to drop out); 0 is the plain maximum likelihood the tests compare.
    """
    x, tx, T = (np.asarray(v, np.float64) for v in (frequency, recency, T))
    if len(x) < 2 or not np.any(x > 0):
        raise ValueFitError("BG/NBD needs at least two clients and one repeat purchase")
    scale = max(float(np.max(T)), 1.0)  # fit in units of the longest history: better-conditioned

    def negative(log_params: np.ndarray) -> float:
        r, alpha, a, b = np.exp(log_params)
        value = -np.mean(bgnbd_log_likelihood((r, alpha, a, b), x, tx / scale, T / scale))
        return float(value + penalizer * np.sum(np.exp(2 * log_params))) if penalizer else float(value)

    r, alpha, a, b = _maximise(negative, np.array([1.0, 1.0, 1.0, 1.0]), "BG/NBD")
    return BetaGeoParams(r=float(r), alpha=float(alpha * scale), a=float(a), b=float(b))


def fit_gamma_gamma(frequency: np.ndarray, monetary: np.ndarray, penalizer: float = 0.0) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma parameters from the clients with a repeat purchase and positive spend.

    Why only those: the model is of the mean spend of repeat purchases; a client without one has no
    mean to explain (they get the population's mean spend at prediction).
    """
    x, m = np.asarray(frequency, np.float64), np.asarray(monetary, np.float64)
    keep = (x > 0) & (m > 0)
    if keep.sum() < 2:
        raise ValueFitError("Gamma-Gamma needs at least two clients with a repeat purchase and positive spend")
    x, m = x[keep], m[keep]
    scale = float(np.mean(m))  # spend in units of its mean: better-conditioned; v scales with it

    def negative(log_params: np.ndarray) -> float:
        p, q, v = np.exp(log_params)
        value = -np.mean(gamma_gamma_log_likelihood((p, q, v), x, m / scale))
        return float(value + penalizer * np.sum(np.exp(2 * log_params))) if penalizer else float(value)

    p, q, v = _maximise(negative, np.array([1.0, 2.0, 1.0]), "Gamma-Gamma")
    return GammaGammaParams(p=float(p), q=float(q), v=float(v * scale))
