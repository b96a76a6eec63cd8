"""The trained model as one more ranker in the evaluation harness.

It answers each task through the very methods the service calls (`suggest`, `cart_complete`),
business rules included, so the "model" row of the evaluation table is what clients would get:
- cross_sell -> kind cross_sell;   next_basket -> kind next_basket;   upsell -> kind upsell;
- basket_completion -> the cart widget's "complete this basket" list;
- service_package -> kind service_package; the harness refits every ranker, this one included,
  without the hidden services (`refit`), so a held-out item is unknown to all of them.
"""
from __future__ import annotations

import logging

import numpy as np

from scoring.recommender import Recommender
from training.config import TrainConfig
from training.context import TrainContext
from training.engine import FitEngine
from training.fit import fit_recommender
from training.model_answers import TASK_KIND, IndexMap, rank_queries
from training.pipeline import fit_tuned
from training.recipe import Recipe
from training.tasks import HOLDOUT_TASKS, TaskQueries

log = logging.getLogger(__name__)


class ModelRanker:
    """Ranker protocol (training.baselines.Ranker) over a fitted or to-be-fitted Recommender."""

    name = "model"
    #: far slower to evaluate than any baseline (tuning, fitting, one query at a time): started first
    heavy = True
    #: task -> business objectives it is also scored under (an entry `<name>_<objective>` in the
    #: evaluation): what ranking by expected revenue costs in NDCG and brings in money
    objectives: dict[str, tuple[str, ...]] = {"cross_sell": ("revenue",)}

    def __init__(self, config: TrainConfig | None = None, recommender: Recommender | None = None,
                 tune: bool = True, registered: bool = False, recipe: Recipe | None = None,
                 engine: FitEngine | None = None) -> None:
        """`registered`: a model loaded from the registry (the champion), which cannot be refitted.
        `recipe`: fit with this recipe instead of tuning one (a champion's, refitted on the split).
        `engine`: where the fits' CF and co-occurrence run (`training.engine`; in this process by default)."""
        self.engine = engine
        self.config = config or TrainConfig()
        self.registered = registered
        self.recommender = recommender
        self._prefit = recommender is not None
        self.tune = tune
        self.ctx: TrainContext | None = None
        #: what the model was fitted with (None for a registered model: it is never refitted)
        self.recipe: Recipe | None = recipe or (Recipe.from_meta(recommender.meta, recommender.state.extras) if recommender and not registered
                                                else None)
        #: the tasks a hold-out refit answers (None: every task of TASK_KIND)
        self.only: frozenset[str] | None = None
        self._index: IndexMap | None = None

    @property
    def settings(self) -> dict | None:
        """For the evaluation JSON: the inner split the model was tuned on (method and why), when
        this run tuned it."""
        if self._prefit or self.recommender is None:
            return None
        split = self.recommender.meta.get("tuning", {}).get("inner_split")
        return {"inner_split": split} if split else None

    def answers(self, task: str) -> bool:
        if task in HOLDOUT_TASKS and self.registered:
            return False  # a registered model has seen the hidden items: its score would leak
        if self.only is not None and task not in self.only:
            return False
        return task in TASK_KIND or task == "basket_completion"

    def fit(self, ctx: TrainContext) -> ModelRanker:
        self.ctx = ctx
        if not self._prefit and self.recipe is not None:
            self.recommender = fit_recommender(ctx, self.config, self.recipe, engine=self.engine)
        elif not self._prefit:
            self.recipe, self.recommender = fit_tuned(ctx, self.config, tune=self.tune, engine=self.engine)
        self._index = IndexMap.between(self.recommender, ctx)
        return self

    def refit(self, ctx: TrainContext) -> ModelRanker:
        """A ranker with the same recipe (no tuning) fitted on `ctx`: how the harness re-trains
        everyone without held-out items. A registered model cannot be refitted.

        The harness scores a refit on HOLDOUT_TASKS only, so the refit answers those alone and,
        when they are all service tasks, fits only what services are scored from."""
        if self.registered or self.recipe is None:
            raise ValueError("a registered model cannot be refitted")
        other = ModelRanker(self.config, tune=False, engine=self.engine)
        other.only = HOLDOUT_TASKS
        other.recipe = self.recipe
        other.recommender = fit_recommender(ctx, self.config, self.recipe, light=True,
                                            services_only=HOLDOUT_TASKS <= {"service_package"}, engine=self.engine)
        other._prefit = True
        return other.fit(ctx)

    def rank(self, queries: TaskQueries, k: int) -> np.ndarray:
        return rank_queries(self.recommender, self.ctx, queries, k, self._index)

    def rank_with_probabilities(self, queries: TaskQueries, k: int,
                                objective: str = "relevance") -> tuple[np.ndarray, np.ndarray]:
        """(the answer of `rank` under `objective`, each answer's probability of purchase from
        its breakdown: len(queries) x k, NaN where none): what the revenue figures read."""
        probabilities = np.full((len(queries), k), np.nan)
        ranked = rank_queries(self.recommender, self.ctx, queries, k, self._index, objective=objective,
                              probabilities=probabilities)
        return ranked, probabilities
