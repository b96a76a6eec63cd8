"""Prices and price ladders: what "a step up" means inside a subcategory, for upsell.

Upsell suggests the better (dearer) version of what the client already buys. That needs, per
subcategory, an ordering of items by level: the catalogue's own tier when it has one, otherwise
price bands.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from features.schema import ITEM, PRICE, QUANTITY

TIER_WORDS = {
    **dict.fromkeys(("basic", "entry", "economy"), 1.0),
    **dict.fromkeys(("standard", "regular", "plus"), 2.0),
    **dict.fromkeys(("premium", "pro", "gold"), 3.0),
    **dict.fromkeys(("ultimate", "platinum", "enterprise"), 4.0),
}

LADDER_COLUMNS = ["subcategory", "price", "tier", "tier_source"]


def tier_rank(values: pd.Series) -> pd.Series:
    """Ordered level -> float rank. Numeric strings/numbers used as is; known words ranked basic/entry/economy=1 < standard/regular/plus=2 < premium/pro/gold=3 < ultimate/platinum/enterprise=4 (case-insensitive); anything else NaN.

    Why: CRM catalogues label levels in words or numbers; upsell only needs to know which is higher.
    """
    values = pd.Series(values)
    numeric = pd.to_numeric(values.astype("str").str.strip(), errors="coerce").astype(np.float64)
    words = values.astype("str").str.strip().str.lower().map(TIER_WORDS).astype(np.float64)
    return numeric.fillna(words).rename(values.name)


def item_unit_prices(transactions: pd.DataFrame, items: pd.DataFrame | None = None) -> pd.Series:
    """item_id -> typical unit price: items.price where given, else the median positive paid price over positive lines.

    The catalogue price is what the client will be quoted; paid prices fill the gaps, the median
    ignoring one-off discounts and mistyped lines. Items with neither are left out.
    """
    paid = transactions[(transactions[QUANTITY] > 0) & (transactions[PRICE] > 0)]
    prices = paid.groupby(ITEM)[PRICE].median().astype(np.float64)
    if items is not None and PRICE in items.columns:
        listed = items.dropna(subset=[PRICE]).drop_duplicates(ITEM, keep="last").set_index(ITEM)[PRICE]
        listed = listed[listed > 0]  # a price of zero or below is no price a client can be quoted
        prices = listed.astype(np.float64).combine_first(prices)
    prices.index = prices.index.astype("str").rename(ITEM)
    return prices.sort_index().rename(PRICE)


def price_ladders(items: pd.DataFrame, unit_prices: pd.Series, n_tiers: int = 3) -> pd.DataFrame:
    """index item_id; columns subcategory, price, tier, tier_source ("column" | "price").

    tier is the items' 'tier' column via tier_rank where given, else the price quantile tier 1..n_tiers
    within the subcategory (rank(pct=True): with 3 tiers the cheapest third is 1, the dearest 3).
    Items without subcategory or price are left out. Why: "a step up" for upsell is a higher tier
    in the same subcategory; the catalogue knows best, prices are the fallback.
    """
    if n_tiers < 1:
        raise ValueError("n_tiers must be at least 1")
    if "subcategory" not in items.columns:
        return _empty_ladder()
    catalogue = items.drop_duplicates(ITEM, keep="last").set_index(ITEM)
    catalogue.index = catalogue.index.astype("str")
    ladder = pd.DataFrame(
        {
            "subcategory": catalogue["subcategory"],
            "price": unit_prices.reindex(catalogue.index).astype(np.float64),
        }
    ).dropna(subset=["subcategory", "price"])

    pct = ladder.groupby("subcategory")["price"].rank(method="average", pct=True)
    price_tier = np.clip(np.ceil(pct.to_numpy(dtype=np.float64) * n_tiers - 1e-9), 1, n_tiers)
    column_tier = (
        tier_rank(catalogue["tier"]).reindex(ladder.index)
        if "tier" in catalogue.columns
        else pd.Series(np.nan, index=ladder.index)
    ).to_numpy(dtype=np.float64, na_value=np.nan)
    from_column = ~np.isnan(column_tier)
    ladder["tier"] = np.where(from_column, column_tier, price_tier)
    ladder["tier_source"] = pd.Series(np.where(from_column, "column", "price"), index=ladder.index).astype("str")
    ladder.index.name = ITEM
    return ladder.sort_index()[LADDER_COLUMNS]


def _empty_ladder() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subcategory": pd.Series(dtype="str"),
            "price": pd.Series(dtype=np.float64),
            "tier": pd.Series(dtype=np.float64),
            "tier_source": pd.Series(dtype="str"),
        },
        index=pd.Index([], dtype="str", name=ITEM),
    )
