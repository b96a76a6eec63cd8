"""The time split every offline figure rests on: train on the past, score on the last days.

A random split would let a model learn from next month to predict last month; a CRM only ever
knows the past. Orders are kept whole (an order belongs to the side of its first line), so a
basket is never half in training and half in the test.

Tuning needs a second, inner split of the training part (`inner_split`). It is a time split too,
unless the history gives no usable inner window (too short, too few clients to score in it, or
timestamps that carry no order); then it falls back to a per-client random hold-out
(`random_holdout`) and says why, so a shop with a short log is still tuned.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.schema import CLIENT, ITEM, ORDER, QUANTITY, TIMESTAMP

#: Share of each client's orders the random hold-out keeps for validation.
HOLDOUT_SHARE = 0.2
#: Clients the inner validation part must let a task score (a purchase there and one before):
#: with fewer, one client's basket would decide between two settings.
MIN_SCORED_CLIENTS = 10
#: Distinct calendar days the history must span for its timestamps to order anything: one or two
#: dates are an export or load stamp, and a "last days" window would be everybody's whole history.
MIN_DISTINCT_DAYS = 3


class SplitError(ValueError):
    """The history cannot be split as asked (too short for the test window, or empty)."""


def time_split(tx: pd.DataFrame, test_days: float,
               window: str = "test") -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(train, test, info): the test holds the orders that start in the last `test_days` days.

    cutoff = latest timestamp - test_days; an order whose first line is at or after the cutoff is
    test, every other order is train. `info` is JSON-ready: the cutoff, both date ranges and row,
    client and order counts, so a result always says what it was measured on.
    """
    if not test_days > 0:
        raise ValueError(f"test_days must be positive, got {test_days}")
    if tx.empty:
        raise SplitError("no transactions to split")
    timestamps = tx[TIMESTAMP]
    cutoff = timestamps.max() - pd.Timedelta(days=test_days)
    order_start = timestamps.groupby(tx[ORDER], sort=False).transform("min") if ORDER in tx else timestamps
    is_test = (order_start >= cutoff).to_numpy()
    train, test = tx[~is_test], tx[is_test]
    if train.empty:
        raise SplitError(
            f"the history ({timestamps.min():%Y-%m-%d} to {timestamps.max():%Y-%m-%d}) is not longer "
            f"than the {test_days:g}-day {window} window: nothing left to train on"
        )
    info = {
        "test_days": test_days,
        "cutoff": cutoff.isoformat(),
        "train": describe(train),
        "test": describe(test),
    }
    return train, test, info


def describe(tx: pd.DataFrame) -> dict[str, Any]:
    """Date range and counts of one side of the split."""
    timestamps = tx[TIMESTAMP]
    return {
        "start": timestamps.min().isoformat() if len(tx) else None,
        "end": timestamps.max().isoformat() if len(tx) else None,
        "rows": int(len(tx)),
        "clients": int(tx[CLIENT].nunique()),
        "items": int(tx[ITEM].nunique()),
        "orders": int(tx[ORDER].nunique()) if ORDER in tx else None,
    }


