"""What an item is to a client: its product group, product type, pack size and brand level.

A catalogue lists codes; a client sees products. In Complete Journey 68,509 codes carry only
14,763 distinct names, because most codes are flavour, brand or pack variants of one product:
two of them in one list read as the same suggestion twice. These pure functions derive, from
the items table alone, the facts every presentability rule reads:

- the **product group**: items that are the same thing to a client (the same normalised name,
  or the same product type, size and brand under different codes);
- the **product type**: the finest grouping the data has (`product_type`, else `subcategory`),
  within which an upsell moves;
- the **pack size** in comparable units ("32 OZ" against "2 LB"), for "a larger pack";
- the **brand level** (private label 0, national or named brand 1), for "a better brand".
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

#: Units of weight and volume, in grams or millilitres. Grams and millilitres are counted as one
#: unit family ("amount"): shelf labels use OZ for liquids as often as FL OZ, and a density near
#: water's makes "64 OZ" of milk and "1 GAL" comparable, which is all a larger-pack rule needs.
AMOUNT_UNITS = {"FL OZ": 29.5735, "FLOZ": 29.5735, "OZ": 28.3495, "LB": 453.592, "LBS": 453.592,
                "KG": 1000.0, "G": 1.0, "GR": 1.0, "GM": 1.0, "ML": 1.0, "CL": 10.0, "L": 1000.0,
                "LT": 1000.0, "LTR": 1000.0, "LITER": 1000.0, "LITRE": 1000.0, "QT": 946.353,
                "PT": 473.176, "GAL": 3785.41, "GA": 3785.41}
#: Units that count pieces.
COUNT_UNITS = {"CT": 1.0, "CNT": 1.0, "COUNT": 1.0, "PK": 1.0, "PACK": 1.0, "EA": 1.0, "PC": 1.0,
               "PCS": 1.0, "DZ": 12.0, "DOZ": 12.0, "ROLL": 1.0, "ROLLS": 1.0}
UNIT_FAMILIES = ("unknown", "amount", "count")
#: "a/b UNIT" is a fraction when a < b and b is one of these ("1/2 GAL"), else a multipack ("6/12 OZ").
FRACTION_DENOMINATORS = frozenset({2.0, 3.0, 4.0, 8.0})

_SIZE = re.compile(r"(?:(?<![\d.])(\d+)\s+(?=\d+\s*/))?(\d+(?:\.\d+)?)(?:\s*/\s*(\d+(?:\.\d+)?))?\s*(" + "|".join(
    sorted((re.escape(u) for u in {**AMOUNT_UNITS, **COUNT_UNITS}), key=len, reverse=True)) + r")\b")
#: Words naming a private label or store brand in a `brand` column.
_PRIVATE = re.compile(r"\b(private|store|own|house|generic|value)\b", re.IGNORECASE)


def parse_package_size(text: object) -> tuple[float, str] | None:
    """(amount in base units, unit family) of a pack size such as "32 OZ", "2 LB", "12 CT",
    "6/12 OZ" (six of twelve ounces: 72 OZ), "1/2 GAL" (half a gallon); None when the text holds
    no size we can compare."""
    if not isinstance(text, str) or not text.strip():
        return None
    match = _SIZE.search(text.upper().replace("FL. OZ", "FL OZ"))
    if match is None:
        return None
    whole, first, second, unit = match.group(1), float(match.group(2)), match.group(3), match.group(4)
    if second is None:
        amount = first
    elif whole is not None or (first < float(second) and float(second) in FRACTION_DENOMINATORS):
        # "1/2 GAL" is half a gallon, "10 3/4 OZ" ten and three quarter ounces
        amount = float(whole or 0) + first / float(second)
    else:
        amount = first * float(second)  # "6/12 OZ" is six of twelve ounces
    if unit in AMOUNT_UNITS:
        return amount * AMOUNT_UNITS[unit], "amount"
    return amount * COUNT_UNITS[unit], "count"


def size_label(text: object) -> str | None:
    """The pack size of a label as a reason writes it: "L     9 OZ" -> "9 OZ", "(600) 4 LB" ->
    "4 LB"; None when the text holds no size we can read."""
    if not isinstance(text, str):
        return None
    match = _SIZE.search(text.upper().replace("FL. OZ", "FL OZ"))
    if match is None:
        return None
    number = (f"{match.group(1)} " if match.group(1) else "") + match.group(2) + (
        f"/{match.group(3)}" if match.group(3) else "")
    return f"{number} {match.group(4)}"


def normalised_name(name: object) -> str:
    """A name as a client reads it: case, punctuation and spacing do not make another product."""
    if not isinstance(name, str):
        return ""
    text = re.sub(r"[^0-9a-z.]+", " ", name.lower())
    return re.sub(r"\s+", " ", re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)).strip()


def _column(items: pd.DataFrame, name: str) -> pd.Series:
    if name in items.columns:
        return items[name].astype(object).where(items[name].notna(), None)
    return pd.Series([None] * len(items), index=items.index, dtype=object)


def product_type_of(items: pd.DataFrame) -> pd.Series:
    """Per item, the finest grouping the data has: `product_type`, else `subcategory` (None)."""
    return _column(items, "product_type").combine_first(_column(items, "subcategory"))


def brand_levels(items: pd.DataFrame) -> pd.Series:
    """Per item: 0 for a private label, 1 for a national or named brand, NaN without a brand."""
    brand = _column(items, "brand")
    level = brand.map(lambda b: np.nan if b is None or not str(b).strip()
                      else 0.0 if _PRIVATE.search(str(b)) else 1.0)
    return level.astype(np.float64)


def product_groups(items: pd.DataFrame) -> np.ndarray:
    """Per item row, a group code (0..n-1): rows with the same normalised name, or the same
    product type, pack size and brand, share one (joined transitively, union-find)."""
    n = len(items)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(keys: pd.Series) -> None:
        first: dict[object, int] = {}
        for row, key in enumerate(keys.tolist()):
            if key is None or key != key:  # None or NaN: no key, no join
                continue
            if key in first:
                a, b = find(row), find(first[key])
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                first[key] = row

    names = _column(items, "name").map(normalised_name)
    join(names.where(names != "", None))
    ptype, size, brand = _column(items, "product_type"), _column(items, "package_size"), _column(items, "brand")
    has_all = ptype.notna() & size.notna() & brand.notna()
    keyed = (ptype.astype(str).str.upper() + "|" + size.astype(str).str.upper().str.replace(r"\s+", "", regex=True)
             + "|" + brand.astype(str).str.upper())
    join(keyed.where(has_all, None))
    roots = np.array([find(i) for i in range(n)], dtype=np.int64)
    return pd.factorize(roots)[0].astype(np.int32)


def group_report(items: pd.DataFrame, groups: np.ndarray, examples: int = 5) -> dict[str, object]:
    """What the trainer says about the groups it formed: counts and the largest, with examples."""
    sizes = np.bincount(groups) if len(groups) else np.zeros(0, np.int64)
    names = _column(items, "name").fillna(_column(items, "item_id")).astype(str).to_numpy()
    largest = np.argsort(-sizes, kind="stable")[:examples]
    return {"items": int(len(groups)), "groups": int(sizes.size),
            "groups_with_variants": int((sizes > 1).sum()),
            "largest": [{"size": int(sizes[g]), "example": str(names[np.flatnonzero(groups == g)[0]])}
                        for g in largest if sizes.size]}
