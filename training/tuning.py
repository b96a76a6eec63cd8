"""Choose the recipe (CF settings, then each kind's blend weights) on an inner split of the
training data, never on the test.

The last `tune_days` of the training part play the test (`training.split.inner_split`; when they
give no usable window, or the timestamps carry no order, a per-client random hold-out does, and
the trainer says so); the model is fitted on what comes
before and each task's weights are searched on a small grid, one task at a time (each kind's
weights touch only its own ranking). Candidates are scored on re-weighted views of one fitted
model (`training.model_answers.reweighted`); the result is a `Recipe`, which fitting follows and
which travels in the model's meta.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from scoring import learnt, objective
from scoring.ranking import rank_with_rules
from scoring.recommender import DEFAULT_WEIGHTS, Recommender
from training.config import TrainConfig
from training.context import TrainContext
from training.fit import fit_recommender
from training.metrics import hit_matrix, score_rankings
from training.model_answers import TASK_KIND, rank_queries, reweighted
from training.models.cf import CFParams, tune_cf
from training.models.learnt import as_weights, fit_logistic
from training.recipe import Recipe
from training.split import SplitError, inner_split
from training.tasks import HOLDOUT_TASKS, Skipped, TaskQueries, build_tasks, without_held_out

log = logging.getLogger(__name__)

#: Per task: the weights it searches and the values tried.
GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "cross_sell": {"cross_sell_knn": (0.0, 0.5, 1.5), "cross_sell_cooc": (0.0, 0.5), "cross_sell_pop": (0.0, 0.3),
                   "cross_sell_recent": (0.0, 0.5)},
    "next_basket": {"replenish_freq": (0.25, 0.5, 1.0), "replenish_repeat": (0.0, 1.0, 3.0)},
    "basket_completion": {"cart_personal": (0.5, 1.0, 2.0), "cart_taste": (0.0, 0.2)},
    # upsell is tuned on a light model (its upsell table, no bundles)
    "upsell": {"upsell_taste": (0.0, 0.3, 1.0), "upsell_cap": (3, 10)},
    "service_package": {"service_taste": (0.0, 1.0), "service_cooc": (1.0, 5.0), "service_segment": (0.2, 1.0)},
}
#: Tried on the Complete Journey inner split and never chosen, so left at their defaults to keep
#: training fast: replenish_recent, replenish_due, replenish_knn, upsell_subcat, upsell_step.
#: Kinds rated on another kind's task (the business objective's rank mapping): replenishment
#: answers no task of its own since next_basket scores the next_basket kind.
ALSO_RATED: dict[str, tuple[str, ...]] = {"next_basket": ("replenishment",)}
#: `next_basket_new` values tried once both learnt chances exist (0: own items first, then new ones).
MERGE_GRID = (0.0, 0.5, 1.0, 2.0)
#: Queries per task used for tuning (a sample keeps training within its time budget).
MAX_QUERIES = 250
#: Queries whose candidates train the learnt cross-sell ranking (the replenishment one uses all).
MAX_LEARN_QUERIES = 2500


def _subsample(task: TaskQueries, n: int, seed: int) -> TaskQueries:
    if len(task) <= n:
        return task
    return _rows(task, np.sort(np.random.default_rng(seed).choice(len(task), size=n, replace=False)))


def tune(ctx: TrainContext, config: TrainConfig) -> tuple[Recipe, dict[str, Any]]:
    """(recipe, report): CF settings, then blend weights, chosen on one inner split of `ctx`.

    The split is `training.split.inner_split`: the time split every figure uses (whole orders,
    the last `tune_days`) when it gives a usable window, else a per-client random hold-out
    (seeded by `config.seed`), logged as a warning. Its training part is indexed once and shared
    by both searches. Data that neither can split keeps the configured settings. The report
    (every trial, the seconds, `inner_split`: {"method": "time" | "random_holdout" | None, "why"})
    travels in the model's meta and the MLflow run."""
    started = time.perf_counter()
    recipe = Recipe.default(config)
    try:
        inner_tx, valid, info = inner_split(ctx.transactions, config.tune_days, seed=config.seed)
    except SplitError as exc:
        log.warning("not tuned (%s); using the configured settings", exc)
        return recipe, {"cf": [], "weights": [], "seconds": 0.0, "inner_split": {"method": None, "why": str(exc)}}
    split = {"method": info["method"], "why": info["why"]}
    if info["method"] == "time":
        log.info("inner split: %s", info["why"])
    else:
        log.warning("inner split: a per-client random hold-out of %d%% of orders instead of the last %g days, "
                    "because %s", round(100 * info["share"]), config.tune_days, info["why"])
    inner = TrainContext.build(inner_tx, ctx.items_df, ctx.packages)
    cf, cf_trials = tune_cf(inner, valid, recipe.cf, config.als_factors, config.als_regularization, config.k)
    log.info("CF chosen: %s (%.1fs)", cf, time.perf_counter() - started)
    weights, weight_trials = tune_weights(inner, valid, config, cf)
    log.info("blend weights chosen (%.1fs)", time.perf_counter() - started)
    return Recipe(cf, weights), {"cf": cf_trials, "weights": weight_trials, "inner_split": split,
                                 "seconds": round(time.perf_counter() - started, 1)}


