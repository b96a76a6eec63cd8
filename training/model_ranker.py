"""The trained model as one more ranker in the evaluation harness.

It answers each task through the very methods the service calls (`suggest`, `cart_complete`),
business rules included, so the "model" row of the evaluation table is what clients would get:
- cross_sell -> kind cross_sell;   next_basket -> kind replenishment;   upsell -> kind upsell;
- basket_completion -> the cart widget's "complete this basket" list;
- service_package -> kind service_package; the harness refits every ranker, this one included,
  without the hidden services (`refit`), so a held-out item is unknown to all of them.
"""
from __future__ import annotations

import logging

import numpy as np
from threadpoolctl import threadpool_limits

from training.config import TrainConfig
from training.fit import fit_recommender
from training.models.cf import CFParams
from scoring.recommender import Recommender
from training.tasks import HOLDOUT_TASKS, TaskQueries, TrainContext

log = logging.getLogger(__name__)

TASK_KIND = {"cross_sell": "cross_sell", "next_basket": "replenishment", "upsell": "upsell",
             "service_package": "service_package"}


class ModelRanker:
    """Ranker protocol (training.baselines.Ranker) over a fitted or to-be-fitted Recommender."""

    name = "model"
    #: far slower to evaluate than any baseline (tuning, fitting, one query at a time): started first
    heavy = True

    def __init__(self, config: TrainConfig | None = None, recommender: Recommender | None = None,
                 tune: bool = True, registered: bool = False) -> None:
        """`registered`: a model loaded from the registry (the champion), which cannot be refitted."""
        self.config = config or TrainConfig()
        self.registered = registered
        self.recommender = recommender
        self._prefit = recommender is not None
        self.tune = tune
        self.ctx: TrainContext | None = None
        #: the tasks a hold-out refit answers (None: every task of TASK_KIND)
        self.only: frozenset[str] | None = None
        self._maps: tuple | None = None

    def answers(self, task: str) -> bool:
        if task in HOLDOUT_TASKS and self.registered:
            return False  # a registered model has seen the hidden items: its score would leak
        if self.only is not None and task not in self.only:
            return False
        return task in TASK_KIND or task == "basket_completion"

    def fit(self, ctx: TrainContext) -> ModelRanker:
        self.ctx = ctx
        if not self._prefit:
            from training.pipeline import fit_tuned  # the pipeline itself uses this ranker to tune

            self.recommender = fit_tuned(ctx.transactions, ctx.items_df, ctx.packages, self.config, tune=self.tune)
        return self

    def cf_params(self) -> CFParams:
        """The CF settings the fitted model uses (to refit it elsewhere with the same recipe)."""
        p = self.recommender.meta["params"]
        return CFParams(p["algorithm"], p["factors"], p["regularization"], p["alpha"], p["iterations"], p["seed"], p["threads"])

    def refit(self, ctx: TrainContext) -> ModelRanker:
        """A ranker with the same recipe (CF settings, weights; no tuning) fitted on `ctx`: how the
        harness re-trains everyone without held-out items. A registered model cannot be refitted.

        The harness scores a refit on HOLDOUT_TASKS only, so the refit answers those alone and,
        when they are all service tasks, fits only what services are scored from."""
        if self.registered:
            raise ValueError("a registered model cannot be refitted")
        other = ModelRanker(self.config, tune=False)
        other.ctx = ctx
        other.only = HOLDOUT_TASKS
        other.recommender = fit_recommender(ctx.transactions, ctx.items_df, ctx.packages, self.config,
                                            cf_params=self.cf_params(), weights=self.recommender.weights,
                                            light=True, services_only=HOLDOUT_TASKS <= {"service_package"})
        return other

    def rank(self, queries: TaskQueries, k: int) -> np.ndarray:
        rec = self.recommender
        with threadpool_limits(1, "blas"):  # per-query products are tiny: BLAS threads only cost
            return self._rank(rec, queries, k)

    def _rank(self, rec: Recommender, queries: TaskQueries, k: int) -> np.ndarray:
        ctx = self.ctx
        to_ctx, to_rec = self._index_maps(rec, ctx)
        out = np.full((len(queries), k), -1, dtype=np.int64)
        client_ids = ctx.clients.ids
        for row in range(len(queries)):
            client = str(client_ids[queries.clients[row]])
            if queries.kind == "basket":
                visible = to_rec[queries.history[row].indices]
                got = rec.cart_complete(visible[visible >= 0], rec._client_pos.get(client), k,
                                        np.empty(0, np.int64), explain=False)
            else:
                got = rec.suggest(client, TASK_KIND[queries.task], k, explain=False)
            idx = [to_ctx[s["item_id"]] for s in got if "items" not in s and s["item_id"] in to_ctx][:k]
            out[row, : len(idx)] = idx
        return out

    def _index_maps(self, rec: Recommender, ctx: TrainContext) -> tuple[dict[str, int], np.ndarray]:
        """(model item id -> ctx item index, ctx item index -> model item index or -1), built once
        per (model, context): a pandas lookup per answer cost as much as the answer itself."""
        cached = self._maps
        if cached is not None and cached[0] is rec and cached[1] is ctx:
            return cached[2], cached[3]
        positions = ctx.items.index_of(rec.item_ids)
        known = np.flatnonzero(positions >= 0)
        to_ctx = dict(zip(rec.item_ids[known].tolist(), positions[known].tolist(), strict=True))
        to_rec = np.full(len(ctx.items), -1, dtype=np.int64)
        to_rec[positions[known]] = known
        self._maps = (rec, ctx, to_ctx, to_rec)
        return to_ctx, to_rec
