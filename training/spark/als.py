"""Collaborative filtering on Spark MLlib: ALS with implicit preferences, the recipe's CF settings.

`rank`, `regParam`, `maxIter` and `alpha` are the recipe's `factors`, `regularization`,
`iterations` and `alpha` (chosen on the inner split by `training.tuning`); confidence is
1 + alpha x evidence in both libraries. One difference stays: Spark scales each row's
regularisation by its number of ratings (ALS-WR) where implicit does not, so one `regParam`
regularises heavy buyers more on Spark; docs/spark.md reports the parity this gives. The factors
come back by index and are laid out in the context's client and item order; a client or item
with no evidence gets zeros, as implicit's solve gives it.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from training.models.cf import CFParams, ModelFitError
from training.spark.evidence import CLIENT_COL, ITEM_COL, VALUE_COL

log = logging.getLogger(__name__)


def fit_als(evidence: Any, params: CFParams, n_clients: int, n_items: int,
            blocks: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(client_factors, item_factors), float32, n_clients x f and n_items x f."""
    from pyspark.ml.recommendation import ALS

    if params.algorithm != "als":
        raise ValueError(f"the Spark engine fits ALS only, not {params.algorithm!r} (set CF_ALGORITHM=als)")
    started = time.perf_counter()
    als = ALS(rank=params.factors, maxIter=params.iterations, regParam=params.regularization, alpha=params.alpha,
              implicitPrefs=True, nonnegative=False, seed=params.seed, userCol=CLIENT_COL, itemCol=ITEM_COL,
              ratingCol=VALUE_COL, numUserBlocks=blocks, numItemBlocks=blocks)
    model = als.fit(evidence)
    clients = _dense(model.userFactors, n_clients, params.factors)
    items = _dense(model.itemFactors, n_items, params.factors)
    if not (np.isfinite(clients).all() and np.isfinite(items).all()):
        raise ModelFitError(f"Spark ALS produced NaN factors with {params}")
    log.info("spark ALS: %d x %d, %d factors, %d sweeps in %.1fs", n_clients, n_items, params.factors,
             params.iterations, time.perf_counter() - started)
    return clients, items


def _dense(factors: Any, rows: int, rank: int) -> np.ndarray:
    """MLlib's (id, features) rows as one array in index order, zeros where an id has none."""
    frame = factors.toPandas()
    out = np.zeros((rows, rank), dtype=np.float32)
    if len(frame):
        out[frame["id"].to_numpy(np.int64)] = np.vstack(frame["features"].to_numpy()).astype(np.float32)
    return out