def tune_weights(ctx: TrainContext, valid: pd.DataFrame, config: TrainConfig,
                 cf: CFParams) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(weights, trials): the best grid point per task on the inner split (`ctx` its training
    part, `valid` what came after), with every trial tried."""
    tasks = build_tasks(ctx, valid, seed=config.seed, max_baskets=MAX_QUERIES)
    model = fit_recommender(ctx, config, Recipe(cf), light=True)
    weights = dict(DEFAULT_WEIGHTS)
    trials: list[dict[str, Any]] = []
    for task_name, grid in GRIDS.items():
        task = tasks.get(task_name)
        if task is None or isinstance(task, Skipped):
            continue
        task = _subsample(task, MAX_QUERIES, config.seed)
        metric = f"{task.metric}@{config.k}"
        scorer = _Scorer(model, ctx)
        if task_name in HOLDOUT_TASKS:
            held_out = without_held_out(ctx, task)
            scorer = _Scorer(fit_recommender(held_out, config, Recipe(cf), light=True,
                                             services_only=HOLDOUT_TASKS <= {"service_package"}), held_out)

        def value_of(candidate: dict[str, float], task=task, metric=metric, task_name=task_name, scorer=scorer) -> float:
            value = scorer.score(task, {**weights, **candidate}, config.k)[metric]
            trials.append({"task": task_name, **candidate, metric: round(value, 5)})
            return value

        # coordinate search: one weight at a time, the others held at their best so far
        best = {name: weights[name] for name in grid}
        best_value = value_of(best)
        for name, values in grid.items():
            for v in values:
                if v == best[name]:
                    continue
                candidate = {**best, name: v}
                value = value_of(candidate)
                if value > best_value:
                    best, best_value = candidate, value
        weights.update(best)
        log.info("weights for %s: %s (inner %s %.4f)", task_name, best, metric, best_value)
        if task_name == "next_basket":
            weights.update(learn_replenishment(scorer, tasks[task_name], weights, config.k, trials))
            weights.update(learn_merge(scorer, tasks[task_name], weights, config.k, trials))
        elif task_name == "cross_sell":
            weights.update(learn_cross_sell(scorer, tasks[task_name], weights, config.k, trials, config.seed))
        for kind in (TASK_KIND[task_name], *ALSO_RATED.get(task_name, ())) if task_name in TASK_KIND else ():
            weights[objective.RATE_PREFIX + kind] = first_place_rate(scorer, task, weights, config.k, kind)
    return weights, trials


def first_place_rate(scorer: _Scorer, task: TaskQueries, weights: dict[str, float], k: int,
                     kind: str | None = None) -> float:
    """The kind's first-place hit rate under the chosen weights, on the inner split: what maps its
    places to probabilities of purchase for the business objective (`scoring.objective`)."""
    hits, _ = hit_matrix(scorer.rank(task, weights, k, kind), task.relevant)
    rate = round(objective.measured_rate(hits), 6)
    log.info("%s (%s): first-place hit rate on the inner split %.4f (the business objective's rank mapping)",
             task.task, kind or TASK_KIND[task.task], rate)
    return rate


@dataclass(frozen=True)
class _Scorer:
    """A model fitted on `ctx` (same indexes), scored on that context's task queries."""

    model: Recommender
    ctx: TrainContext

    def rank(self, task: TaskQueries, weights: dict[str, float], k: int, kind: str | None = None) -> np.ndarray:
        return rank_queries(reweighted(self.model, weights), self.ctx, task, k, kind=kind)

    def score(self, task: TaskQueries, weights: dict[str, float], k: int) -> dict[str, float | int]:
        return self.metrics(self.rank(task, weights, k), task, k)

    def metrics(self, ranked: np.ndarray, task: TaskQueries, k: int) -> dict[str, float | int]:
        return score_rankings(ranked, task.relevant, len(self.ctx.items), k)


