"""The trained model as one more ranker in the evaluation harness.

It answers each task through the very methods the service calls (`suggest`, `cart_complete`),
business rules included, so the "model" row of the evaluation table is what clients would get:
- cross_sell -> kind cross_sell;   next_basket -> kind replenishment;   upsell -> kind upsell;
- basket_completion -> the cart widget's "complete this basket" list;
- service_package -> kind service_package, from a model refitted without the hidden services
  (a held-out item must be unknown to the model, or the exam leaks its answer).
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from features.schema import CLIENT, ITEM
from training.config import TrainConfig
from training.fit import fit_recommender
from training.models.cf import CFParams
from training.scoring.recommender import Recommender
from training.tasks import TaskQueries, TrainContext

log = logging.getLogger(__name__)

TASK_KIND = {"cross_sell": "cross_sell", "next_basket": "replenishment", "upsell": "upsell",
             "service_package": "service_package"}


class ModelRanker:
    """Ranker protocol (training.baselines.Ranker) over a fitted or to-be-fitted Recommender."""

    name = "model"

    def __init__(self, config: TrainConfig | None = None, recommender: Recommender | None = None,
                 tune: bool = True, refit_holdout: bool = True) -> None:
        self.config = config or TrainConfig()
        self.refit_holdout = refit_holdout
        self.recommender = recommender
        self._prefit = recommender is not None
        self.tune = tune
        self.ctx: TrainContext | None = None
        self._refits: dict[int, Recommender] = {}

    def answers(self, task: str) -> bool:
        if task == "service_package" and self._prefit and not self.refit_holdout:
            return False  # a registered model has seen the hidden services: its score would leak
        return task in TASK_KIND or task == "basket_completion"

    def fit(self, ctx: TrainContext) -> ModelRanker:
        self.ctx = ctx
        if not self._prefit:
            from training.pipeline import fit_tuned  # the pipeline itself uses this ranker to tune

            self.recommender = fit_tuned(ctx.transactions, ctx.items_df, ctx.packages, self.config, tune=self.tune)
        return self

    def _params(self) -> CFParams:
        p = self.recommender.meta["params"]
        return CFParams(p["algorithm"], p["factors"], p["regularization"], p["alpha"], p["iterations"], p["seed"], p["threads"])

    def _model_for(self, queries: TaskQueries) -> Recommender:
        if queries.task != "service_package":
            return self.recommender
        key = id(queries.history)
        if key not in self._refits:
            self._refits = {key: self._refit_without_hidden(queries)}
        self._refits[key].weights = self.recommender.weights
        return self._refits[key]

    def _refit_without_hidden(self, queries: TaskQueries) -> Recommender:
        ctx = self.ctx
        hidden = pd.DataFrame({CLIENT: np.repeat(ctx.clients.ids[queries.clients], [len(r) for r in queries.relevant]),
                               ITEM: ctx.items.ids[np.concatenate(queries.relevant).clip(0)] if queries.relevant else []})
        tx = ctx.transactions
        key = pd.MultiIndex.from_frame(tx[[CLIENT, ITEM]])
        keep = ~key.isin(pd.MultiIndex.from_frame(hidden))
        log.info("service_package: refitting without %d hidden services (%d lines)", len(hidden), int((~keep).sum()))
        return fit_recommender(tx[keep], ctx.items_df, ctx.packages, self.config, cf_params=self._params(),
                               weights=self.recommender.weights, light=True)

    def rank(self, queries: TaskQueries, k: int) -> np.ndarray:
        rec = self._model_for(queries)
        with threadpool_limits(1, "blas"):  # per-query products are tiny: BLAS threads only cost
            return self._rank(rec, queries, k)

    def _rank(self, rec: Recommender, queries: TaskQueries, k: int) -> np.ndarray:
        ctx = self.ctx
        out = np.full((len(queries), k), -1, dtype=np.int64)
        for row in range(len(queries)):
            client = str(ctx.clients.ids[queries.clients[row]])
            if queries.kind == "basket":
                visible = ctx.items.ids[queries.history[row].indices]
                got = rec.cart_complete(rec.item_index(list(visible)), rec._client_pos.get(client), k,
                                        np.empty(0, np.int64), explain=False)
            else:
                got = rec.suggest(client, TASK_KIND[queries.task], k, explain=False)
            idx = ctx.items.index_of([s["item_id"] for s in got if "items" not in s])
            idx = idx[idx >= 0][:k]
            out[row, : len(idx)] = idx
        return out
