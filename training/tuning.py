"""Choose each kind's blend weights on an inner time split of the training data, never on the test.

The last `tune_days` of the training part play the test; the model is fitted on what comes
before and each task's weights are searched on a small grid, one task at a time (each kind's
weights touch only its own ranking). The chosen weights travel in the model's meta.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from training.config import TrainConfig
from training.fit import fit_recommender
from training.metrics import score_rankings
from training.model_ranker import ModelRanker
from training.models.cf import CFParams
from training.scoring.recommender import DEFAULT_WEIGHTS
from training.split import SplitError, time_split
from training.tasks import HOLDOUT_TASKS, Skipped, TaskQueries, TrainContext, build_tasks, without_held_out

log = logging.getLogger(__name__)

#: Per task: the weights it searches and the values tried.
GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "cross_sell": {"cross_sell_knn": (0.0, 0.5, 1.5), "cross_sell_cooc": (0.0, 0.5), "cross_sell_pop": (0.0, 0.3)},
    "next_basket": {"replenish_freq": (0.25, 0.5, 1.0), "replenish_repeat": (0.0, 1.0, 3.0)},
    "basket_completion": {"cart_personal": (0.5, 1.0, 2.0), "cart_taste": (0.0, 0.2)},
    # upsell is tuned on a light model (no trade-up table): its trade-up weight keeps its default
    "upsell": {"upsell_taste": (0.0, 0.3, 1.0), "upsell_cap": (3, 10)},
    "service_package": {"service_taste": (0.0, 1.0), "service_cooc": (1.0, 5.0), "service_segment": (0.2, 1.0)},
}
#: Tried on the Complete Journey inner split and never chosen, so left at their defaults to keep
#: training fast: replenish_recent, replenish_due, replenish_knn, upsell_subcat, upsell_step.
#: Queries per task used for tuning (a sample keeps training within its time budget).
MAX_QUERIES = 250


def _subsample(task: TaskQueries, n: int, seed: int) -> TaskQueries:
    if len(task) <= n:
        return task
    rows = np.sort(np.random.default_rng(seed).choice(len(task), size=n, replace=False))
    return replace(task, clients=task.clients[rows], history=task.history[rows],
                   relevant=[task.relevant[r] for r in rows],
                   exclude=None if task.exclude is None else task.exclude[rows])


def tune_weights(tx: pd.DataFrame, items_df: pd.DataFrame | None, packages: pd.DataFrame | None,
                 config: TrainConfig, params: CFParams) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(weights, trials): the best grid point per task on the inner split, with every trial tried."""
    try:
        inner, valid, _ = time_split(tx, config.tune_days)
    except SplitError as exc:
        log.info("weights not tuned (%s); using defaults", exc)
        return dict(DEFAULT_WEIGHTS), []
    ctx = TrainContext.build(inner, items_df, packages)
    tasks = build_tasks(ctx, valid, seed=config.seed, max_baskets=MAX_QUERIES)
    ranker = ModelRanker(config, recommender=fit_recommender(inner, items_df, packages, config, cf_params=params,
                                                             light=True))
    ranker.fit(ctx)
    weights = dict(DEFAULT_WEIGHTS)
    trials: list[dict[str, Any]] = []
    for task_name, grid in GRIDS.items():
        task = tasks.get(task_name)
        if task is None or isinstance(task, Skipped):
            continue
        task = _subsample(task, MAX_QUERIES, config.seed)
        metric = f"{task.metric}@{config.k}"
        scorer = ranker.refit(without_held_out(ctx, task)) if task_name in HOLDOUT_TASKS else ranker

        def value_of(candidate: dict[str, float], task=task, metric=metric, task_name=task_name, scorer=scorer) -> float:
            scorer.recommender.weights = {**weights, **candidate}
            value = score_rankings(scorer.rank(task, config.k), task.relevant, len(ctx.items), config.k)[metric]
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
    return weights, trials
