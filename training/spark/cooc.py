"""Basket co-occurrence on Spark: pair counts by a self-join of basket lines.

Returns what `training.models.bundles.pair_counts` returns (a `features.baskets.Cooccurrence`:
pairs seen in at least `MIN_PAIR_BASKETS` baskets, diagonal dropped, float32 counts, per-item
basket counts), so `neighbour_lists`, `bought_with_services` and `mine_bundles` consume it
unchanged. The join is where the cost grows (a basket of k items makes k(k-1) rows): it is the
part of bundle affinity that leaves the driver.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.baskets import Cooccurrence
from training.models.bundles import MIN_PAIR_BASKETS

log = logging.getLogger(__name__)


def pair_counts(spark: Any, baskets: sp.csr_matrix, min_count: int = MIN_PAIR_BASKETS) -> Cooccurrence:
    """Co-occurrence of the baskets (orders x items, any positive entry is a line)."""
    from pyspark.sql import functions as F

    started = time.perf_counter()
    coo = sp.coo_matrix(baskets)
    positive = coo.data > 0
    lines = pd.DataFrame({"basket": coo.row[positive].astype(np.int64), "item": coo.col[positive].astype(np.int32)})
    frame = spark.createDataFrame(lines).distinct()
    left, right = frame.alias("a"), frame.alias("b")
    pairs = (left.join(right, F.col("a.basket") == F.col("b.basket"))
             .filter(F.col("a.item") != F.col("b.item"))
             .groupBy(F.col("a.item").alias("i"), F.col("b.item").alias("j"))
             .agg(F.count(F.lit(1)).alias("n"))
             .filter(F.col("n") >= min_count)).toPandas()
    per_item = frame.groupBy("item").agg(F.count(F.lit(1)).alias("n")).toPandas()
    n_items = baskets.shape[1]
    counts = sp.csr_matrix((pairs["n"].to_numpy(np.float32), (pairs["i"].to_numpy(np.int64), pairs["j"].to_numpy(np.int64))),
                           shape=(n_items, n_items), dtype=np.float32)
    counts.sort_indices()
    item_baskets = np.zeros(n_items, dtype=np.float64)
    item_baskets[per_item["item"].to_numpy(np.int64)] = per_item["n"].to_numpy(np.float64)
    log.info("spark pair counts: %d pairs over %d baskets in %.1fs", counts.nnz, baskets.shape[0],
             time.perf_counter() - started)
    return Cooccurrence(counts=counts, item_baskets=item_baskets, n_baskets=int(baskets.shape[0]))
