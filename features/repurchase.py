"""Replenishment timing: which clients are due to buy again what they buy regularly.

Consumables (coffee, toner, filters, service renewals) come back on a rhythm. Knowing each
client's rhythm per item turns "bought it before" into "should be running out now", the moment a
reminder or a reorder suggestion is welcome rather than noise.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from features.schema import CLIENT, ITEM, QUANTITY, TIMESTAMP

INTERVAL_COLUMNS = [CLIENT, ITEM, "n_purchases", "median_interval_days", "last_purchase"]


def repurchase_intervals(transactions: pd.DataFrame, min_purchases: int = 2) -> pd.DataFrame:
    """Per client x item with >= min_purchases distinct purchase days: columns client_id, item_id, n_purchases, median_interval_days (median of gaps between consecutive distinct purchase days), last_purchase (Timestamp).

    Why: replenishment timing (a client who buys coffee every 14 days and last bought 20 days
    ago is due). Only positive lines count; several orders on one day are one purchase, so the
    rhythm is measured in days, not in how the order system splits baskets.
    """
    if min_purchases < 2:
        raise ValueError("min_purchases must be at least 2: an interval needs two purchases")
    bought = transactions[transactions[QUANTITY] > 0]
    client_code, clients = pd.factorize(bought[CLIENT])
    item_code, items = pd.factorize(bought[ITEM])
    per_pair = coded_intervals(client_code, item_code, bought[TIMESTAMP], min_purchases)
    result = pd.DataFrame(
        {
            CLIENT: pd.Series(np.asarray(clients, dtype=object)[per_pair["client"].to_numpy()], dtype="str"),
            ITEM: pd.Series(np.asarray(items, dtype=object)[per_pair["item"].to_numpy()], dtype="str"),
            "n_purchases": per_pair["n_purchases"].to_numpy(dtype=np.int64),
            "median_interval_days": per_pair["median_interval_days"].to_numpy(dtype=np.float64),
            "last_purchase": per_pair["last_purchase"].to_numpy(),
        }
    )
    return result.sort_values([CLIENT, ITEM], ignore_index=True)[INTERVAL_COLUMNS]


def coded_intervals(client_code: np.ndarray, item_code: np.ndarray, timestamps: pd.Series,
                    min_purchases: int = 2) -> pd.DataFrame:
    """`repurchase_intervals` on integer codes of bought lines: columns client, item (the codes),
    n_purchases, median_interval_days, last_purchase, for pairs with >= min_purchases distinct days.

    Why codes: the trainer already holds every line's client and item index, and grouping tens of
    millions of lines on string ids costs several times the memory and time."""
    days = pd.DataFrame(
        {
            "client": client_code,
            "item": item_code,
            "day": timestamps.dt.floor("D").to_numpy(),
            "when": timestamps.to_numpy(),
        }
    )
    days = (
        days.groupby(["client", "item", "day"], sort=True)["when"].max().reset_index()
    )  # one row per distinct purchase day, sorted so gaps are consecutive days
    same_pair = (days["client"].diff() == 0) & (days["item"].diff() == 0)
    days["gap"] = (days["day"].diff() / pd.Timedelta(days=1)).where(same_pair)

    per_pair = days.groupby(["client", "item"], sort=False).agg(
        n_purchases=("day", "size"),
        median_interval_days=("gap", "median"),
        last_purchase=("when", "max"),
    )
    return per_pair[per_pair["n_purchases"] >= min_purchases].reset_index()


def due_ratio(intervals: pd.DataFrame, now: pd.Timestamp) -> pd.Series:
    """(now - last_purchase).days / median_interval_days; >= 1 means due for replenishment.

    Zero intervals (same-day repeats) are treated as 1 day, so a daily buyer is due after a day.
    """
    elapsed = (pd.Timestamp(now) - intervals["last_purchase"]).dt.days.astype(np.float64)
    interval = intervals["median_interval_days"].astype(np.float64).clip(lower=1.0)
    return (elapsed / interval).rename("due_ratio")
