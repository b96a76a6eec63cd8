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

import copy
import logging
import time
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
from training.models.gbdt import fit_gbdt
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
#: The learnt trees' objective: pointwise ranked better than lambdarank on the Complete Journey
#: inner split, for cross-sell and replenishment alike (see `training.models.gbdt`).
TREE_OBJECTIVE = "binary"
#: Trees are kept only when they beat the simpler choice by more than this many standard errors
#: of the per-query difference on the inner split: on Complete Journey cross-sell they won by
#: +0.0007 (noise) and lost 0.0008 on the test (0.0748 against the regression's 0.0756).
TREES_MARGIN_SE = 2.0
#: Positives each cross-fitting fold must train on before trees are tried at all.
MIN_TREE_POSITIVES = 50


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
    weights, weight_trials, trees = tune_weights(inner, valid, config, cf)
    log.info("blend weights chosen (%.1fs)", time.perf_counter() - started)
    return Recipe(cf, weights, trees), {"cf": cf_trials, "weights": weight_trials, "inner_split": split,
                                        "seconds": round(time.perf_counter() - started, 1)}


def tune_weights(ctx: TrainContext, valid: pd.DataFrame, config: TrainConfig,
                 cf: CFParams) -> tuple[dict[str, float], list[dict[str, Any]], dict[str, np.ndarray]]:
    """(weights, trials, trees): the best grid point per task on the inner split (`ctx` its
    training part, `valid` what came after), with every trial tried, and the learnt trees where
    they ranked best."""
    tasks = build_tasks(ctx, valid, seed=config.seed, max_baskets=MAX_QUERIES)
    model = fit_recommender(ctx, config, Recipe(cf), light=True)
    weights = dict(DEFAULT_WEIGHTS)
    trials: list[dict[str, Any]] = []
    trees: dict[str, np.ndarray] = {}
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
        learn = {"next_basket": learn_replenishment, "cross_sell": learn_cross_sell}.get(task_name)
        if learn is not None:
            learnt_weights, learnt_trees = learn(scorer, tasks[task_name], weights, config.k, trials, config.seed)
            weights.update(learnt_weights)
            if learnt_trees:  # the rates below are the trees' ranking's
                scorer = _Scorer(_with_trees(scorer.model, "", learnt_trees), scorer.ctx)
            trees.update(learnt_trees)
        if task_name == "next_basket":  # (merging by probability needs both regressions: not with trees)
            weights.update(learn_merge(scorer, tasks[task_name], weights, config.k, trials))
        for kind in (TASK_KIND[task_name], *ALSO_RATED.get(task_name, ())) if task_name in TASK_KIND else ():
            weights[objective.RATE_PREFIX + kind] = first_place_rate(scorer, task, weights, config.k, kind)
    return weights, trials, trees


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
                        trials: list[dict[str, Any]], seed: int = 0) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """(coefficients, trees) of the replenishment ranking learnt on the inner split: the logistic
    regression's, or gradient-boosted trees' (`training.models.gbdt`), whichever ranks best, or
    neither ({}, {}) when the hand blend ranks better.

    The choice is cross-fitted: a ranking fitted on half the clients ranks the other half and vice
    versa, through the replenishment kind itself, and that NDCG is compared with the blend's on
    the same clients, so no ranking is judged on the answers it was fitted to."""
    x, y, rows = replenishment_pairs(scorer.model, task)
    if y.sum() < 10:
        return {}, {}
    folds = np.arange(len(task)) % 2
    with_trees = _trees_fit(y, folds[rows])
    ranked = {"blend": scorer.rank(task, weights, k),
              **{name: np.full((len(task), k), -1, dtype=np.int64) for name in ("learnt", "trees")[:1 + with_trees]}}
    seconds = 0.0
    for fold in (0, 1):
        train, part = folds[rows] != fold, _rows(task, np.flatnonzero(folds == fold))
        fit = fit_logistic(x[train], y[train])
        learnt_weights = {**weights, **as_weights(learnt.REPLENISH_PREFIX, learnt.REPLENISH_FEATURES, *fit)}
        ranked["learnt"][folds == fold] = scorer.rank(part, learnt_weights, k)
        if not with_trees:
            continue
        started = time.perf_counter()
        ensemble = fit_gbdt(x[train], y[train], rows[train], TREE_OBJECTIVE, seed)
        seconds += time.perf_counter() - started
        view = _Scorer(_with_trees(scorer.model, learnt.REPLENISH_TREES, ensemble), scorer.ctx)
        ranked["trees"][folds == fold] = view.rank(part, weights, k)
    return _refit_chosen(_chosen(scorer, task, k, ranked, seconds, trials), x, y, rows, seed,
                         learnt.REPLENISH_PREFIX, learnt.REPLENISH_FEATURES, learnt.REPLENISH_TREES)


def _refit_chosen(best: str, x: np.ndarray, y: np.ndarray, rows: np.ndarray, seed: int, prefix: str,
                  features: tuple[str, ...], trees_key: str) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """(weights, extras) of the chosen ranking refitted on every pair: the logistic regression's
    coefficients, or the trees' arrays, or nothing for the blend."""
    if best == "learnt":
        return as_weights(prefix, features, *fit_logistic(x, y)), {}
    if best == "trees":
        return {}, _prefixed(trees_key, fit_gbdt(x, y, rows, TREE_OBJECTIVE, seed))
    return {}, {}


def _trees_fit(y: np.ndarray, fold_of_pair: np.ndarray) -> bool:
    """Whether each cross-fitting fold trains on enough positives for trees (a client or two of
    data leave a fold empty: the regression copes, LightGBM refuses)."""
    return all(y[fold_of_pair != fold].sum() >= MIN_TREE_POSITIVES for fold in (0, 1))


