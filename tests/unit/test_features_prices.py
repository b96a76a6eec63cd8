"""Tier ranks, typical unit prices and per-subcategory price ladders for upsell."""
from __future__ import annotations

import numpy as np
import pandas as pd
from support.factories import make_transactions

from features.prices import item_unit_prices, price_ladders, tier_rank


def test_tier_rank_reads_numbers_and_known_words() -> None:
    values = pd.Series(
        ["Basic", " PREMIUM", "plus", "2", 3, "gold", "mystery", None, "Enterprise", 1.5], dtype=object
    )
    ranks = tier_rank(values)
    assert ranks.dtype == np.float64
    np.testing.assert_array_equal(ranks.to_numpy(), [1, 3, 2, 2, 3, 3, np.nan, np.nan, 4, 1.5])


def test_item_unit_prices_prefer_the_catalogue_then_the_median_paid_price() -> None:
    history = make_transactions(
        [
            ("c1", "i1", "2024-01-01", None, 1.0, 2.0),
            ("c1", "i1", "2024-01-02", None, 3.0, 4.0),
            ("c2", "i1", "2024-01-03", None, 1.0, 10.0),
            ("c2", "i1", "2024-01-04", None, -1.0, 100.0),  # returns do not set prices
            ("c1", "i2", "2024-01-01", None, 1.0, 5.0),
            ("c1", "i3", "2024-01-01"),  # price unknown
            ("c1", "i5", "2024-01-01", None, 1.0, 0.0),  # free: no positive paid price
        ]
    )
    items = pd.DataFrame({"item_id": ["i2", "i4", "i3"], "price": [6.0, 7.0, np.nan]})
    prices = item_unit_prices(history, items)
    assert prices.to_dict() == {"i1": 4.0, "i2": 6.0, "i4": 7.0}
    assert prices.index.name == "item_id"
    assert item_unit_prices(history).to_dict() == {"i1": 4.0, "i2": 5.0}


def test_price_ladders_use_the_tier_column_where_given_else_price_tiers() -> None:
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d", "e", "f", "g", "h"],
            "subcategory": ["s1", "s1", "s1", "s2", "s2", "s2", None, "s1"],
            "tier": [None, None, None, "basic", "Premium", None, "gold", None],
        }
    )
    prices = pd.Series({"a": 3.0, "b": 1.0, "c": 2.0, "d": 10.0, "e": 20.0, "f": 30.0, "g": 5.0})
    ladder = price_ladders(items, prices)
    assert list(ladder.columns) == ["subcategory", "price", "tier", "tier_source"]
    assert ladder.index.name == "item_id"
    assert list(ladder.index) == ["a", "b", "c", "d", "e", "f"]  # g has no subcategory, h no price
    assert ladder["tier"].to_dict() == {"a": 3.0, "b": 1.0, "c": 2.0, "d": 1.0, "e": 3.0, "f": 3.0}
    assert ladder["tier_source"].to_dict() == {
        "a": "price", "b": "price", "c": "price", "d": "column", "e": "column", "f": "price",
    }


def test_price_tiers_are_quantiles_within_the_subcategory() -> None:
    items = pd.DataFrame({"item_id": list("uvwxyz"), "subcategory": ["s3"] * 6})
    prices = pd.Series(dict(zip("uvwxyz", [6.0, 5.0, 4.0, 3.0, 2.0, 1.0], strict=True)))
    ladder = price_ladders(items, prices, n_tiers=3)
    assert ladder["tier"].to_dict() == {"u": 3.0, "v": 3.0, "w": 2.0, "x": 2.0, "y": 1.0, "z": 1.0}
    assert (ladder["tier_source"] == "price").all()


def test_price_ladders_without_subcategories_are_empty() -> None:
    ladder = price_ladders(pd.DataFrame({"item_id": ["a"]}), pd.Series({"a": 1.0}))
    assert ladder.empty
    assert list(ladder.columns) == ["subcategory", "price", "tier", "tier_source"]
