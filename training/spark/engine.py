"""`SparkEngine`: the `training.engine.FitEngine` whose heavy steps run on Spark.

`training.fit.fit_recommender(..., engine=SparkEngine(spark))` computes the evidence and ALS
(`evidence`, `als`) and the basket pair counts (`cooc`) on Spark and everything else as usual, so
the model it returns has the in-process model's shape, index order and contract.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from features.baskets import Cooccurrence
from training.context import TrainContext
from training.models.cf import CFParams
from training.spark import als, cooc, evidence

log = logging.getLogger(__name__)


class SparkEngine:
    """Spark for the CF factors and the pair counts; `spark` is a live SparkSession."""

    name = "spark"

    def __init__(self, spark: Any, blocks: int = 4) -> None:
        self.spark = spark
        self.blocks = blocks

    def cf(self, ctx: TrainContext, params: CFParams) -> tuple[np.ndarray, np.ndarray]:
        started = time.perf_counter()
        weighted = evidence.bm25_evidence(evidence.coded_lines(self.spark, ctx), len(ctx.clients)).persist()
        # one pass aggregates for BM25's mean length; the weighted rows are computed again, and cached, by ALS
        log.info("spark evidence: %d lines sent to Spark, BM25 set up in %.1fs", len(ctx.transactions),
                 time.perf_counter() - started)
        try:
            return als.fit_als(weighted, params, len(ctx.clients), len(ctx.items), blocks=self.blocks)
        finally:
            weighted.unpersist()

    def pair_counts(self, baskets: sp.csr_matrix) -> Cooccurrence:
        return cooc.pair_counts(self.spark, baskets)
