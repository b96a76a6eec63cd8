"""Upsell: for each item, its upsells (`scoring.upgrades`: same product type, a higher tier, a
larger pack or a better brand, dearer).

Ranked by trade-up evidence (clients who bought A and later bought the pricier B) first, then by
taste similarity and popularity, so a suggestion is a step clients really take.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from features.matrix import IdIndex
from features.schema import CLIENT, ITEM, QUANTITY, TIMESTAMP
from scoring.ranking import top_indices_per_row
from scoring.state import ModelState
from scoring.upgrades import NONE, step_up

#: Items kept per client and subcategory when counting trade-ups (bounds the pair count).
MAX_ITEMS_PER_GROUP = 25


def trade_up_counts(tx: pd.DataFrame, items: IdIndex, subcat: np.ndarray, price: np.ndarray) -> pd.DataFrame:
    """Columns a, b, moves: clients who first bought a, later first bought b, same `subcat` code
    (the product type), b pricier."""
    bought = tx[tx[QUANTITY] > 0]
    first = bought.groupby([CLIENT, ITEM], sort=False)[TIMESTAMP].min().reset_index()
    first["item"] = items.index_of(first[ITEM])
    first = first[first["item"] >= 0]
    first["sub"] = subcat[first["item"].to_numpy()]
    first["price"] = price[first["item"].to_numpy()]
    first = first[(first["sub"] >= 0) & first["price"].notna()]
    first = first.sort_values([CLIENT, "sub", TIMESTAMP])
    first = first[first.groupby([CLIENT, "sub"]).cumcount() < MAX_ITEMS_PER_GROUP]
    left = first[[CLIENT, "sub", "item", TIMESTAMP, "price"]]
    pairs = left.merge(left, on=[CLIENT, "sub"], suffixes=("_a", "_b"))
    pairs = pairs[(pairs[f"{TIMESTAMP}_b"] > pairs[f"{TIMESTAMP}_a"]) & (pairs["price_b"] > pairs["price_a"] * 1.0001)]
    moves = pairs.groupby(["item_a", "item_b"]).size().rename("moves").reset_index()
    return moves.rename(columns={"item_a": "a", "item_b": "b"})


def upsell_table(st: ModelState, offerable: np.ndarray, unit_factors: np.ndarray, moves: pd.DataFrame,
                 k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(idx, score, moves, step) n_items x k: each item's best upsells by `scoring.upgrades.step_up`
    (same product type, dearer, a higher tier, a larger pack or a better brand), among the
    `offerable` items; scored by trade-up moves, taste similarity and popularity."""
    n = len(st.item_type)
    idx = np.full((n, k), -1, dtype=np.int32)
    score = np.zeros((n, k), dtype=np.float32)
    move_out = np.zeros((n, k), dtype=np.int32)
    step_out = np.zeros((n, k), dtype=np.int8)
    pop = np.log1p(st.item_pop).astype(np.float32)
    ptype = st.item_type
    mv_a, mv_b, mv_n = (moves[c].to_numpy() for c in ("a", "b", "moves"))
    mv_t = ptype[mv_a] if len(moves) else np.empty(0, np.int64)
    order = np.argsort(mv_t, kind="stable")
    mv_a, mv_b, mv_n, mv_t = mv_a[order], mv_b[order], mv_n[order], mv_t[order]
    position = np.zeros(n, dtype=np.int64)  # an item's row within its product type's block
    valid = (ptype >= 0) & np.isfinite(st.item_price)
    codes = ptype[valid]
    members_of = np.split(np.flatnonzero(valid)[np.argsort(codes, kind="stable")],
                          np.cumsum(np.bincount(codes))[:-1]) if codes.size else []
    for t, members in enumerate(members_of):
        if members.size < 2:
            continue
        position[members] = np.arange(members.size)
        step = step_up(st, members[:, None], members[None, :])
        step[:, ~offerable[members]] = NONE
        if not step.any():
            continue
        sim = unit_factors[members] @ unit_factors[members].T
        m = np.zeros((members.size, members.size), dtype=np.float32)
        lo, hi = np.searchsorted(mv_t, [t, t + 1])
        if hi > lo:
            m[position[mv_a[lo:hi]], position[mv_b[lo:hi]]] = mv_n[lo:hi]
        total = np.where(step != NONE, 2.0 * np.log1p(m) + sim + 0.3 * pop[members][None, :], -np.inf)
        top = top_indices_per_row(total, min(k, members.size - 1))
        ok = top >= 0
        row, col = np.nonzero(ok)
        idx[members[row], col] = members[top[ok]]
        score[members[row], col] = total[row, top[ok]]
        move_out[members[row], col] = m[row, top[ok]]
        step_out[members[row], col] = step[row, top[ok]]
    return idx, score, move_out, step_out
