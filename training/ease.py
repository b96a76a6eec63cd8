"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): a strong published
baseline, in closed form, for the evaluation to measure the model against.

    B = I - P diag(1 / diag(P)),  P = (X^T X + lambda I)^-1,  diag(B) = 0,  scores = x_row B

on the binary client x item purchase matrix X of the training part. B is dense items x items, so
at Complete Journey's 68.5k items it would take 37 GB in float64: the model is restricted to the
`MAX_ITEMS` most-bought items (distinct clients), in float32 (8,000 items: 256 MB per matrix).
Items outside the cut-off are never returned by this ranker: it knows nothing about them.
"""
from __future__ import annotations

import logging

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from scoring.ranking import top_indices
from training.context import TrainContext
from training.ranker import ScoringRanker
from training.tasks import TaskQueries

log = logging.getLogger(__name__)

#: The item cut-off: the most-bought items EASE models. 8,000 keeps P and B at 256 MB each in
#: float32 and the inverse under a minute on 2 cores; the rest of a 68.5k catalogue is the long tail.
MAX_ITEMS = 8_000

#: L2 weight. Steck tuned it per data set and used 500 on ML-20M; not tuned here (fixed, documented).
DEFAULT_L2 = 500.0

#: Clients densified at once while forming the Gram matrix X^T X.
_GRAM_CHUNK = 4_096


def ease_weights(binary: sp.csr_matrix, l2: float) -> np.ndarray:
    """EASE's closed-form item x item weights B (float32, zero diagonal) for a binary rows x items matrix."""
    n = binary.shape[1]
    gram = np.zeros((n, n), dtype=np.float32)
    for start in range(0, binary.shape[0], _GRAM_CHUNK):
        block = binary[start:start + _GRAM_CHUNK].toarray().astype(np.float32, copy=False)
        gram += block.T @ block
    gram[np.diag_indices(n)] += np.float32(l2)
    precision = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)  # P, symmetric
    del gram
    precision /= -np.diag(precision)[np.newaxis, :]  # B_ij = -P_ij / P_jj
    np.fill_diagonal(precision, 0.0)
    return precision.astype(np.float32, copy=False)


class Ease(ScoringRanker):
    """EASE over the `max_items` most-bought items (default `MAX_ITEMS` = 8,000), L2 `l2` (500).

    A row's scores are its binary history (clients: their training items; carts: the cart) times B.
    Items outside the cut-off score -inf: they are never returned, even as popularity fill. Within
    it, non-positive scores are "no opinion" as for every baseline and are filled by popularity.
    """

    name = "ease"

    def __init__(self, l2: float = DEFAULT_L2, max_items: int = MAX_ITEMS) -> None:
        if l2 <= 0 or max_items < 1:
            raise ValueError(f"ease needs l2 > 0 and max_items >= 1, got {l2}, {max_items}")
        self.l2 = l2
        self.max_items = max_items

    def _fit(self, ctx: TrainContext) -> None:
        bought = np.flatnonzero(ctx.popularity > 0)
        keep = bought[top_indices(ctx.popularity[bought], min(self.max_items, bought.size))]
        self.modelled = np.sort(keep)
        self.in_cutoff = np.zeros(len(ctx.items), dtype=bool)
        self.in_cutoff[self.modelled] = True
        purchases = sp.csr_matrix(ctx.purchases[:, self.modelled])
        binary = sp.csr_matrix((np.ones(purchases.nnz, dtype=np.float32), purchases.indices, purchases.indptr),
                               shape=purchases.shape)
        binary.eliminate_zeros()
        self.weights = ease_weights(binary, self.l2)
        log.info("ease: %d of %d items modelled (cut-off: the %d most-bought), l2=%g",
                 self.modelled.size, len(ctx.items), self.max_items, self.l2)

    def score(self, queries: TaskQueries, rows: slice) -> np.ndarray:
        history = sp.csr_matrix(queries.history[rows][:, self.modelled], dtype=np.float32)
        history.data[:] = 1.0
        out = np.zeros((history.shape[0], len(self.in_cutoff)), dtype=np.float32)
        out[:, self.modelled] = np.asarray(history @ self.weights)
        return out

    def _forbid(self, scores: np.ndarray, queries: TaskQueries, rows: slice) -> None:
        super()._forbid(scores, queries, rows)
        scores[:, ~self.in_cutoff] = -np.inf
