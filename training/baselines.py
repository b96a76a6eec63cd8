"""Baseline rankers: the bar a model has to clear before it is worth serving.

Each implements `training.ranker.Ranker` (re-exported here) on the shared rules of
`training.ranker.ScoringRanker`: exclusions and candidates honoured, popularity fill when the
evidence runs out. The published baselines (EASE, SAR, TIFU-KNN) live in their own modules and are
registered in `default_rankers`.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import CosineRecommender
from implicit.utils import ParameterWarning

from features.baskets import basket_matrix, cooccurrence
from features.matrix import confidence_matrix
from training.baseline_tuning import DEFAULT_SPLIT, InnerSplit
from training.config import TrainConfig
from training.context import TrainContext
from training.ease import Ease
from training.models.toplists import keep_top_per_row
from training.ranker import BATCH_SIZE, Ranker, ScoringRanker, query_rows
from training.sar import Sar
from training.tasks import CLIENT_TASKS, PRICE_TOLERANCE, TaskQueries, max_paid
from training.tifu_knn import TifuKNN

__all__ = ["BATCH_SIZE", "CoOccurrence", "ItemKNN", "Popularity", "PricierPopular", "Ranker", "Repurchase",
           "ScoringRanker", "default_rankers", "query_rows", "repurchase_order"]

log = logging.getLogger(__name__)


class Popularity(ScoringRanker):
    """The items bought by the most distinct clients in training: the same list for everyone.

    by="orders" counts purchase occasions instead: closer to what fills a cart (basket_completion
    HR@10 0.043 against 0.035 on Complete Journey), further from what most clients want.
    """

    name = "popularity"

    def __init__(self, by: str = "clients") -> None:
        if by not in ("clients", "orders"):
            raise ValueError(f"popularity counts 'clients' or 'orders', not {by!r}")
        self.by = by

    def _fit(self, ctx: TrainContext) -> None:
        counts = ctx.popularity if self.by == "clients" else np.asarray(ctx.purchases.sum(axis=0)).ravel()
        self.counts = counts.astype(np.float32)

    def score(self, queries: TaskQueries, rows: slice) -> np.ndarray:
        return np.broadcast_to(self.counts, (rows.stop - rows.start, len(self.counts)))


class Repurchase(ScoringRanker):
    """The client's own most frequent items (distinct orders), ties broken by recency, then by
    popularity (distinct clients), then by the one tie rule (lower index).

    Grocery and consumables are mostly bought again: this is the bar for next_basket. For
    cross_sell the client's own items are excluded, so it falls back to popularity. Popularity
    matters where a history is one large order (a wholesaler's): every item ties on count and
    recency, and a baseline must be the honest best of its kind, not chance.
    """

    name = "repurchase"
    tasks = CLIENT_TASKS

    def score(self, queries: TaskQueries, rows: slice) -> np.ndarray:
        counts = sp.csr_matrix(queries.history[rows], dtype=np.float64)
        counts.eliminate_zeros()
        counts.sort_indices()
        row_of = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        recency = np.asarray(query_rows(self.ctx.recency, queries, rows)[row_of, counts.indices]).ravel()
        order = repurchase_order(row_of, counts.data, recency, self.ctx.popularity[counts.indices], counts.indices)
        return sp.csr_matrix((order, counts.indices, counts.indptr), shape=counts.shape).toarray()


def repurchase_order(row_of: np.ndarray, count: np.ndarray, recency: np.ndarray, popularity: np.ndarray,
                     column: np.ndarray) -> np.ndarray:
    """Per entry, its place within its row (1 = weakest) when sorted by count, then recency,
    then popularity, then the lower column: scores that keep the whole order exactly in float32
    (a sum of weighted keys would lose the finer ones)."""
    ranked = np.lexsort((-column, popularity, recency, count, row_of))
    starts = np.searchsorted(row_of[ranked], row_of[ranked], side="left")
    place = np.empty(len(ranked), dtype=np.float32)
    place[ranked] = (np.arange(len(ranked)) - starts + 1).astype(np.float32)
    return place


class ItemKNN(ScoringRanker):
    """implicit's item-item cosine neighbours on the client x item confidence matrix.

    Scores are implicit's own: `user_items @ similarity` (what `CosineRecommender.recommend`
    computes item by item), batched here so that exclusion, candidates and the popularity fill
    follow the shared rules. A basket is scored as a user whose items are the cart.

    weighting="log" (log1p of purchase occasions): on Complete Journey "bm25" input tied on
    cross_sell but fell to NDCG 0.07 on next_basket (cosine on top of idf favours rare items),
    raw counts lost on every task.
    """

    name = "item_knn"

    def __init__(self, neighbours: int = 100, weighting: str = "log", num_threads: int = 0) -> None:
        self.neighbours = neighbours
        self.weighting = weighting
        self.num_threads = num_threads

    def _fit(self, ctx: TrainContext) -> None:
        self.confidence = sp.csr_matrix(
            confidence_matrix(ctx.transactions, ctx.clients, ctx.items, weighting=self.weighting), dtype=np.float32
        )
        self.model = CosineRecommender(K=self.neighbours, num_threads=self.num_threads)
        with warnings.catch_warnings():
            # implicit's own normalize() hands all_pairs_knn a COO matrix and then warns about it.
            warnings.filterwarnings("ignore", category=ParameterWarning)
            self.model.fit(self.confidence, show_progress=False)
        self.similarity = sp.csr_matrix(self.model.similarity, dtype=np.float32)
        log.debug("item_knn: %d neighbour pairs over %d items", self.similarity.nnz, self.similarity.shape[0])

    def score(self, queries: TaskQueries, rows: slice) -> np.ndarray:
        return (query_rows(self.confidence, queries, rows) @ self.similarity).toarray()


class CoOccurrence(ScoringRanker):
    """Sum of the association rows (confidence P(j | i) by default) of the items in the cart, or
    of the client's training items for client tasks. No client model: it serves anonymous carts."""

    name = "cooccurrence"

    def __init__(self, measure: str = "confidence", min_count: int = 1, neighbours: int | None = 500) -> None:
        if measure not in ("confidence", "lift", "shrunk_confidence", "support"):
            raise ValueError(f"unknown co-occurrence measure {measure!r}")
        self.measure = measure
        self.min_count = min_count
        self.neighbours = neighbours

    def _fit(self, ctx: TrainContext) -> None:
        baskets, _ = basket_matrix(ctx.transactions, ctx.items)
        association = sp.csr_matrix(getattr(cooccurrence(baskets, min_count=self.min_count), self.measure)())
        if self.neighbours is not None:
            association = keep_top_per_row(association, self.neighbours)
        self.association = association
        log.debug("cooccurrence: %d item pairs kept (%s)", association.nnz, self.measure)

    def score(self, queries: TaskQueries, rows: slice) -> np.ndarray:
        seeds = query_rows(self.ctx.purchases, queries, rows)
        binary = sp.csr_matrix((np.ones_like(seeds.data), seeds.indices, seeds.indptr), shape=seeds.shape)
        return (binary @ self.association).toarray()


