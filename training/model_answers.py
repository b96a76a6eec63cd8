"""The model's answers to the evaluation's task queries, through the very methods the service calls.

Used by the evaluation's "model" ranker (`training.model_ranker`) and by tuning, which scores
candidate blend weights the same way. A model fitted on a `TrainContext` shares its item and
client indexes, so its answers are read as they are; only a model fitted elsewhere (the
registered champion) needs its item ids translated, once per context (`IndexMap`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from scoring.recommender import Recommender
from training.context import TrainContext
from training.tasks import TaskQueries

#: The service kind that answers each client task (basket_completion is the cart widget).
TASK_KIND = {"cross_sell": "cross_sell", "next_basket": "next_basket", "upsell": "upsell", "upsell_price": "upsell",
             "service_package": "service_package"}


@dataclass(frozen=True)
class IndexMap:
    """How a model's item indexes read in a context: the same numbering (`to_rec` None), or a
    translation for a model fitted on other data."""

    to_ctx: Mapping[str, int]
    to_rec: np.ndarray | None

    @classmethod
    def between(cls, rec: Recommender, ctx: TrainContext) -> IndexMap:
        """Built once per (model, context): a pandas lookup per answer cost as much as the answer."""
        if len(rec.item_ids) == len(ctx.items) and np.array_equal(rec.item_ids, ctx.items.ids):
            return cls(rec._item_pos, None)
        positions = ctx.items.index_of(rec.item_ids)
        known = np.flatnonzero(positions >= 0)
        to_rec = np.full(len(ctx.items), -1, dtype=np.int64)
        to_rec[positions[known]] = known
        return cls(dict(zip(rec.item_ids[known].tolist(), positions[known].tolist(), strict=True)), to_rec)

    def cart(self, items: np.ndarray) -> np.ndarray:
        """Context item indexes as the model's (items it does not know dropped)."""
        if self.to_rec is None:
            return items
        mapped = self.to_rec[items]
        return mapped[mapped >= 0]


def rank_queries(rec: Recommender, ctx: TrainContext, queries: TaskQueries, k: int,
                 index: IndexMap | None = None, *, objective: str = "relevance",
                 probabilities: np.ndarray | None = None, kind: str | None = None) -> np.ndarray:
    """len(queries) x k item indexes of `ctx`, best first, -1 padded: the model's answer per row.

    Client tasks ask `suggest` for the task's kind (ranked by `objective`); baskets ask
    `cart_complete` with the visible items. Bundles and packages (answers holding several items)
    are no single item: skipped, and
    asked for on top of the k (packages rank among the services: with the nine demo packages a
    list of ten held 4.5 services on average on the 400-household sample, so the task scored
    how far packages crowd the list, not how well the services are ranked). `probabilities`, when given (len(queries) x k float), receives
    each answer's probability of purchase from its breakdown (NaN where it has none). `kind`
    overrides the task's kind (`TASK_KIND`): replenishment answers next_basket's queries too."""
    index = index or IndexMap.between(rec, ctx)
    out = np.full((len(queries), k), -1, dtype=np.int64)
    wanted = k + (rec.catalogue.n_packages if queries.task == "service_package" else 0)
    client_ids = ctx.clients.ids
    with threadpool_limits(1, "blas"):  # per-query products are tiny: BLAS threads only cost
        for row in range(len(queries)):
            client = str(client_ids[queries.clients[row]])
            if queries.kind == "basket":
                got = rec.cart_complete(index.cart(queries.history[row].indices), rec._client_pos.get(client), k,
                                        np.empty(0, np.int64), explain=False)
            else:
                got = rec.suggest(client, kind or TASK_KIND[queries.task], wanted, objective=objective, explain=False)
            kept = [s for s in got if "items" not in s and s["item_id"] in index.to_ctx][:k]
            out[row, : len(kept)] = [index.to_ctx[s["item_id"]] for s in kept]
            if probabilities is not None:
                chance = [(s.get("breakdown") or {}).get("probability") for s in kept]
                probabilities[row, : len(kept)] = [np.nan if c is None else c for c in chance]
    return out


def reweighted(rec: Recommender, weights: Mapping[str, float]) -> Recommender:
    """A view of `rec` (arrays shared) that blends with `weights` on top of its own: tuning tries
    weights on views and never changes the model it was given. The view answers by the exact
    path: candidate lists stored with the model were ranked under its own weights."""
    view = rec.without_candidates()
    view.weights = {**rec.weights, **weights}
    return view
