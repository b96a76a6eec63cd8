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

from features.matrix import IdIndex, confidence_matrix
from features.schema import CLIENT, ITEM, QUANTITY, TIMESTAMP

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


#: Clients scored at once by `_new_item_ndcg`: its temporaries stay a few hundred MB, not gigabytes.
NDCG_BATCH = 256


def _new_item_ndcg(client_factors: np.ndarray, item_factors: np.ndarray, seen: sp.csr_matrix, truth: sp.csr_matrix,
                   k: int) -> float:
    """Mean NDCG@k of new-item suggestions (already-bought items masked): the cross-sell question.

    Clients are scored a batch at a time: rows are independent, so the figure is the one a single
    clients x items product gives, without that product and its masked, negated and argpartitioned
    copies (2.5 GB at once on Complete Journey, the peak of the whole training run). No batch holds a
    single row: BLAS answers one row with another kernel (gemv), whose rounding differs."""
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    n = client_factors.shape[0]
    bounds = list(range(0, n, NDCG_BATCH))
    if len(bounds) > 1 and n - bounds[-1] == 1:
        bounds.pop()
    gains = [_batch_gains(client_factors[lo:hi] @ item_factors.T, seen[lo:hi], truth[lo:hi], k, disc)
             for lo, hi in zip(bounds, [*bounds[1:], n], strict=True)]
    gain = np.concatenate(gains) if gains else np.empty(0)
    n_rel = np.minimum(np.diff(truth.indptr), k)
    ideal = np.cumsum(disc)[np.maximum(n_rel - 1, 0)]
    ok = n_rel > 0
    return float((gain[ok] / ideal[ok]).mean()) if ok.any() else 0.0


def _batch_gains(scores: np.ndarray, seen: sp.csr_matrix, truth: sp.csr_matrix, k: int, disc: np.ndarray) -> np.ndarray:
    """Discounted gain of each row's top k (seen items masked); `scores` is the batch's own array."""
    rows, cols = seen.nonzero()
    scores[rows, cols] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1)
    top = np.take_along_axis(top, order, 1)
    hits = np.asarray(truth[np.arange(truth.shape[0])[:, None], top].todense()) > 0
    return (hits * disc).sum(1)


def tune_cf(train_tx: pd.DataFrame, base: CFParams, factors: tuple[int, ...], regularization: tuple[float, ...],
            tune_days: int, k: int = 10) -> tuple[CFParams, list[dict]]:
    """Grid search on the last `tune_days` of the training part; returns the best params and the trials."""
    cutoff = train_tx[TIMESTAMP].max() - pd.Timedelta(days=tune_days)
    inner, valid = train_tx[train_tx[TIMESTAMP] < cutoff], train_tx[train_tx[TIMESTAMP] >= cutoff]
    clients, items = IdIndex.from_ids(inner[CLIENT]), IdIndex.from_ids(inner[ITEM])
    if len(clients) < 10 or valid.empty:
        log.info("too little history to tune CF; using %s", base)
        return base, []
    conf = confidence_matrix(inner, clients, items, weighting="bm25")
    valid = valid[valid[QUANTITY] > 0]
    ci, ii = clients.index_of(valid[CLIENT]), items.index_of(valid[ITEM])
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
