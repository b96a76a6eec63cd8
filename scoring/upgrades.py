"""What counts as an upsell: the same need at a higher level, never another product.

An upsell of item `a` is an item `b` of the same product type (the finest grouping the data has)
and another product group, dearer than `a`, that is one of:

- a **higher tier**: both carry the catalogue's `tier` and b's is higher;
- a **larger pack**: both pack sizes parse to the same unit family and b's is at least 5 % larger,
  with a brand no worse than a's ("the 2 LB pack of what you buy");
- a **better brand**: b's brand level is higher (private label -> national brand) in a pack at
  least as large, or neither size is known.

One definition, read by the upsell kind, the cart's upsells, the trade-up counts of training and
the evaluation's upsell task, so that what we measure is what we answer.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from scoring.catalogue import Catalogue

NONE, HIGHER_TIER, LARGER_PACK, BETTER_BRAND = 0, 1, 2, 3
#: Step names, by code, as the API writes them (`upsell_step`).
STEPS = ("", "higher_tier", "larger_pack", "better_brand")
#: A pack must be this much larger to be "a larger pack" (not a relabelled 16 OZ against 1 LB).
LARGER = 1.05


class ItemArrays(Protocol):
    """The item arrays the definition reads (a `ModelState`, or training's `ItemFacts`)."""

    item_type: np.ndarray
    item_group: np.ndarray
    item_price: np.ndarray
    item_tier: np.ndarray
    item_size: np.ndarray
    item_size_unit: np.ndarray
    item_brand_level: np.ndarray


def step_up(st: ItemArrays, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair (a[i], b[i]) (or broadcast shapes), the step that makes b an upsell of a
    (HIGHER_TIER, LARGER_PACK, BETTER_BRAND) or NONE."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    same = (st.item_type[a] >= 0) & (st.item_type[a] == st.item_type[b]) & (st.item_group[a] != st.item_group[b])
    pa, pb = st.item_price[a], st.item_price[b]
    dearer = same & np.isfinite(pa) & np.isfinite(pb) & (pb > pa * 1.0001)
    ta, tb = st.item_tier[a], st.item_tier[b]
    tier = dearer & np.isfinite(ta) & np.isfinite(tb) & (tb > ta)
    ua, ub, sa, sb = st.item_size_unit[a], st.item_size_unit[b], st.item_size[a], st.item_size[b]
    comparable = (ua > 0) & (ua == ub) & np.isfinite(sa) & np.isfinite(sb)
    la, lb = st.item_brand_level[a], st.item_brand_level[b]
    brand_known = np.isfinite(la) & np.isfinite(lb)
    no_worse = ~brand_known | (lb >= la)
    pack = dearer & comparable & (sb >= sa * LARGER) & no_worse
    unsized = (ua == 0) & (ub == 0)
    brand = dearer & brand_known & (lb > la) & ((comparable & (sb >= sa / LARGER)) | unsized)
    return np.where(tier, HIGHER_TIER, np.where(pack, LARGER_PACK, np.where(brand, BETTER_BRAND, NONE))).astype(np.int8)


def upgrade_detail(cat: Catalogue, item: int, step: str) -> str:
    """What a reason says of the step: the pack size of a larger pack ("the 2 LB pack of...")."""
    size = cat.size_labels[item]
    return str(size) if step == "larger_pack" and size else "larger"
