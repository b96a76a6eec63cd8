"""Item-to-item neighbours from clients' co-purchases (cosine over the client x item matrix).

Complements basket co-occurrence: two items need never share a basket to be bought by the same
people (a barbecue and charcoal bought weeks apart). implicit's all-pairs kNN does the heavy work.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from features.matrix import Codes, IdIndex, confidence_matrix
from training.models.toplists import top_per_row


def client_neighbours(tx: pd.DataFrame, clients: IdIndex, items: IdIndex, k: int,
                      threads: int = 0, codes: Codes | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(idx int32, score float32) n_items x k by cosine similarity of log-weighted purchase columns."""
    from implicit.nearest_neighbours import CosineRecommender
    from implicit.utils import ParameterWarning

    weights = confidence_matrix(tx, clients, items, weighting="log", codes=codes)
    model = CosineRecommender(K=k + 1, num_threads=threads)
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ParameterWarning)  # implicit's own note on normalisation
        model.fit(sp.csr_matrix(weights, dtype=np.float32), show_progress=False)
    sim = sp.csr_matrix(model.similarity, dtype=np.float32)
    sim.setdiag(0)
    sim.eliminate_zeros()
    return top_per_row(sim, k)