def random_holdout(tx: pd.DataFrame, share: float = HOLDOUT_SHARE,
                   seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(train, valid, info): per client, a random `share` of their orders held out as validation.

    Why: tuning must not depend on a long purchase log. When the time range gives no usable inner
    window, or the timestamps carry no order, the only question left to tune on is the one every
    task asks anyway: find what a client bought from the rest of what they bought. Holding out a
    few of each client's orders asks it of every client with something to hold out. The price is
    that a model may learn from a client's later orders to predict earlier ones, which a time
    split never allows, so this is a fallback (`inner_split`), never the evaluation's split.

    A client with at least 2 orders (with a purchase line) keeps round(share x orders) of them,
    at least 1 and at most all but one, drawn at random; orders stay whole. A client with a
    single order but at least 2 distinct items (a wholesaler's one large order, or data where
    every client has one order) keeps round(share x items) of those items, at least 1 and at most
    all but one, instead. Everyone else, and orders without a purchase line, stays in training.
    The draw depends on `seed` and the ids only, not on the row order of `tx`.
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    if tx.empty:
        raise SplitError("no transactions to split")
    rng = np.random.default_rng(seed)
    positive = (tx[QUANTITY] > 0).to_numpy() if QUANTITY in tx else np.ones(len(tx), dtype=bool)
    orders = tx.loc[positive, [CLIENT, ORDER]].drop_duplicates().sort_values([CLIENT, ORDER], kind="stable")
    held_orders = _held_at_random(orders, CLIENT, share, rng)
    n_orders = orders.groupby(CLIENT, sort=False)[ORDER].transform("size")
    single = orders.loc[n_orders.to_numpy() == 1, CLIENT]
    items = tx.loc[positive & tx[CLIENT].isin(single).to_numpy(), [CLIENT, ITEM]].drop_duplicates()
    held_items = _held_at_random(items.sort_values([CLIENT, ITEM], kind="stable"), CLIENT, share, rng)
    is_valid = (_pair_in(tx, [CLIENT, ORDER], held_orders) | _pair_in(tx, [CLIENT, ITEM], held_items))
    train, valid = tx[~is_valid], tx[is_valid]
    if valid.empty:
        raise SplitError("no client has two orders, or one order with two items, to hold one out")
    info = {
        "method": "random_holdout",
        "share": share,
        "seed": seed,
        "clients_by_order": int(held_orders[CLIENT].nunique()),
        "clients_by_item": int(held_items[CLIENT].nunique()),
        "train": describe(train),
        "valid": describe(valid),
    }
    return train, valid, info


def inner_split(tx: pd.DataFrame, tune_days: float, seed: int = 0, share: float = HOLDOUT_SHARE,
                min_clients: int = MIN_SCORED_CLIENTS) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(train, valid, info): the split tuning chooses settings on, inside a training part `tx`.

    The time split of the last `tune_days` when it is usable: the history spans at least
    MIN_DISTINCT_DAYS calendar days, both sides hold lines, and at least `min_clients` clients
    bought in the window and before it (what the tasks can score). Otherwise `random_holdout`.
    info["method"] is "time" or "random_holdout" and info["why"] says why, in a sentence a
    reader of the tuning report understands. SplitError when neither split is possible.
    """
    if tx.empty:
        raise SplitError("no transactions to split")
    days = int(tx[TIMESTAMP].dt.normalize().nunique())
    if days < MIN_DISTINCT_DAYS:
        why = (f"the timestamps carry no order: the history spans {days} distinct day(s), fewer than "
               f"{MIN_DISTINCT_DAYS}")
    else:
        try:
            train, valid, info = time_split(tx, tune_days, window="inner")
        except SplitError as exc:
            why = str(exc)
        else:
            scored = scored_clients(train, valid)
            if scored >= min_clients:
                return train, valid, {**info, "method": "time",
                                      "why": f"the last {tune_days:g} days hold purchases by {scored} clients "
                                             "who also bought before them"}
            why = (f"no usable {tune_days:g}-day inner window: {scored} client(s) bought in it and before it, "
                   f"fewer than {min_clients}")
    try:
        train, valid, info = random_holdout(tx, share, seed)
    except SplitError as exc:
        raise SplitError(f"{why}; and no random hold-out either: {exc}") from exc
    return train, valid, {**info, "why": why}


def scored_clients(train: pd.DataFrame, valid: pd.DataFrame) -> int:
    """Clients with a purchase line in `valid` and one in `train`: whom a task can score."""
    def buyers(tx: pd.DataFrame) -> pd.Index:
        bought = tx[tx[QUANTITY] > 0] if QUANTITY in tx else tx
        return pd.Index(bought[CLIENT].unique())

    return int(len(buyers(valid).intersection(buyers(train))))


def _held_at_random(keys: pd.DataFrame, by: str, share: float, rng: np.random.Generator) -> pd.DataFrame:
    """The rows of `keys` held out: per `by` group of n >= 2 rows, round(share x n) (1 to n - 1)
    drawn at random."""
    n = keys.groupby(by, sort=False)[by].transform("size").to_numpy()
    draw = pd.Series(rng.random(len(keys)), index=keys.index)
    place = draw.groupby(keys[by].to_numpy(), sort=False).rank(method="first").to_numpy()  # 1..n
    held = np.clip(np.rint(share * n), 1, n - 1)
    return keys[(n >= 2) & (place > n - held)]


def _pair_in(tx: pd.DataFrame, columns: list[str], pairs: pd.DataFrame) -> np.ndarray:
    if pairs.empty:
        return np.zeros(len(tx), dtype=bool)
    return pd.MultiIndex.from_frame(tx[columns]).isin(pd.MultiIndex.from_frame(pairs[columns]))
