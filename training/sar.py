"""SAR (Microsoft Recommenders' "Smart Adaptive Recommendations"): item-item similarity from
co-occurrence over clients, applied to each client's time-decayed affinity. A strong published
baseline for the evaluation to measure the model against.

    C = X^T X           (X: binary client x item; c_ii = clients who bought i)
    S = jaccard:  c_ij / (c_ii + c_jj - c_ij)     lift: c_ij / (c_ii c_jj)
    A = sum over a client's purchase occasions of 2^(-age / half-life)   (half-life 30 days)
    scores = A S

As in SAR the diagonal stays in S (an item is most similar to itself), so what a client buys
often and lately ranks high where the task allows it. C is never formed whole: it is computed a
block of items at a time and each item keeps only its `neighbours` strongest similarities
(`training.models.toplists.keep_top_per_row`), so it runs on a 68.5k-item catalogue.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.schema import ORDER, TIMESTAMP
from training.context import TrainContext, csr
from training.models.toplists import keep_top_per_row
from training.ranker import ScoringRanker, query_rows
from training.tasks import TaskQueries

log = logging.getLogger(__name__)

#: SAR's default time-decay half-life.
HALF_LIFE_DAYS = 30.0

#: Similar items kept per item.
NEIGHBOURS = 200

#: Items whose co-occurrence row is computed at once (a block's rows can each hold every item).
_BLOCK = 256

SIMILARITIES = ("jaccard", "lift")


def similarity_rows(cooc: sp.csr_matrix, rows: np.ndarray, counts: np.ndarray, similarity: str) -> sp.csr_matrix:
    """SAR's similarity for a block of co-occurrence rows (items `rows`, all columns); `counts`
    is the diagonal of C for every item."""
    cooc = sp.csr_matrix(cooc, dtype=np.float64, copy=True)
    row_of = rows[np.repeat(np.arange(cooc.shape[0]), np.diff(cooc.indptr))]
    c_i, c_j = counts[row_of], counts[cooc.indices]
    if similarity == "jaccard":
        cooc.data = cooc.data / (c_i + c_j - cooc.data)
    else:
        cooc.data = cooc.data / (c_i * c_j)
    return sp.csr_matrix(cooc, dtype=np.float32)


def item_similarity(binary: sp.csr_matrix, similarity: str = "jaccard", neighbours: int = NEIGHBOURS) -> sp.csr_matrix:
    """items x items: each item's similarity to itself and its `neighbours` - 1 strongest others."""
    if similarity not in SIMILARITIES:
        raise ValueError(f"sar similarity is one of {SIMILARITIES}, not {similarity!r}")
    binary = sp.csr_matrix(binary, dtype=np.float32)
    by_item = binary.T.tocsr()
    counts = np.asarray(binary.sum(axis=0), dtype=np.float64).ravel()
    blocks = []
    for start in range(0, by_item.shape[0], _BLOCK):
        rows = np.arange(start, min(start + _BLOCK, by_item.shape[0]))
        block = similarity_rows(by_item[rows] @ binary, rows, counts, similarity).tocoo()
        own = block.row + start == block.col
        # The diagonal is always kept: many rare items tie with it at jaccard 1, and the cut's
        # tie rule (lower index) would otherwise drop an item's similarity to itself.
        others = keep_top_per_row(sp.csr_matrix((block.data[~own], (block.row[~own], block.col[~own])),
                                                shape=block.shape), max(neighbours - 1, 1))
        blocks.append(others + sp.csr_matrix((block.data[own], (block.row[own], block.col[own])), shape=block.shape))
    return sp.csr_matrix(sp.vstack(blocks, format="csr"), dtype=np.float32)


def decayed_affinity(ctx: TrainContext, half_life_days: float = HALF_LIFE_DAYS) -> sp.csr_matrix:
    """clients x items: each purchase occasion (distinct order with a positive line) weighs
    2^(-age in days / half-life), summed; age is counted back from the training part's end."""
    lines = pd.DataFrame({"row": ctx.line_client[ctx.positive], "col": ctx.line_item[ctx.positive],
                          "order": pd.factorize(ctx.transactions.loc[ctx.positive, ORDER])[0],
                          "when": ctx.transactions.loc[ctx.positive, TIMESTAMP].to_numpy()})
    occasions = lines.groupby(["row", "col", "order"], sort=False)["when"].max().reset_index()
    age_days = ((ctx.now - occasions["when"]) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
    weight = np.exp2(-np.maximum(age_days, 0.0) / half_life_days)
    return csr(occasions["row"].to_numpy(), occasions["col"].to_numpy(), weight, len(ctx.clients), len(ctx.items))


class Sar(ScoringRanker):
    """SAR with `similarity` (default jaccard, SAR's own default; not tuned here), a 30-day
    half-life on affinity and the 200 most similar items kept per item.

    Clients are scored by their decayed affinity (cut to what the task's history shows); a cart
    has no time, so each of its items weighs 1.
    """

    name = "sar"

    def __init__(self, similarity: str = "jaccard", neighbours: int = NEIGHBOURS,
                 half_life_days: float = HALF_LIFE_DAYS) -> None:
        if similarity not in SIMILARITIES:
            raise ValueError(f"sar similarity is one of {SIMILARITIES}, not {similarity!r}")
        self.similarity_name = similarity
        self.neighbours = neighbours
        self.half_life_days = half_life_days

    def _fit(self, ctx: TrainContext) -> None:
        purchases = ctx.purchases
        binary = sp.csr_matrix((np.ones(purchases.nnz, dtype=np.float32), purchases.indices, purchases.indptr),
                               shape=purchases.shape)
        self.similarity = item_similarity(binary, self.similarity_name, self.neighbours)
        self.affinity = sp.csr_matrix(decayed_affinity(ctx, self.half_life_days), dtype=np.float32)
        log.info("sar: %s similarity, %d item pairs kept (%d per item at most), half-life %g days",
                 self.similarity_name, self.similarity.nnz, self.neighbours, self.half_life_days)

    def score(self, queries: TaskQueries, rows: slice) -> np.ndarray:
        return (query_rows(self.affinity, queries, rows) @ self.similarity).toarray()
