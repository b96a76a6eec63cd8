"""What every answer reads about the model's items and clients, derived once when a model loads.

`ModelState` holds the saved arrays; this adds the lookups and normalised signals that each
request would otherwise recompute (id positions, names, unit factors, popularity on a 0-1 scale,
the products mask) and builds the JSON shape of one suggestion. It never changes after loading,
so copies of a `Recommender` (another set of weights, no candidate lists) share it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scoring import fallback, objective
from scoring.contract import Suggestion
from scoring.ranking import member_of, minmax
from scoring.state import ModelState

#: Item facts on every suggestion (None when the items file has no such column or value).
FACTS = ("brand", "package_size", "category", "subcategory", "product_type")
#: Item links, on suggestions only when the items file has them.
LINKS = ("image_url", "url")
#: Why a suggestion has `price: null`.
NO_PRICE = "no positive price in the catalogue or the sales history"

#: Client value classes, in the order of `ModelState.client_abc` codes (0=A).
ABC = ("A", "B", "C")
#: Client activity classes (`ModelState.clients["activity"]`).
ACTIVITY = ("active", "lapsing", "inactive")


def _strings(table: Any, column: str) -> np.ndarray:
    """A table's column as plain Python strings (empty table: empty array)."""
    return table[column].astype(str).to_numpy(dtype=object) if len(table) else np.empty(0, dtype=object)


class Catalogue:
    """Items and clients of one model, as arrays the kinds index by position."""

    def __init__(self, state: ModelState) -> None:
        self.state = state
        items, clients = state.items, state.clients
        self.item_ids = items["item_id"].to_numpy(dtype=object)
        self.client_ids = clients["client_id"].to_numpy(dtype=object)
        self.item_pos = {item_id: i for i, item_id in enumerate(self.item_ids.tolist())}
        self.client_pos = {cid: i for i, cid in enumerate(self.client_ids.tolist())}
        self.segments = {name: clients[name].astype(object).where(clients[name].notna(), None).to_numpy()
                         for name in ("abc", "activity", "rfm")}
        self.names = items["name"].fillna(items["item_id"]).astype(str).to_numpy(dtype=object)
        self.categories = items["category"].astype(object).to_numpy()
        self.subcategories = items["subcategory"].astype(object).to_numpy()
        self.n_items = len(self.item_ids)
        norms = np.linalg.norm(state.item_factors, axis=1, keepdims=True)
        self.unit_factors = np.divide(state.item_factors, norms, out=np.zeros_like(state.item_factors),
                                      where=norms > 0)
        self.pop_score = minmax(np.log1p(state.item_pop))
        self.recent_pop_score = minmax(np.log1p(state.item_recent_pop))
        #: what may be offered as a product: no service, in stock, merchandise (no fee or coupon)
        self.products = ~state.item_service & state.item_in_stock & state.item_merch
        self.groups, self.types = state.item_group, state.item_type
        self.n_groups = int(self.groups.max(initial=-1)) + 1
        self.n_types = int(self.types.max(initial=-1)) + 1
        # the facts every suggestion carries (the cart widget and the CRM card show them): every
        # one of FACTS, and the LINKS the items file has
        links = tuple(col for col in LINKS if col in items and items[col].notna().any())
        self.facts = {col: (items[col].astype(object).where(items[col].notna(), None).to_numpy()
                            if col in items else np.full(len(items), None, dtype=object))
                      for col in (*FACTS, *links)}
        self.currency = str(state.meta.get("currency") or "")
        #: pack sizes as reasons write them ("9 OZ"); the raw label where the model has none
        labels = items["size_label"] if "size_label" in items else self.facts["package_size"]
        self.size_labels = np.asarray(labels, dtype=object)
        self.has_margins = objective.has_margins(state.item_margin)
        self.n_packages = len(state.packages)
        # plain arrays: a pandas row lookup costs ~0.1 ms, ten of them per answer was most of its time
        self.bundle_ids, self.bundle_names = _strings(state.bundles, "bundle_id"), _strings(state.bundles, "name")
        self.package_ids, self.package_names = _strings(state.packages, "package_id"), _strings(state.packages, "name")
        self.reg = float(state.meta.get("params", {}).get("regularization", 0.01))
        self.fallback = fallback.chain(state.meta)

    def item_index(self, item_ids: Sequence[str]) -> np.ndarray:
        """Positions of the known ids among `item_ids` (unknown ids are left out)."""
        return np.array([self.item_pos[i] for i in item_ids if i in self.item_pos], dtype=np.int64)

    def history(self, ci: int | None) -> tuple[np.ndarray, slice]:
        """The client's items and their slice of the `hist_*` arrays (nothing for an unknown client)."""
        if ci is None:
            return np.empty(0, dtype=np.int64), slice(0, 0)
        lo, hi = self.state.hist_indptr[ci], self.state.hist_indptr[ci + 1]
        return self.state.hist_indices[lo:hi].astype(np.int64), slice(lo, hi)

    def segment_label(self, ci: int | None) -> str | None:
        return None if ci is None else ABC[int(self.state.client_abc[ci])]

    def allowed(self, *, category: str | None, exclude: Sequence[str]) -> np.ndarray:
        """The request's filter over items: in stock, in `category` (or subcategory), not excluded.
        Excluding an item excludes its product group: another code of it is the same thing."""
        allowed = self.state.item_in_stock.copy()
        if category:
            allowed &= (self.categories == category) | (self.subcategories == category)
        allowed &= ~self.in_groups_of(self.item_index(exclude))
        return allowed

    def in_groups_of(self, items: np.ndarray) -> np.ndarray:
        """Mask over items: of the product group of one of `items`."""
        return member_of(self.groups, self.groups[items], self.n_groups)

    def of_types(self, types: np.ndarray) -> np.ndarray:
        """Mask over items: of one of the product type codes `types` (an item without one: never)."""
        return member_of(self.types, types, self.n_types)

    def price_of(self, idx: int) -> float | None:
        """The item's typical positive price to cents, or None (never 0: a zero is no price)."""
        price = float(self.state.item_price[idx])
        return round(price, 2) if math.isfinite(price) and price > 0 else None

    def together(self, anchor: int, confidence: float) -> int:
        """Baskets holding both `anchor` and an item bought with it at `confidence`."""
        return int(round(float(confidence) * float(self.state.item_baskets[anchor])))

    def suggestion(self, idx: int, kind: str, score: float, reason: str, **extra: Any) -> Suggestion:
        """Item `idx` as the contract's `Suggestion` (score to 6 places, price to cents), with
        the item's facts; a missing price says why."""
        price = self.price_of(idx)
        out: Suggestion = {
            "item_id": str(self.item_ids[idx]),
            "name": str(self.names[idx]),
            "kind": kind,
            "score": round(float(score), 6),
            "price": price,
            "reason": reason,
            "product_group": str(int(self.groups[idx])),
        }
        if price is None:
            out["price_note"] = NO_PRICE
        for col, values in self.facts.items():
            value = values[idx]
            out[col] = None if value is None else str(value)  # type: ignore[literal-required]
        out.update(extra)  # type: ignore[typeddict-item]
        return out
