"""Upsell: for each item, pricier or higher-tier alternatives in the same subcategory.

Ranked by trade-up evidence (clients who bought A and later bought the pricier B) first, then by
taste similarity and popularity, so a suggestion is a step clients really take.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from features.matrix import IdIndex
from features.schema import CLIENT, ITEM, QUANTITY, TIMESTAMP
from scoring.ranking import top_indices_per_row

#: Items kept per client and subcategory when counting trade-ups (bounds the pair count).
MAX_ITEMS_PER_GROUP = 25


def trade_up_counts(tx: pd.DataFrame, items: IdIndex, subcat: np.ndarray, price: np.ndarray) -> pd.DataFrame:
    """Columns a, b, moves: clients who first bought a, later first bought b, same subcategory, b pricier."""
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


def upsell_table(subcat: np.ndarray, price: np.ndarray, tier: np.ndarray, popularity: np.ndarray,
                 unit_factors: np.ndarray, moves: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(idx, score, moves) n_items x k: the best alternatives above each item's price or tier."""
    n = len(subcat)
    idx = np.full((n, k), -1, dtype=np.int32)
    score = np.zeros((n, k), dtype=np.float32)
    move_out = np.zeros((n, k), dtype=np.int32)
    pop = np.log1p(popularity).astype(np.float32)
    tier = np.nan_to_num(tier, nan=-1.0)
    has_price = ~np.isnan(price)
    # moves grouped by subcategory once, so each subcategory reads its slice
    mv_a, mv_b, mv_n = (moves[c].to_numpy() for c in ("a", "b", "moves"))
    mv_sub = subcat[mv_a] if len(moves) else np.empty(0, np.int64)
    order = np.argsort(mv_sub, kind="stable")
    mv_a, mv_b, mv_n, mv_sub = mv_a[order], mv_b[order], mv_n[order], mv_sub[order]
    position = np.zeros(n, dtype=np.int64)  # an item's row within its subcategory block
    valid = (subcat >= 0) & has_price
    codes = subcat[valid]
    members_of = np.split(np.flatnonzero(valid)[np.argsort(codes, kind="stable")],
                          np.cumsum(np.bincount(codes))[:-1]) if codes.size else []
    for s, members in enumerate(members_of):
        if members.size < 2:
            continue
        position[members] = np.arange(members.size)
        p, t = price[members], tier[members]
        higher = (p[None, :] > p[:, None] * 1.0001) | (t[None, :] > t[:, None])
        sim = unit_factors[members] @ unit_factors[members].T
        m = np.zeros((members.size, members.size), dtype=np.float32)
        lo, hi = np.searchsorted(mv_sub, [s, s + 1])
        if hi > lo:
            m[position[mv_a[lo:hi]], position[mv_b[lo:hi]]] = mv_n[lo:hi]
        total = np.where(higher, 2.0 * np.log1p(m) + sim + 0.3 * pop[members][None, :], -np.inf)
        kk = min(k, members.size - 1)
        top = top_indices_per_row(total, kk)
        ok = top >= 0
        row, col = np.nonzero(ok)
        idx[members[row], col] = members[top[ok]]
        score[members[row], col] = total[row, top[ok]]
        move_out[members[row], col] = m[row, top[ok]]
    return idx, score, move_out
