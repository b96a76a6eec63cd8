"""Learnt linear scores: per (client, item) features and the logistic coefficients over them.

Why: hand blends weigh each signal by a guess; a logistic regression fitted on the inner time
split (`training.models.learnt`) weighs them by how well they predicted what clients bought next.
Only the coefficients travel with the model, as flat blend weights (`<prefix><feature>`, plus
`<prefix>intercept`), and the features are computed from the saved arrays, so the service needs
numpy alone. All coefficients zero (the default) means "not learnt": the hand blend answers.
Where gradient-boosted trees ranked better on the inner split (`training.models.gbdt`), they
travel instead, as flat arrays in the model's extras (`<TREES prefix><part>`, `scoring.trees`),
and the chance is the logistic of their raw score.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from scoring import trees
from scoring.state import ModelState

#: Replenishment: which of the client's own items are bought again. Counts and ages enter as log1p.
REPLENISH_FEATURES = (
    "log_count",          # purchase occasions
    "log_recency",        # recency-weighted occasions (long half-life)
    "log_recent",         # the same with a 14-day half-life
    "log_age",            # days since the last purchase
    "due_ratio",          # days since the last purchase / usual interval, capped at 3 (0 without one)
    "has_interval",       # bought on two or more occasions
    "item_repeat",        # share of the item's buyers who bought it again
    "log_item_pop",       # distinct buyers of the item
    "log_item_recent",    # distinct buyers in the last 30 days
    "count_x_repeat",     # log_count * item_repeat: a regular of an item people do repeat
    "recency_share",      # recency-weighted occasions / the client's largest
)
REPLENISH_PREFIX = "replenish_coef."
#: The extras prefix of the replenishment trees, when trees were chosen.
REPLENISH_TREES = "trees_replenish."
#: Trees order the hand blend's top this many of a history (the rest follow in the blend's
#: order): a history runs to thousands of items, and the trees' cost grows with it.
REPLENISH_POOL = 100

#: Cross-sell: which items new to the client they buy first. Scored over the hand blend's top
#: `CROSS_SELL_POOL` only (the blend finds the candidates, the regression orders them). On the
#: Complete Journey inner split a shallow pool reorders best (cross-fitted NDCG@10: 60 items
#: 0.0544, 100 0.0541, 200 0.0535, 300 0.0524; the blend 0.0500); 100 keeps a 50-deep list
#: inside it under the diversity cap.
CROSS_SELL_FEATURES = (
    "blend",              # the hand blend's score
    "blend_rank",         # its place in the pool, log1p: comparable between clients, unlike the score
    "taste",              # ALS client . item
    "log_knn",            # cosine neighbours of the client's items (recency-weighted sum)
    "log_cooc",           # bought in the same baskets as the client's items
    "log_item_pop",       # distinct buyers
    "log_item_recent",    # distinct buyers in the last 30 days
    "trend",              # log_item_recent - log_item_pop: selling more lately
    "subcat_share",       # share of the client's purchase occasions in the item's subcategory
    "category_share",     # the same for its category
    "item_repeat",        # share of its buyers who bought it again (a staple the client skipped)
    "log_history",        # distinct items the client bought: a wide basket tries more new items
)
CROSS_SELL_PREFIX = "cross_sell_coef."
#: The extras prefix of the cross-sell trees, when trees were chosen.
CROSS_SELL_TREES = "trees_cross_sell."
CROSS_SELL_POOL = 100


def coefficients(weights: dict[str, float], prefix: str, features: tuple[str, ...]) -> tuple[float, np.ndarray] | None:
    """(intercept, coefficients in `features` order), or None when none were learnt (all zero)."""
    coef = np.array([float(weights.get(prefix + name, 0.0)) for name in features])
    return (float(weights.get(prefix + "intercept", 0.0)), coef) if coef.any() else None


def probability(x: np.ndarray, model: tuple[float, np.ndarray]) -> np.ndarray:
    intercept, coef = model
    return 1.0 / (1.0 + np.exp(-np.clip(x @ coef + intercept, -30.0, 30.0)))


def tree_probability(x: np.ndarray, ensemble: Mapping[str, np.ndarray]) -> np.ndarray:
    """The logistic of the trees' raw score: a probability for the binary objective, and an order-
    keeping squash into (0, 1) for lambdarank's scores."""
    return 1.0 / (1.0 + np.exp(-np.clip(trees.predict(ensemble, x), -30.0, 30.0)))


def chance(weights: dict[str, float], extras: Mapping[str, np.ndarray], prefix: str, trees_prefix: str,
           features: tuple[str, ...]) -> Callable[[np.ndarray], np.ndarray] | None:
    """The learnt chance over `features` rows: the trees stored under `trees_prefix` if the model
    has them, else the coefficients under `prefix`, else None (the hand blend answers)."""
    ensemble = trees.stored(extras, trees_prefix)
    if ensemble is not None:
        return lambda x: tree_probability(x, ensemble)
    model = coefficients(weights, prefix, features)
    return None if model is None else (lambda x: probability(x, model))


def replenishment_features(state: ModelState, sl: slice, hist: np.ndarray) -> np.ndarray:
    """len(hist) x len(REPLENISH_FEATURES) float64 for one client's history slice `sl` (items `hist`)."""
    count, recency, recent = state.hist_count[sl], state.hist_recency[sl], state.hist_recent[sl]
    age, interval = state.hist_last_age[sl], state.hist_interval[sl]
    known = ~np.isnan(interval)
    ratio = np.where(known, np.clip(age / np.maximum(np.where(known, interval, 1.0), 1.0), 0.0, 3.0), 0.0)
    repeat = state.item_repeat[hist]
    log_count = np.log1p(count)
    return np.column_stack([
        log_count, np.log1p(recency), np.log1p(recent), np.log1p(np.maximum(age, 0.0)), ratio, known,
        repeat, np.log1p(state.item_pop[hist]), np.log1p(state.item_recent_pop[hist]),
        log_count * repeat, recency / max(float(recency.max(initial=0.0)), 1e-9),
    ]).astype(np.float64)


def cross_sell_features(state: ModelState, pool: np.ndarray, blend: np.ndarray, taste: np.ndarray,
                        knn: np.ndarray, cooc: np.ndarray, seeds: np.ndarray, seed_counts: np.ndarray) -> np.ndarray:
    """len(pool) x len(CROSS_SELL_FEATURES) float64; `blend`, `taste`, `knn`, `cooc` are dense over items."""
    pop, recent = np.log1p(state.item_pop[pool]), np.log1p(state.item_recent_pop[pool])
    total = max(float(seed_counts.sum()), 1e-9)
    return np.column_stack([
        blend[pool], np.log1p(np.arange(pool.size)), taste[pool], np.log1p(np.maximum(knn[pool], 0.0)), np.log1p(np.maximum(cooc[pool], 0.0)),
        pop, recent, recent - pop,
        _group_share(state.item_subcat, seeds, seed_counts, pool) / total,
        _group_share(state.item_category, seeds, seed_counts, pool) / total,
        state.item_repeat[pool], np.full(pool.size, np.log1p(seeds.size)),
    ]).astype(np.float64)


def _group_share(groups: np.ndarray, seeds: np.ndarray, counts: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Occasions of the seeds in each pool item's group (0 for an item without one)."""
    size = int(groups.max(initial=-1)) + 1
    mine = groups[seeds]
    ok = mine >= 0
    per_group = np.bincount(mine[ok], weights=counts[ok], minlength=max(size, 1))
    target = groups[pool]
    return np.where(target >= 0, per_group[np.maximum(target, 0)], 0.0)
