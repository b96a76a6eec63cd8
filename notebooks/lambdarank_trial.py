"""Experiment (issue 11): LightGBM lambdarank against the blend and the logistic regression, on
the inner split the evaluation's model is tuned on.

    nice -n 10 python notebooks/lambdarank_trial.py --data /work/data-full --test-days 60 --out /tmp/lgbm-trial.json

It reproduces `python -m training evaluate`'s tuning exactly (same outer split, same inner split,
same CF choice, same blend grid search) and, where tuning decides between the blend and the
logistic regression (`training.tuning.learn_cross_sell`, `learn_replenishment`), scores on the
very same pools, features, labels and cross-fitting folds:
- the blend; the logistic regression (as tuning fits it);
- LightGBM lambdarank (query = client, label = bought in the inner window) in a few settings;
- LightGBM's pointwise binary objective, for contrast.
Tuning stops after those two tasks (the rest of the recipe does not matter here).
Needs `pip install lightgbm` (not a dependency of the project).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

import lightgbm as lgb
import numpy as np
from threadpoolctl import threadpool_limits

from features.loader import load_dataset
from scoring import learnt
from scoring.kinds.replenishment import blend as replenishment_blend
from scoring.ranking import NEG, rank_with_rules, top_indices
from training import tuning
from training.config import TrainConfig
from training.context import TrainContext
from training.metrics import hit_matrix
from training.model_answers import reweighted
from training.models.learnt import fit_logistic
from training.split import time_split

log = logging.getLogger("lambdarank_trial")

#: LightGBM settings tried, each cross-fitted on the same folds. The base is LightGBM's usual
#: ranking setup. "es": the rounds are chosen by early stopping (NDCG@10, 30 rounds of patience)
#: on a quarter of the *training* fold's queries, so nothing is chosen on the queries scored.
BASE = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "learning_rate": 0.05,
        "num_leaves": 31, "min_data_in_leaf": 50, "feature_fraction": 0.9, "bagging_fraction": 0.8,
        "bagging_freq": 1, "lambda_l2": 1.0, "verbose": -1, "num_threads": 1, "seed": 0, "deterministic": True}
SETTINGS: dict[str, tuple[dict[str, Any], int, bool]] = {
    "lambdarank_31leaves_300": ({}, 300, False),
    "lambdarank_15leaves_150": ({"num_leaves": 15, "min_data_in_leaf": 200}, 150, False),
    "lambdarank_63leaves_600_lr0.03": ({"num_leaves": 63, "learning_rate": 0.03}, 600, False),
    "lambdarank_7leaves_es": ({"num_leaves": 7, "min_data_in_leaf": 200, "lambda_l2": 10.0}, 1000, True),
    "lambdarank_15leaves_es": ({"num_leaves": 15, "min_data_in_leaf": 200, "lambda_l2": 10.0}, 1000, True),
    "binary_31leaves_300": ({"objective": "binary"}, 300, False),
    "binary_15leaves_es": ({"objective": "binary", "num_leaves": 15, "min_data_in_leaf": 200, "lambda_l2": 10.0},
                           1000, True),
}
ONLY: list[str] | None = None  # --settings: a subset of SETTINGS
RESULTS: dict[str, Any] = {}


class Done(Exception):
    """Both learnt choices are measured: stop tuning."""


def _groups(rows: np.ndarray) -> np.ndarray:
    """Query sizes of row-sorted pairs."""
    assert np.all(np.diff(rows) >= 0)
    return np.unique(rows, return_counts=True)[1]


def cross_fitted(x: np.ndarray, y: np.ndarray, rows: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    """{setting: (scores per pair, seconds, rounds per fold)}: each fold's pairs scored by the model
    fitted on the other fold."""
    out: dict[str, Any] = {}
    fold_of = folds[rows]
    for name, (extra, rounds, early) in SETTINGS.items():
        if ONLY and name not in ONLY:
            continue
        params = {**BASE, **extra}
        scores = np.empty(len(y))
        used = []
        started = time.perf_counter()
        for fold in (0, 1):
            train = fold_of != fold
            if early:
                # every 4th training query (by row) stops the boosting; the other three fit it
                stop = train & (rows % 8 >= 6)
                fit = train & ~stop
                data = lgb.Dataset(x[fit], y[fit], group=_groups(rows[fit]))
                valid = lgb.Dataset(x[stop], y[stop], group=_groups(rows[stop]), reference=data)
                booster = lgb.train({**params, "metric": "ndcg", "eval_at": [10]}, data, num_boost_round=rounds,
                                    valid_sets=[valid], callbacks=[lgb.early_stopping(30, verbose=False)])
            else:
                booster = lgb.train(params, lgb.Dataset(x[train], y[train], group=_groups(rows[train])),
                                    num_boost_round=rounds)
            used.append(booster.best_iteration or booster.current_iteration())
            scores[~train] = booster.predict(x[~train], num_iteration=used[-1])
        out[name] = (scores, round(time.perf_counter() - started, 1), used)
    return out


def per_query_ndcg(ranked: np.ndarray, relevant, k: int) -> np.ndarray:
    hits, n_relevant = hit_matrix(ranked, relevant)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    return (hits @ discounts) / np.cumsum(discounts)[np.minimum(n_relevant, k) - 1]


def summary(values: dict[str, np.ndarray]) -> dict[str, Any]:
    """Mean per ranking, and each against the logistic regression: the paired mean difference and
    its standard error over queries."""
    base = values["logistic"]
    out: dict[str, Any] = {}
    for name, v in values.items():
        diff = v - base
        out[name] = {"ndcg@10": round(float(v.mean()), 5),
                     "vs_logistic": round(float(diff.mean()), 5),
                     "vs_logistic_se": round(float(diff.std(ddof=1) / np.sqrt(len(diff))), 5)}
    return out


def cross_sell_trial(scorer, task, weights, k, trials, seed):
    chosen = ORIGINAL_CROSS_SELL(scorer, task, weights, k, trials, seed)
    started = time.perf_counter()
    rec = reweighted(scorer.model, weights)
    task = tuning._subsample(task, tuning.MAX_LEARN_QUERIES, seed)
    pools, xs, ys = [], [], []
    with threadpool_limits(1, "blas"):
        for row in range(len(task)):
            got = rec.cross_sell_pool(int(task.clients[row]), np.empty(0, np.int64), rec.state.item_in_stock.copy())
            if got is None:
                got = (np.empty(0, np.int64), np.empty((0, len(learnt.CROSS_SELL_FEATURES))), None)
            pools.append(got[0])
            xs.append(got[1])
            ys.append(np.isin(got[0], task.relevant[row]))
    x, y = np.vstack(xs), np.concatenate(ys).astype(np.float64)
    rows = np.concatenate([np.full(len(p), r) for r, p in enumerate(pools)])
    folds = np.arange(len(task)) % 2
    cap = int(weights["diversity_cap"])
    metric = f"{task.metric}@{k}"
    bounds = np.concatenate([[0], np.cumsum([len(p) for p in pools])])

    def metric_of(flat: np.ndarray) -> np.ndarray:
        """Per query: the pool ordered by `flat` under the diversity cap, as tuning orders it."""
        ranked = np.full((len(task), k), -1, dtype=np.int64)
        for r, pool in enumerate(pools):
            top = rank_with_rules(flat[bounds[r]:bounds[r + 1]].astype(np.float32), k,
                                  groups=rec.state.item_subcat[pool], cap=cap)
            ranked[r, : top.size] = pool[top]
        return per_query_ndcg(ranked, task.relevant, k)

    logistic = np.empty(len(y))
    for fold in (0, 1):
        model = fit_logistic(x[folds[rows] != fold], y[folds[rows] != fold])
        logistic[folds[rows] == fold] = learnt.probability(x[folds[rows] == fold], model)
    values = {"blend": metric_of(x[:, learnt.CROSS_SELL_FEATURES.index("blend")]), "logistic": metric_of(logistic)}
    result = {"metric": metric, "queries": len(task), "pairs": len(y), "positives": int(y.sum()),
              "tuning_trial": trials[-1], "logistic_chosen_by_tuning": bool(chosen), "seconds_per_setting": {},
              "rounds_per_fold": {}}
    for name, (scores, seconds, used) in cross_fitted(x, y, rows, folds).items():
        values[name] = metric_of(scores)
        result["seconds_per_setting"][name], result["rounds_per_fold"][name] = seconds, used
    result["scores"] = summary(values)
    result["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS["cross_sell"] = result
    log.info("cross_sell: %s", result)
    return chosen


def replenishment_trial(scorer, task, weights, k, trials):
    chosen = ORIGINAL_REPLENISHMENT(scorer, task, weights, k, trials)
    started = time.perf_counter()
    official = trials[-1]  # {"task", "blend", "learnt"} as tuning measured them through the kind
    rec = reweighted(scorer.model, weights)
    x, y, rows = tuning.replenishment_pairs(rec, task)
    folds = np.arange(len(task)) % 2
    metric = f"{task.metric}@{k}"
    # which history items a list may hold (the kind's `allowed`), per query row
    allowed_rows, blends = [], []
    for row in range(len(task)):
        ci = int(task.clients[row])
        ev = rec.evidence(ci, np.empty(0, np.int64))
        allowed_rows.append(ev.allowed[ev.history])
        blends.append(replenishment_blend(ev) if ev.history.size else np.empty(0))
    bounds = np.concatenate([[0], np.cumsum(np.bincount(rows.astype(np.int64), minlength=len(task)))])
    hist_rows = [rec.state.hist_indices[rec.state.hist_indptr[int(c)]:rec.state.hist_indptr[int(c) + 1]].astype(np.int64)
                 for c in task.clients]

    def metric_of(flat: np.ndarray) -> np.ndarray:
        """Per query: the allowed history items ordered by `flat`, as the kind orders them."""
        ranked = np.full((len(task), k), -1, dtype=np.int64)
        for r in range(len(task)):
            score = np.where(allowed_rows[r], flat[bounds[r]:bounds[r + 1]], NEG)
            if score.size == 0:
                continue
            top = top_indices(score, k)
            ranked[r, : top.size] = hist_rows[r][top]
        return per_query_ndcg(ranked, task.relevant, k)

    logistic = np.empty(len(y))
    for fold in (0, 1):
        model = fit_logistic(x[folds[rows] != fold], y[folds[rows] != fold])
        logistic[folds[rows] == fold] = learnt.probability(x[folds[rows] == fold], model)
    values = {"blend": metric_of(np.concatenate(blends)), "logistic": metric_of(logistic)}
    result = {"metric": metric, "queries": len(task), "pairs": len(y), "positives": int(y.sum()),
              "tuning_trial (through the kind)": official, "logistic_chosen_by_tuning": bool(chosen),
              "seconds_per_setting": {}, "rounds_per_fold": {}}
    for name, (scores, seconds, used) in cross_fitted(x, y, rows, folds).items():
        values[name] = metric_of(scores)
        result["seconds_per_setting"][name], result["rounds_per_fold"][name] = seconds, used
    result["scores"] = summary(values)
    result["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS["next_basket"] = result
    log.info("next_basket: %s", result)
    raise Done


ORIGINAL_CROSS_SELL = tuning.learn_cross_sell
ORIGINAL_REPLENISHMENT = tuning.learn_replenishment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--test-days", type=float, default=60)
    parser.add_argument("--out", default=None)
    parser.add_argument("--settings", nargs="*", default=None, help=f"a subset of {', '.join(SETTINGS)}")
    args = parser.parse_args()
    global ONLY
    ONLY = args.settings
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = time.perf_counter()
    dataset = load_dataset(args.data)
    train_tx, _, _ = time_split(dataset.transactions, args.test_days)  # the evaluation's training part
    ctx = TrainContext.build(train_tx, dataset.items, dataset.packages)
    tuning.learn_cross_sell, tuning.learn_replenishment = cross_sell_trial, replenishment_trial
    try:
        tuning.tune(ctx, TrainConfig())
    except Done:
        pass
    RESULTS["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(RESULTS, indent=2, default=float)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