class PricierPopular(ScoringRanker):
    """For each subcategory the client (or cart) already has, the popular items priced above the
    most they paid there: the simplest upsell rule a merchandiser would write by hand."""

    name = "pricier_popular"
    tasks = frozenset({"upsell", "upsell_price", "basket_completion"})

    def answers(self, task: str) -> bool:
        has_prices = getattr(self, "ctx", None) is None or bool(
            len(self.ctx.subcategories) and np.isfinite(self.ctx.item_price).any()
        )
        return task in self.tasks and has_prices

    def _fit(self, ctx: TrainContext) -> None:
        # One extra, always-NaN subcategory column stands for "no subcategory": never pricier.
        self._no_subcategory = len(ctx.subcategories)
        ceilings = max_paid(ctx.transactions, ctx.unit_prices, ctx.subcategory_of)
        self.ceilings = np.full((len(ctx.clients), self._no_subcategory + 1), np.nan)
        rows = ctx.clients.index_of(ceilings["client_id"])
        cols = np.searchsorted(ctx.subcategories.astype(str), ceilings["subcategory"].to_numpy(dtype=str))
        self.ceilings[rows, cols] = ceilings["max_paid"].to_numpy(dtype=np.float64)
        self._column = np.where(ctx.item_subcategory >= 0, ctx.item_subcategory, self._no_subcategory)
        self._price = np.nan_to_num(ctx.item_price, nan=-np.inf) - PRICE_TOLERANCE
        self._popularity = ctx.popularity.astype(np.float32)

    def score(self, queries: TaskQueries, rows: slice) -> np.ndarray:
        ceilings = self._cart_ceilings(queries, rows) if queries.kind == "basket" else (
            self.ceilings[queries.clients[rows]])
        per_item = np.take(ceilings, self._column, axis=1)  # NaN: the row never bought in that subcategory
        return np.where(self._price > per_item, self._popularity, np.float32(0.0))

    def _cart_ceilings(self, queries: TaskQueries, rows: slice) -> np.ndarray:
        """rows x subcategories: the highest unit price among the cart's items in each."""
        cart = queries.history[rows]
        row_of = np.repeat(np.arange(cart.shape[0]), np.diff(cart.indptr))
        subcategory = self.ctx.item_subcategory[cart.indices]
        price = self.ctx.item_price[cart.indices]
        known = (subcategory >= 0) & np.isfinite(price)
        ceilings = np.full((cart.shape[0], self.ceilings.shape[1]), np.nan)
        np.fmax.at(ceilings, (row_of[known], subcategory[known]), price[known])
        return ceilings


def default_rankers(published: bool = True, config: TrainConfig | None = None) -> list[Ranker]:
    """The baselines an evaluation reports, in display order. `published=False` leaves out the
    published methods (EASE, SAR, TIFU-KNN): `train` compares with the fast baselines only (its
    gate needs popularity), because SAR alone adds minutes per fit on a full catalogue, while
    `python -m training evaluate` reports them all. The published ones choose their settings on
    the inner split `config` gives the model (TRAIN_TUNE_DAYS, TRAIN_SEED; TrainConfig's
    defaults when None)."""
    fast: list[Ranker] = [Popularity(), Repurchase(), ItemKNN(), CoOccurrence(), PricierPopular()]
    if not published:
        return fast
    split = DEFAULT_SPLIT if config is None else InnerSplit.of(config)
    return [*fast, Ease(split=split), Sar(split=split), TifuKNN(split=split)]
