"""The rules a re-ranked cross-sell must keep, whichever second stage orders it (the learnt
regression of tests/unit/test_learnt.py, the trees of tests/unit/test_trees.py)."""
from __future__ import annotations

import pandas as pd


def assert_reranked_cross_sell_keeps_the_rules(rec, tx: pd.DataFrame, what: str) -> None:
    """Known clients of the synthetic shop get products they never bought, in stock, no service;
    the list is ordered by a chance in (0, 1) (`what` orders it, not the blend); a cold client
    still gets the segment's list."""
    for client in ("c00", "c31", "due"):
        bought = set(tx.loc[tx["client_id"] == client, "item_id"])
        got = [s["item_id"] for s in rec.suggest(client, "cross_sell", 10)]
        assert got, client
        assert not bought & set(got), "never suggest what the client bought"
        assert "discontinued" not in got
        assert not {"care_basic", "care_premium"} & set(got)
    scores = [s["score"] for s in rec.suggest("c31", "cross_sell", 10)]
    assert scores and all(0.0 < v < 1.0 for v in scores), f"{what} orders the list, not the blend"
    assert scores == sorted(scores, reverse=True)
    assert rec.suggest("__nobody__", "cross_sell", 3), "a cold client still gets the segment's list"
