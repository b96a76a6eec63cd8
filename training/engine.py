"""Where `training.fit.fit_recommender` runs its two heaviest steps: the hook between the fit and an engine.

`fit_recommender` asks its engine for the collaborative-filtering factors and the basket pair
counts and builds everything else itself, so the Spark engine (`training.spark.engine`) replaces
those steps without a second copy of the fit. Both engines answer in the context's own index order
(clients and items of `TrainContext`), so what follows cannot tell which one ran.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import scipy.sparse as sp

from features.baskets import Cooccurrence
from features.matrix import confidence_matrix
from training.context import TrainContext
from training.models.bundles import pair_counts
from training.models.cf import CFParams, fit_cf


class FitEngine(Protocol):
    """The heavy steps of a fit."""

    name: str

    def cf(self, ctx: TrainContext, params: CFParams) -> tuple[np.ndarray, np.ndarray]:
        """(client factors, item factors), float32, rows in `ctx.clients` / `ctx.items` order, from
        the BM25-weighted evidence of `ctx.transactions`."""
        ...

    def pair_counts(self, baskets: sp.csr_matrix) -> Cooccurrence:
        """What `training.models.bundles.pair_counts` returns for these baskets (orders x items)."""
        ...


class LocalEngine:
    """In this process: scipy evidence and co-occurrence, implicit's ALS."""

    name = "local"

    def cf(self, ctx: TrainContext, params: CFParams) -> tuple[np.ndarray, np.ndarray]:
        return fit_cf(confidence_matrix(ctx.transactions, ctx.clients, ctx.items, weighting="bm25", codes=ctx.codes),
                      params)

    def pair_counts(self, baskets: sp.csr_matrix) -> Cooccurrence:
        return pair_counts(baskets)


LOCAL = LocalEngine()
