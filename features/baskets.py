"""Baskets and what is bought together: the evidence behind cross-sell and cart suggestions.

Co-occurrence needs no client history at all, so it answers for anonymous carts and new clients,
and its numbers (support, confidence, lift) are ones a sales manager can check by hand.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.matrix import IdIndex
from features.schema import ITEM, ORDER, QUANTITY


def basket_matrix(transactions: pd.DataFrame, items: IdIndex,
                 codes: np.ndarray | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
    """orders x items binary (float32) matrix of positive lines (quantity > 0), plus the order ids (np.ndarray of str) for the rows. Items not in the index ignored; empty baskets dropped.

    Rows follow the sorted order ids. Returned lines are left out: a basket is what the client
    chose to buy together, and a return is no such choice. `codes`: the lines' item positions,
    when the caller already has them.
    """
    cols = items.index_of(transactions[ITEM]) if codes is None else np.asarray(codes)
    if len(cols) != len(transactions):
        raise ValueError("codes must give one item position per line")
    quantity = transactions[QUANTITY].to_numpy(dtype=np.float64, na_value=np.nan)
    keep = (cols >= 0) & (quantity > 0)
    rows, order_ids = pd.factorize(transactions[ORDER][keep], sort=True)
    baskets = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols[keep])),
        shape=(len(order_ids), len(items)),
        dtype=np.float32,
    )
    baskets.sum_duplicates()
    baskets.data[:] = 1.0
    return baskets, np.asarray(order_ids, dtype=object)


@dataclass(frozen=True)
class Cooccurrence:
    """How often items are bought together, with the association-rule measures derived from it.

    Which measure to rank cross-sell suggestions by is a trade-off between safe and surprising:
    - support: share of all baskets holding both; favours bestsellers, the same suggestion for all.
    - confidence: P(j in basket | i in basket); predictable, still drawn towards popular j.
    - lift: confidence divided by j's base rate; finds genuine affinities but favours rare pairs
      (two items bought once, together, get the highest lift of all). On Complete Journey plain
      lift gave HR@10 0.008 against 0.098 for confidence.
    - shrunk_confidence: confidence with a prior that damps antecedents seen in few baskets.
    """

    counts: sp.csr_matrix  # items x items, baskets containing both i and j; diagonal zero; float32
    item_baskets: np.ndarray  # baskets containing each item (float64, len n_items)
    n_baskets: int

    def support(self) -> sp.csr_matrix:
        """counts / n_baskets: how common the pair is overall."""
        return self._scaled(lambda rows, cols: np.full(len(rows), 1.0 / max(self.n_baskets, 1)))

    def confidence(self) -> sp.csr_matrix:
        """Row i: P(j in basket | i in basket) = counts[i, j] / item_baskets[i]."""
        return self._scaled(lambda rows, cols: 1.0 / self.item_baskets[rows])

    def lift(self) -> sp.csr_matrix:
        """confidence[i, j] / (item_baskets[j] / n_baskets): how much i raises the odds of j (1 = independent)."""
        return self._scaled(lambda rows, cols: self.n_baskets / (self.item_baskets[rows] * self.item_baskets[cols]))

    def shrunk_confidence(self, shrinkage: float = 10.0) -> sp.csr_matrix:
        """counts[i, j] / (item_baskets[i] + shrinkage): rare antecedents do not dominate.

        An item seen in 2 baskets, both with j, has confidence 1.0 and would outrank an item seen in
        1,000 baskets, 600 with j. Adding `shrinkage` pseudo-baskets without j gives 2/12 = 0.17
        against 600/1010 = 0.59: the evidence-backed rule wins, while for well-known antecedents
        the value stays close to plain confidence. Plain lift goes the other way and favours rare
        pairs, which is why it ranked far worse on Complete Journey (HR@10 0.008 against 0.098
        for confidence). Larger shrinkage is safer but more popularity-driven.
        """
        if shrinkage < 0:
            raise ValueError("shrinkage must be non-negative")
        return self._scaled(lambda rows, cols: 1.0 / (self.item_baskets[rows] + shrinkage))

    def _scaled(self, factor: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> sp.csr_matrix:
        """A copy of counts with every stored entry multiplied by factor(rows, cols) of its row and
        column (float64), `SCALE_CHUNK` entries at a time: with tens of millions of pairs, whole
        row, factor and product arrays took more memory than the matrix itself."""
        counts = self.counts
        data = np.empty(counts.nnz, dtype=np.float32)
        for lo in range(0, counts.nnz, SCALE_CHUNK):
            hi = min(lo + SCALE_CHUNK, counts.nnz)
            first, last = np.searchsorted(counts.indptr, [lo, hi - 1], side="right") - 1
            starts = np.clip(counts.indptr[first:last + 1], lo, hi)
            ends = np.clip(counts.indptr[first + 1:last + 2], lo, hi)
            rows = np.repeat(np.arange(first, last + 1), ends - starts)
            data[lo:hi] = counts.data[lo:hi] * factor(rows, counts.indices[lo:hi])
        return sp.csr_matrix((data, counts.indices.copy(), counts.indptr.copy()), shape=counts.shape)


#: Entries `Cooccurrence._scaled` computes at once (about 100 MB of temporaries).
SCALE_CHUNK = 1 << 22


def cooccurrence(baskets: sp.csr_matrix, min_count: int = 1) -> Cooccurrence:
    """Sparse B^T B with the diagonal removed and pairs seen fewer than min_count times dropped.

    `min_count` is the cheapest guard against coincidences: a pair seen once is noise, and
    dropping it also keeps the matrix small enough to serve.
    """
    if min_count < 1:
        raise ValueError("min_count must be at least 1")
    binary = sp.csr_matrix(baskets, dtype=np.float32, copy=True)
    binary.sum_duplicates()
    binary.eliminate_zeros()
    binary.data[:] = 1.0
    item_baskets = np.asarray(binary.sum(axis=0), dtype=np.float64).ravel()

    together = (binary.T.tocsr() @ binary).tocsr()
    together.sort_indices()
    # int32 rows (items fit): this array and its masked copy are as long as the pair list
    rows = np.repeat(np.arange(together.shape[0], dtype=np.int32), np.diff(together.indptr))
    keep = (together.indices != rows) & (together.data >= min_count)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=together.shape[0]))])
    del rows
    counts = sp.csr_matrix(
        (together.data[keep].astype(np.float32, copy=False), together.indices[keep], indptr), shape=together.shape
    )
    return Cooccurrence(counts=counts, item_baskets=item_baskets, n_baskets=int(binary.shape[0]))
