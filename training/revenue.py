"""Money beside relevance: the expected and the realised revenue of each ranker's top k.

Why both: NDCG says whether the list holds what the client bought, not what it was worth. The
business objective (`scoring.objective`) ranks by expected revenue, so the evaluation shows
what that costs in NDCG and what it brings in money, for every ranker alike:

- `revenue_expected@k`: per query, the sum over the top k of probability x price (the typical unit
  price of `TrainContext.item_price`; no positive price: nothing). The model's probabilities are
  its own (`breakdown.probability`); rankers without probabilities get the service's mapping for a
  ranking nobody calibrated, p(r) = UNMEASURED_RATE / (r + 1), so their expected figures share one
  scale with each other but not with the model's learnt probabilities: compare the realised ones.
- `revenue_realised@k`: per query, the money the client actually spent in the test window on the
  suggested items (quantity x price of the test lines; a line without a price at the item's typical
  price). Client tasks only: a basket row's test spend is the hidden item alone.

Both are means over the task's queries, in the data's currency.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.schema import CLIENT, ITEM, PRICE, QUANTITY
from scoring import objective
from training.context import TrainContext, csr
from training.tasks import TaskQueries, entries


def metric_names(k: int) -> tuple[str, str]:
    return f"revenue_expected@{k}", f"revenue_realised@{k}"


def spent_in_window(ctx: TrainContext, test_tx: pd.DataFrame) -> sp.csr_matrix:
    """clients x items of the context: money spent in the test window (positive lines of known
    clients and items), at the line's price or, without one, the item's typical price."""
    bought = test_tx[test_tx[QUANTITY] > 0]
    rows = ctx.clients.index_of(bought[CLIENT])
    cols = ctx.items.index_of(bought[ITEM])
    price = bought[PRICE].to_numpy(np.float64, na_value=np.nan) if PRICE in bought else np.full(len(bought), np.nan)
    typical = np.where(cols >= 0, ctx.item_price[np.maximum(cols, 0)], np.nan)
    price = np.where(np.isfinite(price) & (price > 0), price, typical)
    money = bought[QUANTITY].to_numpy(np.float64) * np.nan_to_num(price, nan=0.0)
    keep = (rows >= 0) & (cols >= 0) & (money > 0)
    return csr(rows[keep], cols[keep], money[keep], len(ctx.clients), len(ctx.items))


def rank_probabilities(n_rows: int, k: int) -> np.ndarray:
    """n_rows x k: the uncalibrated rank mapping of the service (`scoring.objective`)."""
    return np.tile(objective.rank_probability(k, objective.UNMEASURED_RATE), (n_rows, 1))


def revenue_metrics(ranked: np.ndarray, queries: TaskQueries, spend: sp.csr_matrix, price: np.ndarray, k: int,
                    probabilities: np.ndarray | None = None) -> dict[str, float | str]:
    """{revenue_expected@k, revenue_realised@k, probability_source} for one ranker's answer to a
    client task (`ranked`: rows x >= k item indexes, -1 padded; `probabilities`: the ranker's own,
    rows x k, NaN where it has none, or None for the rank mapping)."""
    if queries.kind != "client":
        raise ValueError("revenue is measured on client tasks only")
    top = np.asarray(ranked, dtype=np.int64)[:, :k]
    n = top.shape[0]
    names = metric_names(k)
    if n == 0:
        return {names[0]: 0.0, names[1]: 0.0, "probability_source": "none"}
    own = probabilities is not None
    p = np.asarray(probabilities, np.float64)[:, :k] if own else rank_probabilities(n, top.shape[1])
    listed = top >= 0
    safe = np.where(listed, top, 0)
    unit = np.where(listed, price[safe], np.nan)
    worth = np.where(np.isfinite(unit) & (unit > 0) & np.isfinite(p), p * np.nan_to_num(unit), 0.0)
    rows = np.repeat(queries.clients.astype(np.int64), top.shape[1]).reshape(top.shape)
    realised = np.zeros(top.shape)
    realised[listed] = entries(spend, rows[listed], top[listed])
    return {names[0]: float(worth.sum(axis=1).mean()), names[1]: float(realised.sum(axis=1).mean()),
            "probability_source": "model" if own else objective.RANK_UNMEASURED}