def learn_replenishment(scorer: _Scorer, task: TaskQueries, weights: dict[str, float], k: int,
                        trials: list[dict[str, Any]]) -> dict[str, float]:
    """The replenishment coefficients learnt on the inner split, or {} when the hand blend ranks better.

    The choice is cross-fitted: the regression fitted on half the clients ranks the other half
    and vice versa, and that NDCG is compared with the blend's on the same clients, so the
    regression is not judged on the answers it was fitted to."""
    x, y, rows = replenishment_pairs(scorer.model, task)
    if y.sum() < 10:
        return {}
    metric = f"{task.metric}@{k}"
    folds = np.arange(len(task)) % 2
    blend = scorer.score(task, weights, k)[metric]
    ranked = np.full((len(task), k), -1, dtype=np.int64)
    for fold in (0, 1):
        fit = fit_logistic(x[folds[rows] != fold], y[folds[rows] != fold])
        learnt_weights = {**weights, **as_weights(learnt.REPLENISH_PREFIX, learnt.REPLENISH_FEATURES, *fit)}
        ranked[folds == fold] = scorer.rank(_rows(task, np.flatnonzero(folds == fold)), learnt_weights, k)
    value = scorer.metrics(ranked, task, k)[metric]
    return _choose("next_basket", metric, blend, value, trials,
                   lambda: as_weights(learnt.REPLENISH_PREFIX, learnt.REPLENISH_FEATURES, *fit_logistic(x, y)))


def learn_merge(scorer: _Scorer, task: TaskQueries, weights: dict[str, float], k: int,
                trials: list[dict[str, Any]]) -> dict[str, float]:
    """`next_basket_new`: how a new item's learnt chance of a first purchase weighs against an own
    item's chance of a repeat in the next_basket kind, the best of `MERGE_GRID` on the inner split
    ({} when either chance was not learnt: own items then come first).

    Both regressions were fitted on this split's window, so the comparison reads their in-sample
    chances; they are the same in every arm, only the weight between them differs."""
    if not all(learnt.coefficients(weights, prefix, features) is not None for prefix, features in (
            (learnt.REPLENISH_PREFIX, learnt.REPLENISH_FEATURES), (learnt.CROSS_SELL_PREFIX, learnt.CROSS_SELL_FEATURES))):
        return {}
    metric = f"{task.metric}@{k}"
    values = {}
    for value in MERGE_GRID:
        values[value] = scorer.score(task, {**weights, "next_basket_new": value}, k)[metric]
        trials.append({"task": "next_basket", "next_basket_new": value, metric: round(values[value], 5)})
    best = max(values, key=lambda v: (values[v], -v))  # a tie keeps the simpler order (own first)
    log.info("next_basket merge on the inner split: %s; chosen next_basket_new=%s",
             ", ".join(f"{v}: {m:.4f}" for v, m in values.items()), best)
    return {"next_basket_new": best}


