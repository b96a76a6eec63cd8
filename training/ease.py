"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): a strong published
baseline, in closed form, for the evaluation to measure the model against.

    B = I - P diag(1 / diag(P)),  P = (X^T X + lambda I)^-1,  diag(B) = 0,  scores = x_row B

on the binary client x item purchase matrix X of the training part. B is dense items x items, so
at Complete Journey's 68.5k items it would take 37 GB in float64: the model is restricted to the
`MAX_ITEMS` most-bought items (distinct clients), in float32 (8,000 items: 256 MB per matrix).
Items outside the cut-off are never returned by this ranker: it knows nothing about them.

lambda is chosen on the inner split (`training.baseline_tuning`, the model's own inner split) from
`L2_GRID` by cross_sell NDCG@10, the task EASE is the strongest baseline of; Steck tunes it per
data set too. Cost: one Gram matrix and one 8,000 x 8,000 inverse per candidate on the inner
training part, then one more for the fit: on Complete Journey, BLAS on one thread as the parallel
evaluation runs it and the 2 cores shared with other jobs, about 50 s per candidate: 260 s for
the choice and the fit, of which the fit alone 23 s (memory: one candidate's 256 MB B at a time).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from scoring.ranking import top_indices
from training.baseline_tuning import DEFAULT_SPLIT, Choice, InnerSplit, TunedOnInner, choose_on_inner
from training.context import TrainContext
from training.ranker import ScoringRanker
from training.tasks import TaskQueries

log = logging.getLogger(__name__)

#: The item cut-off: the most-bought items EASE models. 8,000 keeps P and B at 256 MB each in
#: float32 and the inverse under a minute on 2 cores; the rest of a 68.5k catalogue is the long tail.
MAX_ITEMS = 8_000

#: L2 weight Steck used on ML-20M: the first candidate, kept unless another scores better.
DEFAULT_L2 = 500.0
#: The L2 weights tried on the inner split (Steck's 500 first: it wins ties).
L2_GRID = (DEFAULT_L2, 100.0, 250.0, 1000.0, 2000.0)

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


class Ease(TunedOnInner[float], ScoringRanker):
    """EASE over the `max_items` most-bought items (default `MAX_ITEMS` = 8,000), L2 `l2`, or
    when `l2` is None the best of `candidates` (`L2_GRID`) on the inner split.

    A row's scores are its binary history (clients: their training items; carts: the cart) times B.
    Items outside the cut-off score -inf: they are never returned, even as popularity fill. Within
    it, non-positive scores are "no opinion" as for every baseline and are filled by popularity.
    """

    name = "ease"

    def __init__(self, l2: float | None = None, max_items: int = MAX_ITEMS, candidates: tuple[float, ...] = L2_GRID,
                 split: InnerSplit = DEFAULT_SPLIT) -> None:
        if min((l2,) if l2 is not None else candidates) <= 0 or max_items < 1:
            raise ValueError(f"ease needs l2 > 0 and max_items >= 1, got {l2 or candidates}, {max_items}")
        self.fixed_l2 = l2
        self.max_items = max_items
        self.candidates = candidates
        self.split = split

    def with_setting(self, setting: float) -> Ease:
        return Ease(setting, self.max_items, split=self.split)

    def describe_setting(self, setting: float) -> dict[str, Any]:
        return {"l2": setting, "max_items": self.max_items}

    @property
    def l2(self) -> float:
        return self.choice.chosen

    def _fit(self, ctx: TrainContext) -> None:
        self.choice = Choice(self.fixed_l2) if self.fixed_l2 is not None else choose_on_inner(
            ctx, self.candidates, lambda l2: f"{l2:g}", self._candidates, "cross_sell", "ease", self.split)
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

    def _candidates(self, inner: TrainContext) -> Iterator[tuple[float, Ease]]:
        for l2 in self.candidates:
            yield l2, Ease(l2, self.max_items).fit(inner)

    def score(self, queries: TaskQueries, rows: slice) -> np.ndarray:
        history = sp.csr_matrix(queries.history[rows][:, self.modelled], dtype=np.float32)
        history.data[:] = 1.0
        out = np.zeros((history.shape[0], len(self.in_cutoff)), dtype=np.float32)
        out[:, self.modelled] = np.asarray(history @ self.weights)
        return out

    def _forbid(self, scores: np.ndarray, queries: TaskQueries, rows: slice) -> None:
        super()._forbid(scores, queries, rows)
        scores[:, ~self.in_cutoff] = -np.inf
