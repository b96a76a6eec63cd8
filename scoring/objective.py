"""Ranking by business value: a suggestion's expected revenue or margin, not its relevance alone.

    relevance  each kind's own ranking, unchanged (the default)
    revenue    probability of a purchase x price
    margin     probability of a purchase x margin (`items.margin`: money earned per unit sold)

Why a re-ranking of a deeper pool rather than a new score: each kind's ranking is what the
offline evaluation measures and tuning chooses. A business objective trades some of that
relevance for money, so it re-orders the kind's own top `POOL_FACTOR` x limit and never reaches
below it: an item the kind ranks 200th is not offered because it is dear.

Why the probability must be a probability: the price multiplies it, so its scale matters, not
only its order. Each suggestion's breakdown names where its probability came from:
- `learnt`: kinds whose logistic regression was fitted on the inner time split (cross-sell's
  re-ranking, replenishment: `scoring.learnt.probability`) score with the chance of a purchase.
- `rank`: any other ranking (hand blends, popularity, the fallback chain, packages) has scores on
  no common scale: they are min-max scaled per request, so 0.9 means "among this client's best",
  not "90 %". Their order does carry meaning, so the probability is read from the place:
  p(r) = rate / (r + 1) for the 0-based rank r, because hit rates in ranked lists fall off roughly
  as 1 / rank. `rate` is the kind's hit rate at the first place, measured by training on the
  inner split (`measured_rate`; weights `objective_rate.<kind>`).
- `rank-unmeasured`: the same mapping with `UNMEASURED_RATE`, a placeholder, for a model trained
  without tuning. Its order is sound; its absolute figures are not calibrated.
- `none`: an item below a learnt kind's scored pool (its fill-in): nothing estimated its chance.

Items without a positive price (or, for margin, a known positive margin) cannot have an expected
revenue: they follow the valued ones in relevance order, never sit at the top as "0 revenue".
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from scoring.contract import OBJECTIVES, ObjectiveUnavailable, ScoreBreakdown, Suggestion

RELEVANCE, REVENUE, MARGIN = OBJECTIVES
#: How much deeper than the list the kind ranks when the objective is not relevance.
POOL_FACTOR = 3
#: Weight-name prefix of each kind's measured first-place hit rate.
RATE_PREFIX = "objective_rate."
#: The first-place hit rate of a kind nobody measured (see the module docstring: a placeholder).
UNMEASURED_RATE = 0.1

LEARNT, RANK, RANK_UNMEASURED, NONE = "learnt", "rank", "rank-unmeasured", "none"


def check(objective: str, has_margins: bool) -> None:
    """ValueError on an unknown objective; ObjectiveUnavailable for margin without margins."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")
    if objective == MARGIN and not has_margins:
        raise ObjectiveUnavailable("objective=margin needs item margins, and this model has none: "
                                   "add a `margin` column to the items file and retrain")


def has_margins(margins: np.ndarray) -> bool:
    """A model has margins when any item's margin is known."""
    return bool(np.isfinite(margins).any())


def pool_size(limit: int, objective: str) -> int:
    """How deep the kind ranks for a list of `limit` under `objective`."""
    return limit if objective == RELEVANCE else POOL_FACTOR * limit


def rank_probability(n: int, rate: float) -> np.ndarray:
    """p(r) = rate / (r + 1) for ranks 0..n-1 (see the module docstring for why)."""
    return (float(rate) / np.arange(1, n + 1, dtype=np.float64)).clip(0.0, 1.0)


def measured_rate(hits: np.ndarray) -> float:
    """The first-place hit rate that makes p(r) = rate / (r + 1) predict the hits seen.

    `hits` is queries x depth (bool, a ranked list's hits per place on the inner split). A single
    number, fitted to every place at once, so that a few hundred queries give a stable figure:
    the expected hits sum(rate / (r + 1)) equal the hits observed."""
    hits = np.asarray(hits, dtype=bool)
    if hits.ndim != 2 or hits.shape[0] == 0 or hits.shape[1] == 0:
        raise ValueError("hits must be a non-empty queries x depth array")
    harmonic = float((1.0 / np.arange(1, hits.shape[1] + 1)).sum())
    return float(hits.sum(axis=1).mean() / harmonic)


def probabilities(scores: np.ndarray, source: str, rate: float | None) -> tuple[np.ndarray, list[str]]:
    """(probability per place, NaN where none; its source per place) for a list in relevance order.

    `source` is the kind's: LEARNT scores in [0, 1] are probabilities and anything outside is the
    fill-in below the learnt pool (NONE); otherwise the rank mapping with `rate` (None: unmeasured)."""
    scores = np.asarray(scores, dtype=np.float64)
    if source == LEARNT:
        scored = (scores >= 0.0) & (scores <= 1.0)
        return np.where(scored, scores, np.nan), [LEARNT if s else NONE for s in scored.tolist()]
    label = RANK if rate is not None else RANK_UNMEASURED
    return rank_probability(scores.size, UNMEASURED_RATE if rate is None else rate), [label] * scores.size


def value_order(probability: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Places in order of expected value probability x value, best first.

    Places without a probability or a positive value have no expected value: they follow the
    valued ones, in their given (relevance) order. Ties keep the relevance order too."""
    probability, value = np.asarray(probability, np.float64), np.asarray(value, np.float64)
    valued = np.isfinite(probability) & np.isfinite(value) & (value > 0)
    expected = np.where(valued, probability * np.where(valued, value, 0.0), 0.0)
    first = np.flatnonzero(valued)
    first = first[np.argsort(-expected[first], kind="stable")]
    return np.concatenate([first, np.flatnonzero(~valued)]).astype(np.int64)


def _money(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(x) else None


def suggestion_price(s: Suggestion) -> float:
    """What a client pays for a suggestion (a bundle: its bundle price); NaN when unknown or not positive."""
    price = s.get("bundle_price", s.get("price"))
    return float(price) if isinstance(price, (int, float)) and price > 0 else float("nan")


def with_objective(suggestions: Sequence[Suggestion], objective: str, *, source: str, rate: float | None,
                   margins: np.ndarray | None, limit: int) -> list[Suggestion]:
    """The first `limit` of `suggestions` (in relevance order) under `objective`, each with its breakdown.

    `margins`, aligned with `suggestions` (NaN unknown), or None for a model without margins:
    the breakdown then has no `expected_margin`."""
    scores = np.array([s["score"] for s in suggestions], dtype=np.float64)
    p, sources = probabilities(scores, source, rate)
    price = np.array([suggestion_price(s) for s in suggestions], dtype=np.float64)
    margin = np.full(len(suggestions), np.nan) if margins is None else np.asarray(margins, np.float64)
    out: list[Suggestion] = []
    for i, s in enumerate(suggestions):
        breakdown: ScoreBreakdown = {"relevance": float(s["score"]), "probability": _money(p[i]),
                                     "probability_source": sources[i], "expected_revenue": _money(p[i] * price[i])}
        if margins is not None:
            breakdown["expected_margin"] = _money(p[i] * margin[i])
        out.append({**s, "breakdown": breakdown})
    if objective == RELEVANCE:
        return out[:limit]
    order = value_order(p, price if objective == REVENUE else margin)
    return [out[i] for i in order[:limit]]
