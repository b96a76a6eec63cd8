"""Collaborative filtering with `implicit`: client taste and item factors from purchase evidence.

Hyper-parameters are chosen on an inner time split of the training data (the last
`tune_days` of it), never on the test: the test stays a fair exam.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from features.matrix import confidence_matrix
from features.schema import CLIENT, ITEM, QUANTITY
from scoring.ranking import top_indices_per_row
from training.context import TrainContext
from training.metrics import score_rankings

log = logging.getLogger(__name__)


class ModelFitError(RuntimeError):
    """Fitting produced an unusable model (NaN factors, nothing learnt)."""


@dataclass(frozen=True)
class CFParams:
    algorithm: str = "als"
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 2.0
    iterations: int = 15
    seed: int = 0
    threads: int = 0


def fit_cf(user_items: sp.csr_matrix, params: CFParams, show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(client_factors, item_factors) as float32 numpy arrays; raises ModelFitError on NaN."""
    # implicit brings its own OpenBLAS: loaded first, so that the limit below covers it too
    import implicit.cpu.als  # noqa: F401
    with threadpool_limits(1, "blas"):  # implicit runs its own threads: BLAS threads would over-subscribe
        return _fit(user_items, params, show_progress)


def _fit(user_items: sp.csr_matrix, params: CFParams, show_progress: bool) -> tuple[np.ndarray, np.ndarray]:
    if params.algorithm == "bpr":
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        model = BayesianPersonalizedRanking(factors=params.factors, regularization=params.regularization,
                                            iterations=max(params.iterations * 5, 50),
                                            random_state=params.seed, num_threads=params.threads)
    elif params.algorithm == "als":
        from implicit.cpu.als import AlternatingLeastSquares

        model = AlternatingLeastSquares(factors=params.factors, regularization=params.regularization,
                                        alpha=params.alpha, iterations=params.iterations,
                                        random_state=params.seed, num_threads=params.threads)
    else:
        raise ValueError(f"unknown CF algorithm {params.algorithm!r}: use 'als' or 'bpr'")
    model.fit(sp.csr_matrix(user_items, dtype=np.float32), show_progress=show_progress)
    users = np.ascontiguousarray(model.user_factors, dtype=np.float32)
    items = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    if not (np.isfinite(users).all() and np.isfinite(items).all()):
        raise ModelFitError(f"{params.algorithm} produced NaN factors with {params}")
    return users, items


#: Below this many clients in the inner part, CF keeps its configured settings.
MIN_TUNE_CLIENTS = 10
#: Clients scored at once by `_new_item_ndcg`: its temporaries stay a few hundred MB, not gigabytes.
NDCG_BATCH = 256


def _new_item_ndcg(client_factors: np.ndarray, item_factors: np.ndarray, seen: sp.csr_matrix, truth: sp.csr_matrix,
                   k: int) -> float:
    """Mean NDCG@k (`training.metrics`) of new-item suggestions (already-bought items masked): the
    cross-sell question, one row per client with something to find.

    Clients are ranked a batch at a time: rows are independent, so the lists are the ones a single
    clients x items product gives, without that product and its masked copy (2.5 GB at once on
    Complete Journey, the peak of the whole training run). No batch holds a single row: BLAS
    answers one row with another kernel (gemv), whose rounding differs."""
    n = client_factors.shape[0]
    bounds = list(range(0, n, NDCG_BATCH))
    if len(bounds) > 1 and n - bounds[-1] == 1:
        bounds.pop()
    ranked = [_batch_top(client_factors[lo:hi] @ item_factors.T, seen[lo:hi], k)
              for lo, hi in zip(bounds, [*bounds[1:], n], strict=True)]
    if not ranked:
        return 0.0
    truth = sp.csr_matrix(truth)
    relevant = [truth.indices[truth.indptr[r]:truth.indptr[r + 1]] for r in range(n)]
    return float(score_rankings(np.vstack(ranked), relevant, truth.shape[1], k)[f"ndcg@{k}"])


def _batch_top(scores: np.ndarray, seen: sp.csr_matrix, k: int) -> np.ndarray:
    """Each row's top k with its seen items masked; `scores` is the batch's own array."""
    rows, cols = seen.nonzero()
    scores[rows, cols] = -np.inf
    return top_indices_per_row(scores, k)


def tune_cf(ctx: TrainContext, valid_tx: pd.DataFrame, base: CFParams, factors: tuple[int, ...],
            regularization: tuple[float, ...], k: int = 10) -> tuple[CFParams, list[dict]]:
    """Grid search on the inner split: `ctx` indexes its training part and `valid_tx` is what
    came after (`training.split.inner_split`: a time split, as for every other figure, unless the
    history gives none). Scored on the items a
    client bought in `valid_tx` that they had not bought before and that the inner part knows.
    Returns the best params and the trials."""
    if len(ctx.clients) < MIN_TUNE_CLIENTS or valid_tx.empty:
        log.info("too little history to tune CF; using %s", base)
        return base, []
    # The inner part's own items only: a catalogue item without a line there has no evidence to
    # learn, and its empty column would only move ALS's random start (and with it the choice).
    seen = np.flatnonzero(ctx.item_seen)
    column = np.full(len(ctx.items), -1, dtype=np.int64)
    column[seen] = np.arange(seen.size)
    conf = confidence_matrix(ctx.transactions, ctx.clients, ctx.items, weighting="bm25", codes=ctx.codes)[:, seen]
    valid = valid_tx[valid_tx[QUANTITY] > 0]
    ci, ii = ctx.clients.index_of(valid[CLIENT]), ctx.items.index_of(valid[ITEM])
    ii[ii >= 0] = column[ii[ii >= 0]]
    ok = (ci >= 0) & (ii >= 0)
    truth = sp.csr_matrix((np.ones(ok.sum(), np.float32), (ci[ok], ii[ok])), shape=conf.shape)
    truth.data[:] = 1.0
    truth = truth - truth.multiply(conf > 0)
    truth.eliminate_zeros()
    users_with_truth = np.flatnonzero(np.diff(truth.indptr) > 0)
    trials = []
    best, best_score = base, -1.0
    for f, reg in itertools.product(factors, regularization):
        params = CFParams(base.algorithm, f, reg, base.alpha, base.iterations, base.seed, base.threads)
        uf, itf = fit_cf(conf, params)
        score = _new_item_ndcg(uf[users_with_truth], itf, conf[users_with_truth], truth[users_with_truth], k)
        trials.append({"factors": f, "regularization": reg, "inner_ndcg": round(score, 5)})
        log.info("CF tuning: factors=%d regularization=%g -> inner cross-sell NDCG@%d %.4f", f, reg, k, score)
        if score > best_score:
            best, best_score = params, score
    return best, trials
