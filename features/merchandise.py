"""Lines that are not merchandise: fees, coupons, fuel, gift cards, deposits, manual adjustments.

A till records more than products: a bag fee, a redeemed coupon, a fill of petrol, a "misc sales"
key. Offered to a client they read as nonsense ("replenish: Gasoline"), they swamp bundles (a
coupon is in every basket) and they inflate "bought regularly". `non_merchandise` recognises them
from what the data shows, and says for each flagged item why, so that a person can check the
list: a staple such as milk or bananas must never be on it, and an allow-list un-flags a false
positive. Signals, each cheap and explainable:

- the items file says so: `kind = fee`;
- the words of its name, category, subcategory or product type (coupon, fee, fuel, gift card...);
- an id that is a code, not a product (`FEE-12`, `COUPON`, `ADJ...`);
- a price of zero or below on every line that has a price;
- a line in a large share of baskets at one constant, small price (a bag fee, a deposit).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from features.schema import ITEM, KIND_FEE, ORDER, PRICE, QUANTITY

#: Words that mark a non-merchandise line wherever they appear in its descriptive columns.
WORDS = (r"coupons?|fees?|fuel|gasoline|diesel|propane exchange|postage|stamps|deposits?|bank|"
         r"charges?|gift ?cards?|misc\.? sales|sales trans|manual (?:entry|line|item|adj\w*|sale\w*)|"
         r"adjustments?|lottery|lotto|"
         r"tickets|key ring|service charge|surcharge|tips?|gratuity|donations?|bottle return|"
         r"store supplies|central supplies")
_WORDS = rf"\b(?:{WORDS})\b"
_WORD = rf"\b({WORDS})\b"
#: Ids that are codes for something other than a product.
_CODE_ID = r"^(?:fee|coupon|cpn|adj|adjust|deposit|misc|manual|discount|tax)\b"
#: The items column `mark` writes: why an item is not merchandise (NaN for merchandise).
REASON = "non_merchandise_reason"
DESCRIPTIVE = ("name", "category", "subcategory", "product_type")

#: A line in at least this share of baskets, at one price on this share of its lines, below
#: `CONSTANT_PRICE_CEILING` of the median item price, is a charge rather than a product.
BASKET_SHARE = 0.02
CONSTANT_SHARE = 0.98
CONSTANT_PRICE_CEILING = 0.25


def non_merchandise(items: pd.DataFrame | None, transactions: pd.DataFrame | None = None, *,
                    declared: Iterable[str] = (), allowed: Iterable[str] = ()) -> pd.DataFrame:
    """The items that are not merchandise, one row each: item_id and the first reason found.

    `declared` adds item ids from configuration; `allowed` removes ids (a false positive a person
    un-flagged), and wins over every signal, declared ones included.
    """
    reasons: dict[str, str] = {}

    def flag(ids: Iterable[object], reason: str) -> None:
        for item_id in ids:
            reasons.setdefault(str(item_id), reason)

    flag(declared, "declared in configuration (NON_MERCHANDISE)")
    if items is not None and len(items):
        ids = items[ITEM].astype(str)
        if "kind" in items.columns:
            flag(ids[items["kind"].astype(str).str.lower().eq(KIND_FEE)], "kind=fee in the items file")
        for column in DESCRIPTIVE:
            if column in items.columns:
                text = items[column].astype(str).where(items[column].notna(), "")
                hit = text.str.contains(_WORDS, case=False, regex=True)
                words = text[hit].str.extract(_WORD, flags=2, expand=False).str.lower()
                for item_id, word in zip(ids[hit], words, strict=True):
                    reasons.setdefault(item_id, f"{column} says {word!r}")
        flag(ids[ids.str.contains(_CODE_ID, case=False, regex=True)], "its id is a code, not a product")
    if transactions is not None and len(transactions):
        for item_id, reason in _from_lines(transactions).items():
            reasons.setdefault(item_id, reason)
    for item_id in allowed:
        reasons.pop(str(item_id), None)
    return pd.DataFrame({ITEM: list(reasons), "reason": list(reasons.values())}, columns=[ITEM, "reason"])


def _from_lines(tx: pd.DataFrame) -> dict[str, str]:
    """Flags read from the purchase lines: non-positive prices, constant small charges."""
    if PRICE not in tx.columns:
        return {}
    bought = tx[(tx[QUANTITY] > 0) & tx[PRICE].notna()] if QUANTITY in tx.columns else tx[tx[PRICE].notna()]
    if bought.empty:
        return {}
    out: dict[str, str] = {}
    by_item = bought.groupby(ITEM, sort=False)[PRICE]
    top = by_item.max()
    for item_id in top.index[top <= 0]:
        out[str(item_id)] = "never sold at a price above zero"
    if ORDER in bought.columns:
        n_baskets = bought[ORDER].nunique()
        baskets = bought.groupby(ITEM, sort=False)[ORDER].nunique()
        frequent = baskets.index[baskets >= max(BASKET_SHARE * n_baskets, 20)]
        if len(frequent):
            lines = bought[bought[ITEM].isin(frequent)]
            modal = lines.groupby(ITEM)[PRICE].agg(lambda p: p.round(2).value_counts(normalize=True).iloc[0])
            price = lines.groupby(ITEM)[PRICE].median()
            ceiling = CONSTANT_PRICE_CEILING * float(np.nanmedian(by_item.median().to_numpy()))
            for item_id in modal.index[(modal >= CONSTANT_SHARE) & (price <= ceiling)]:
                out.setdefault(str(item_id), f"in {baskets[item_id]:,} of {n_baskets:,} baskets at one "
                                             f"constant price ({price[item_id]:.2f})")
    return out


def report(flagged: pd.DataFrame, items: pd.DataFrame | None) -> dict[str, object]:
    """What the trainer prints and the model's metadata keeps: how many, why, and every one of
    them (a person checks the list for a staple flagged by mistake, then allow-lists it)."""
    names = (items.drop_duplicates(ITEM).set_index(ITEM)["name"].astype(str)
             if items is not None and "name" in items.columns else pd.Series(dtype=str))
    by_reason = flagged["reason"].str.replace(r" says '.*'$", " says ...", regex=True).value_counts()
    return {"count": int(len(flagged)), "by_reason": {str(k): int(v) for k, v in by_reason.items()},
            "examples": [{"item_id": str(row[ITEM]), "name": str(names.get(row[ITEM], row[ITEM])),
                          "reason": str(row["reason"])} for row in flagged.to_dict("records")]}


def mark(items: pd.DataFrame | None, transactions: pd.DataFrame, *, declared: Iterable[str] = (),
         allowed: Iterable[str] = ()) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """(items with every flagged item's kind set to `fee`, the flagged table).

    Downstream code needs one question answered, "is this merchandise?", so the answer is
    written into the catalogue once: an item flagged here but missing from the items file gets
    a row of its own. Price signals read every line the loader accepted (a fee is a fee in the
    test window too); nothing about a client is learnt from them.
    """
    flagged = non_merchandise(items, transactions, declared=declared, allowed=allowed)
    if flagged.empty:
        return items, flagged
    base = items if items is not None else pd.DataFrame({ITEM: pd.Series(dtype=object)})
    missing = flagged.loc[~flagged[ITEM].isin(base[ITEM].astype(str)), ITEM]
    out = pd.concat([base, pd.DataFrame({ITEM: missing.to_numpy(dtype=object)})], ignore_index=True)
    out["kind"] = out["kind"].astype(object) if "kind" in out.columns else "product"
    out["kind"] = out["kind"].where(out["kind"].notna(), "product")
    out.loc[out[ITEM].astype(str).isin(flagged[ITEM]), "kind"] = KIND_FEE
    out[REASON] = out[ITEM].astype(str).map(flagged.set_index(ITEM)["reason"])
    return out, flagged