def _prefixed(prefix: str, ensemble: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {prefix + part: array for part, array in ensemble.items()}


def _with_trees(rec: Recommender, prefix: str, ensemble: dict[str, np.ndarray]) -> Recommender:
    """A model like `rec` (arrays shared, same weights) that also carries these trees."""
    state = copy.copy(rec.state)
    state.extras = {**rec.state.extras, **_prefixed(prefix, ensemble)}
    view = Recommender(state).without_candidates()
    view.weights = dict(rec.weights)
    return view


def _chosen(scorer: _Scorer, task: TaskQueries, k: int, ranked: dict[str, np.ndarray], seconds: float,
            trials: list[dict[str, Any]]) -> str:
    """The choice among the cross-fitted rankings (`choose_ranking`), recorded as a trial."""
    metric = f"{task.metric}@{k}"
    values = {name: scorer.metrics(r, task, k)[metric] for name, r in ranked.items()}
    best, z = choose_ranking({name: per_query(r, task, k) for name, r in ranked.items()})
    trials.append({"task": task.task, **{name: round(v, 5) for name, v in values.items()},
                   "trees_objective": TREE_OBJECTIVE, "trees_gain_se": round(z, 2) if "trees" in ranked else None,
                   "trees_seconds": round(seconds, 1), "chosen": best})
    log.info("%s on the inner split (cross-fitted %s): %s; the trees' gain %.1f standard errors; %s chosen",
             task.task, metric, ", ".join(f"{name} {v:.4f}" for name, v in values.items()), z, best)
    return best


def per_query(ranked: np.ndarray, task: TaskQueries, k: int) -> np.ndarray:
    """The task's metric (NDCG or hit rate at k) of each query's list."""
    hits, n_relevant = hit_matrix(ranked[:, :k], task.relevant)
    if task.metric == "hr":
        return hits.any(axis=1).astype(np.float64)
    if task.metric != "ndcg":
        raise ValueError(f"no per-query {task.metric}")
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    return (hits @ discounts) / np.cumsum(discounts)[np.minimum(n_relevant, k) - 1]


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
                     trials: list[dict[str, Any]], seed: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """(coefficients, trees) of the cross-sell re-ranking learnt on the inner split: the logistic
    regression's coefficients, or gradient-boosted trees (`training.models.gbdt`), whichever
    ranks best, or neither ({}, {}) when the blend ranks better. Cross-fitted like
    `learn_replenishment`; every ranking orders the same pools (the blend's top items,
    `Recommender.cross_sell_pool`) under the same diversity cap."""
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
        return {}, {}
    rows = np.concatenate([np.full(len(p), r) for r, p in enumerate(pools)])
    folds = np.arange(len(task)) % 2
    cap = int(weights["diversity_cap"])

    def pools_ranked(scores_of: list[np.ndarray]) -> np.ndarray:
        """Each pool ordered by these scores under the diversity cap."""
        ranked = np.full((len(task), k), -1, dtype=np.int64)
        for r, pool in enumerate(pools):
            top = rank_with_rules(scores_of[r].astype(np.float32), k, groups=rec.state.item_subcat[pool], cap=cap)
            ranked[r, : top.size] = pool[top]
        return ranked

    logistic_scores, tree_scores = [np.empty(0)] * len(task), [np.empty(0)] * len(task)
    seconds = 0.0
    with_trees = _trees_fit(y, folds[rows])
    for fold in (0, 1):
        train = folds[rows] != fold
        model = fit_logistic(x[train], y[train])
        for r in np.flatnonzero(folds == fold):
            logistic_scores[r] = learnt.probability(xs[r], model)
        if not with_trees:
            continue
        started = time.perf_counter()
        ensemble = fit_gbdt(x[train], y[train], rows[train], TREE_OBJECTIVE, seed)
        seconds += time.perf_counter() - started
        for r in np.flatnonzero(folds == fold):
            tree_scores[r] = learnt.tree_probability(xs[r], ensemble)
    ranked = {"blend": pools_ranked(blends), "learnt": pools_ranked(logistic_scores),
              **({"trees": pools_ranked(tree_scores)} if with_trees else {})}
    return _refit_chosen(_chosen(scorer, task, k, ranked, seconds, trials), x, y, rows, seed,
                         learnt.CROSS_SELL_PREFIX, learnt.CROSS_SELL_FEATURES, learnt.CROSS_SELL_TREES)


def choose_ranking(per_query_values: dict[str, np.ndarray]) -> tuple[str, float]:
    """(choice, the trees' gain over the simpler choice in standard errors) from each ranking's
    per-query scores ("blend", "learnt" and, when they were tried, "trees"; the same queries in the
    same order).

    The regression replaces the blend when its mean is higher (as before trees were tried); the
    trees replace that choice only when they beat it by more than `TREES_MARGIN_SE` standard
    errors of the per-query difference."""
    means = {name: float(v.mean()) for name, v in per_query_values.items()}
    simple = "learnt" if means["learnt"] > means["blend"] else "blend"
    if "trees" not in per_query_values:  # too little data to try them
        return simple, 0.0
    diff = per_query_values["trees"] - per_query_values[simple]
    se = float(diff.std(ddof=1)) / np.sqrt(diff.size) if diff.size > 1 else 0.0
    z = float(diff.mean()) / se if se > 0 else (np.inf if diff.mean() > 0 else 0.0)
    return ("trees" if z > TREES_MARGIN_SE else simple), float(z)


def _rows(task: TaskQueries, rows: np.ndarray) -> TaskQueries:
    return replace(task, clients=task.clients[rows], history=task.history[rows],
                   relevant=[task.relevant[r] for r in rows],
                   exclude=None if task.exclude is None else task.exclude[rows])