def replenishment_pairs(rec: Recommender, task: TaskQueries) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, bought again in the window, query row) for every item of every query client's
    history; `rec` was fitted on the task's context, so its client and item indexes are the task's."""
    xs, ys, rows = [], [], []
    for row in range(len(task)):
        ci = int(task.clients[row])
        lo, hi = rec.state.hist_indptr[ci], rec.state.hist_indptr[ci + 1]
        if hi == lo:
            continue
        hist = rec.state.hist_indices[lo:hi].astype(np.int64)
        xs.append(learnt.replenishment_features(rec.state, slice(lo, hi), hist))
        ys.append(np.isin(hist, task.relevant[row]))
        rows.append(np.full(hist.size, row))
    if not xs:
        return np.empty((0, len(learnt.REPLENISH_FEATURES))), np.empty(0), np.empty(0, np.int64)
    return np.vstack(xs), np.concatenate(ys).astype(np.float64), np.concatenate(rows)


def learn_cross_sell(scorer: _Scorer, task: TaskQueries, weights: dict[str, float], k: int,
                     trials: list[dict[str, Any]], seed: int) -> dict[str, float]:
    """The cross-sell re-ranking coefficients learnt on the inner split, or {} when the blend ranks
    better. Cross-fitted like `learn_replenishment`; both rankings order the same pools (the
    blend's top items, `Recommender.cross_sell_pool`) under the same diversity cap."""
    rec = reweighted(scorer.model, weights)
    task = _subsample(task, MAX_LEARN_QUERIES, seed)
    pools, xs, ys = [], [], []
    with threadpool_limits(1, "blas"):
        for row in range(len(task)):
            got = rec.cross_sell_pool(int(task.clients[row]), np.empty(0, np.int64), rec.state.item_in_stock.copy())
            if got is None:  # a cold client: the segment's list answers, nothing to learn from
                got = (np.empty(0, np.int64), np.empty((0, len(learnt.CROSS_SELL_FEATURES))), None)
            pools.append(got[0])
            xs.append(got[1])
            ys.append(np.isin(got[0], task.relevant[row]))
    blends = [x[:, learnt.CROSS_SELL_FEATURES.index("blend")] for x in xs]
    x, y = np.vstack(xs), np.concatenate(ys).astype(np.float64)
    if y.sum() < 10:
        return {}
    rows = np.concatenate([np.full(len(p), r) for r, p in enumerate(pools)])
    folds = np.arange(len(task)) % 2
    cap = int(weights["diversity_cap"])
    metric = f"{task.metric}@{k}"

    def pools_metric(scores_of: list[np.ndarray]) -> float:
        """The task's metric of each pool ordered by these scores under the diversity cap."""
        ranked = np.full((len(task), k), -1, dtype=np.int64)
        for r, pool in enumerate(pools):
            top = rank_with_rules(scores_of[r].astype(np.float32), k, groups=rec.state.item_subcat[pool], cap=cap)
            ranked[r, : top.size] = pool[top]
        return scorer.metrics(ranked, task, k)[metric]

    learnt_scores = [np.empty(0)] * len(task)
    for fold in (0, 1):
        model = fit_logistic(x[folds[rows] != fold], y[folds[rows] != fold])
        for r in np.flatnonzero(folds == fold):
            learnt_scores[r] = learnt.probability(xs[r], model)
    return _choose("cross_sell", metric, pools_metric(blends), pools_metric(learnt_scores), trials,
                   lambda: as_weights(learnt.CROSS_SELL_PREFIX, learnt.CROSS_SELL_FEATURES, *fit_logistic(x, y)))


def _choose(task_name: str, metric: str, blend: float, value: float, trials: list[dict[str, Any]],
            fit_all: Callable[[], dict[str, float]]) -> dict[str, float]:
    trials.append({"task": task_name, "blend": round(blend, 5), "learnt": round(value, 5)})
    log.info("%s on the inner split: blend %s %.4f, learnt (cross-fitted) %.4f", task_name, metric, blend, value)
    return fit_all() if value > blend else {}


def _rows(task: TaskQueries, rows: np.ndarray) -> TaskQueries:
    return replace(task, clients=task.clients[rows], history=task.history[rows],
                   relevant=[task.relevant[r] for r in rows],
                   exclude=None if task.exclude is None else task.exclude[rows])
