"""Every ranker's lists through the rules the service's answers obey, so the comparison is fair.

The model's answers already follow them (they are built by `scoring`); a baseline's list is
over-fetched (`FETCH` times the list, `UPSELL_FETCH` for upsell, whose rule drops most of a
list that was not built for it), then cut to what a person could be shown:

- never a non-merchandise item, and one item per product group;
- cross_sell: nothing of a product group the client owns, nor of a product type they buy
  regularly (`scoring.reasons.REGULAR_FROM` purchases of it);
- basket_completion: nothing of a product group already in the cart;
- service_package: nothing of the product group of a service the client uses;
- upsell (both definitions): only upsells (`scoring.upgrades.step_up`) of an item the client owns.
"""
from __future__ import annotations

import numpy as np

from scoring.ranking import first_of_each, frequent_codes
from scoring.reasons import REGULAR_FROM
from scoring.upgrades import step_up
from training.item_facts import ItemFacts
from training.tasks import TaskQueries

FETCH = 3
UPSELL_FETCH = 10
UPSELL_TASKS = frozenset({"upsell", "upsell_price"})


def fetch_depth(task: str, k: int) -> int:
    """How deep to ask a ranker for a `k`-long presentable list."""
    return k * (UPSELL_FETCH if task in UPSELL_TASKS else FETCH)


def presentable(task: TaskQueries, ranked: np.ndarray, facts: ItemFacts, k: int) -> np.ndarray:
    """len(task) x k: each row's ranked items that pass the rules, in order, -1 padded."""
    out = np.full((ranked.shape[0], k), -1, dtype=np.int64)
    history = task.history.tocsr()
    for row in range(ranked.shape[0]):
        items = ranked[row][ranked[row] >= 0]
        items = items[facts.item_merch[items]]
        owned = history.indices[history.indptr[row]:history.indptr[row + 1]]
        counts = history.data[history.indptr[row]:history.indptr[row + 1]]
        if task.task == "cross_sell" and owned.size:
            regular = frequent_codes(facts.item_type[owned], counts, REGULAR_FROM)
            blocked = np.isin(facts.item_group[items], facts.item_group[owned]) | np.isin(facts.item_type[items], regular)
            items = items[~blocked]
        elif task.task in ("basket_completion", "service_package") and owned.size:
            # another code of what is in the cart, or of a service the client uses, is no offer
            items = items[~np.isin(facts.item_group[items], facts.item_group[owned])]
        elif task.task in UPSELL_TASKS:
            items = items[~np.isin(facts.item_group[items], facts.item_group[owned])] if owned.size else items[:0]
            if items.size and owned.size:
                items = items[(step_up(facts, owned[:, None], items[None, :]) > 0).any(axis=0)]
        items = first_of_each(items, facts.item_group)[:k]
        out[row, : items.size] = items
    return out


def aligned(kept: np.ndarray, ranked: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` (one per entry of `ranked`) for the entries of `kept` (a filtered `ranked`)."""
    out = np.full(kept.shape, np.nan, dtype=np.float64)
    for row in range(kept.shape[0]):
        where = {int(item): pos for pos, item in enumerate(ranked[row].tolist()) if item >= 0}
        for col, item in enumerate(kept[row].tolist()):
            if item >= 0:
                out[row, col] = values[row, where[item]]
    return out
