"""What every answer reads about the model's items and clients, derived once when a model loads.

`ModelState` holds the saved arrays; this adds the lookups and normalised signals that each
request would otherwise recompute (id positions, names, unit factors, popularity on a 0-1 scale,
the products mask) and builds the JSON shape of one suggestion. It never changes after loading,
so copies of a `Recommender` (another set of weights, no candidate lists) share it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scoring import fallback, objective
from scoring.contract import Suggestion
from scoring.ranking import minmax
from scoring.state import ModelState

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
        self.products = ~state.item_service & state.item_in_stock
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
        """The request's filter over items: in stock, in `category` (or subcategory), not excluded."""
        allowed = self.state.item_in_stock.copy()
        if category:
            allowed &= (self.categories == category) | (self.subcategories == category)
        allowed[self.item_index(exclude)] = False
        return allowed

    def suggestion(self, idx: int, kind: str, score: float, reason: str, **extra: Any) -> Suggestion:
        """Item `idx` as the contract's `Suggestion` (score to 6 places, price to cents)."""
        price = float(self.state.item_price[idx])
        out: Suggestion = {
            "item_id": str(self.item_ids[idx]),
            "name": str(self.names[idx]),
            "kind": kind,
            "score": round(float(score), 6),
            "price": None if np.isnan(price) else round(price, 2),
            "reason": reason,
        }
        out.update(extra)  # type: ignore[typeddict-item]
        return out
