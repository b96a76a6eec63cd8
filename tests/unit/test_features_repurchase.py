"""Replenishment rhythm per client and item, and who is due to buy again."""
from __future__ import annotations

import pandas as pd
import pytest
from support.factories import make_transactions

from features.repurchase import due_ratio, repurchase_intervals


@pytest.fixture()
def history() -> pd.DataFrame:
    return make_transactions(
        [
            ("c1", "coffee", "2024-01-01"),
            ("c1", "coffee", "2024-01-08"),
            ("c1", "coffee", "2024-01-08", "extra-order"),  # same day: one purchase
            ("c1", "coffee", "2024-01-15"),
            ("c1", "coffee", "2024-01-20", "r1", -1.0),  # a return is not a purchase
            ("c1", "coffee", "2024-01-29"),
            ("c1", "tea", "2024-01-02"),  # bought once: no rhythm
            ("c2", "coffee", "2024-01-01"),
            ("c2", "coffee", "2024-01-03"),
        ]
    )


def test_median_interval_between_distinct_purchase_days(history) -> None:
    intervals = repurchase_intervals(history)
    assert list(intervals.columns) == ["client_id", "item_id", "n_purchases", "median_interval_days", "last_purchase"]
    assert intervals[["client_id", "item_id"]].values.tolist() == [["c1", "coffee"], ["c2", "coffee"]]
    assert intervals["n_purchases"].tolist() == [4, 2]
    assert intervals["median_interval_days"].tolist() == [7.0, 2.0]  # gaps 7, 7, 14 and 2
    assert intervals["last_purchase"].tolist() == [pd.Timestamp("2024-01-29"), pd.Timestamp("2024-01-03")]


def test_min_purchases(history) -> None:
    assert repurchase_intervals(history, min_purchases=3)["client_id"].tolist() == ["c1"]
    with pytest.raises(ValueError):
        repurchase_intervals(history, min_purchases=1)


def test_due_ratio_is_elapsed_days_over_the_rhythm(history) -> None:
    ratios = due_ratio(repurchase_intervals(history), pd.Timestamp("2024-02-12"))
    assert ratios.tolist() == [14 / 7, 40 / 2]


def test_same_day_rhythm_counts_as_one_day() -> None:
    intervals = pd.DataFrame(
        {
            "client_id": ["c1"],
            "item_id": ["i1"],
            "n_purchases": [3],
            "median_interval_days": [0.0],
            "last_purchase": [pd.Timestamp("2024-02-10")],
        }
    )
    assert due_ratio(intervals, pd.Timestamp("2024-02-12")).tolist() == [2.0]
