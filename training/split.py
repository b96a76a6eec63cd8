"""The time split every offline figure rests on: train on the past, score on the last days.

A random split would let a model learn from next month to predict last month; a CRM only ever
knows the past. Orders are kept whole (an order belongs to the side of its first line), so a
basket is never half in training and half in the test.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from features.schema import CLIENT, ITEM, ORDER, TIMESTAMP


class SplitError(ValueError):
    """The history cannot be split as asked (too short for the test window, or empty)."""


def time_split(tx: pd.DataFrame, test_days: float) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
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
            f"than the {test_days}-day test window: nothing left to train on"
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
