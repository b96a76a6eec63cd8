"""Fit gradient-boosted trees (LightGBM) over a learnt ranking's features, on the inner time
split only; the trees leave as flat arrays (`scoring.trees`), so serving needs no LightGBM.

Why these settings (notebooks/lambdarank_trial.py; full Complete Journey, the inner split of the
60-day evaluation, cross-fitted NDCG@10 through tuning's own code): the data are small for trees
(cross-sell, counted before the presentability rules: 2,011 queries, 4,340 positives in 201,100
pool pairs), so deep or long ensembles overfit and the trees here are small (15 leaves, at least
200 pairs per leaf, L2 10), with the rounds chosen by early stopping on a quarter of the
*training* queries. The pointwise objective
("bought or not", `binary`) ranked best:

| objective (leaves, rounds)   | cross_sell | next_basket (whole history) |
|------------------------------|------------|-----------------------------|
| hand blend                   | 0.0456     | 0.4034                      |
| logistic regression          | 0.0494     | 0.4051                      |
| binary (15, early stopping)  | 0.0501     | 0.4112                      |
| lambdarank (15, early stop.) | 0.0472     | 0.4110                      |
| lambdarank (7, early stop.)  | 0.0486     | 0.4109                      |
| lambdarank (31, 300)         | 0.0417     | 0.4099                      |

With about two positives in a cross-sell pool of a hundred, lambdarank's per-query gradients are
few and noisy; on replenishment (about 20 positives a client) it ties with the pointwise objective.
"""
from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

from scoring import trees

OBJECTIVES = ("binary", "lambdarank")
PARAMS: dict[str, Any] = {"learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 200, "lambda_l2": 10.0,
                          "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1,
                          "metric": "ndcg", "eval_at": [10], "verbose": -1, "deterministic": True,
                          # one thread: the fits take a second or two and the trainer's cores are shared
                          "num_threads": 1}
MAX_ROUNDS = 1000
PATIENCE = 30


def fit_gbdt(x: np.ndarray, y: np.ndarray, rows: np.ndarray, objective: str = "binary",
             seed: int = 0) -> dict[str, np.ndarray]:
    """The ensemble (`scoring.trees` arrays) of `objective` over pairs `x` labelled `y`, whose
    query is `rows` (sorted: each query's pairs together).

    A quarter of the queries (numbers 6 and 7 mod 8, so a quarter of either cross-fitting fold,
    whose queries alternate) stop the boosting when NDCG@10 has not improved for `PATIENCE`
    rounds; the others fit it."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if rows.size and np.any(np.diff(rows) < 0):
        raise ValueError("pairs must be grouped by query (rows sorted)")
    stop = rows % 8 >= 6
    fit = ~stop
    params = {**PARAMS, "objective": objective, "seed": seed}
    data = lgb.Dataset(x[fit], y[fit], group=_sizes(rows[fit]), free_raw_data=True)
    valid_sets, callbacks = [], []
    if stop.any() and y[stop].any():
        valid_sets = [lgb.Dataset(x[stop], y[stop], group=_sizes(rows[stop]), reference=data)]
        callbacks = [lgb.early_stopping(PATIENCE, verbose=False)]
    booster = lgb.train(params, data, num_boost_round=MAX_ROUNDS if valid_sets else 100,
                        valid_sets=valid_sets, callbacks=callbacks)
    best = booster.best_iteration or booster.current_iteration()
    return trees.flatten(booster.dump_model(num_iteration=best))


def _sizes(rows: np.ndarray) -> np.ndarray:
    return np.unique(rows, return_counts=True)[1]
