"""The per client x item history the model carries (`training.fit.history_arrays`), checked by hand."""
from __future__ import annotations

import numpy as np
import pandas as pd
from support.factories import make_transactions

from training.context import TrainContext
from training.fit import SHORT_HALF_LIFE_DAYS, history_arrays

HALF_LIFE = 30.0


def _context() -> TrainContext:
    tx = make_transactions([
        ("c1", "coffee", "2024-01-01"),
        ("c1", "coffee", "2024-01-01"),                 # a second line of one order: one occasion
        ("c1", "coffee", "2024-01-11"),
        ("c1", "coffee", "2024-01-11", "c1-late"),     # another order that day: an occasion, not a new day
        ("c1", "coffee", "2024-01-21", "r1", -1.0),    # a return is no purchase
        ("c1", "tea", "2024-01-31"),
        ("c2", "coffee", "2024-01-21"),
    ])
    return TrainContext.build(tx, now=pd.Timestamp("2024-01-31"))


def _row(hist: dict[str, np.ndarray], ctx: TrainContext, client: str, item: str) -> dict[str, float]:
    ci, ii = int(ctx.clients.index_of(pd.Series([client]))[0]), int(ctx.items.index_of(pd.Series([item]))[0])
    lo, hi = hist["hist_indptr"][ci], hist["hist_indptr"][ci + 1]
    at = lo + int(np.flatnonzero(hist["hist_indices"][lo:hi] == ii)[0])
    return {k[5:]: float(v[at]) for k, v in hist.items() if k not in ("hist_indptr", "hist_indices")}


def test_occasions_recency_age_and_interval_by_hand() -> None:
    ctx = _context()
    hist = history_arrays(ctx.transactions, ctx.clients, ctx.items, ctx.now, HALF_LIFE, codes=ctx.codes)
    coffee = _row(hist, ctx, "c1", "coffee")
    # occasions are orders: Jan 1, Jan 11 and Jan 11 late (30, 20 and 20 days before Jan 31)
    assert coffee["count"] == 3
    assert coffee["recency"] == np.float32(0.5 ** (30 / HALF_LIFE) + 2 * 0.5 ** (20 / HALF_LIFE))
    assert np.isclose(coffee["recent"], 0.5 ** (30 / SHORT_HALF_LIFE_DAYS) + 2 * 0.5 ** (20 / SHORT_HALF_LIFE_DAYS))
    assert coffee["last_age"] == 20
    assert coffee["interval"] == 10  # distinct days Jan 1 and Jan 11
    tea = _row(hist, ctx, "c1", "tea")
    assert tea["count"] == 1 and tea["last_age"] == 0 and np.isnan(tea["interval"])
    assert _row(hist, ctx, "c2", "coffee")["count"] == 1
    # rows sorted by client, then item, and every (client, item) once
    assert hist["hist_indptr"].tolist() == [0, 2, 3]
    assert len(hist["hist_indices"]) == 3


def test_codes_give_what_the_ids_give() -> None:
    ctx = _context()
    args = (ctx.transactions, ctx.clients, ctx.items, ctx.now, HALF_LIFE)
    coded, looked_up = history_arrays(*args, codes=ctx.codes), history_arrays(*args)
    assert coded.keys() == looked_up.keys()
    for key in coded:
        assert coded[key].dtype == looked_up[key].dtype and np.array_equal(coded[key], looked_up[key], equal_nan=True)


def test_popular_lists_count_distinct_buyers_per_class_and_recently() -> None:
    from training.fit import popular_lists

    tx = make_transactions([
        ("a1", "milk", "2024-01-01"), ("a1", "milk", "2024-03-01"),   # one buyer, however often
        ("a1", "bread", "2024-03-01"),
        ("a2", "bread", "2024-01-05"), ("a2", "eggs", "2024-01-05"),
        ("c1", "tea", "2024-01-02"), ("c1", "eggs", "2024-03-01"),
        ("c1", "soap", "2024-02-25", "ret", -1.0),                   # a return buys nothing
    ])
    ctx = TrainContext.build(tx, now=pd.Timestamp("2024-03-01"))
    abc = pd.Series({"a1": "A", "a2": "A", "c1": "C"})
    seg, glob, recent = popular_lists(ctx, abc)
    name = dict(enumerate(ctx.items.ids))

    def names(row: np.ndarray) -> list[str]:
        return [name[i] for i in row if i >= 0]

    assert names(seg[0]) == ["bread", "eggs", "milk"]           # 2 buyers, then ties by id
    assert names(seg[1]) == ["bread", "eggs", "milk", "tea"]    # no B client: everyone's
    assert names(seg[2]) == ["eggs", "tea"]
    # bought within the last 30 days: milk and bread by a1, eggs by c1 (bread of a2 is older)
    assert names(glob) == ["bread", "eggs", "milk"]
    assert recent[ctx.items.index_of(pd.Series(["bread", "tea", "soap"]))].tolist() == [1, 0, 0]
