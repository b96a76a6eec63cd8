"""What a registered model answers: the only surface the service knows.

The service never imports fitting or evaluation code. It loads the registered MLflow pyfunc,
unwraps it (`model.unwrap_python_model().recommender`) and talks to an object with exactly the
methods of `SuggestionModel` below. Every suggestion is a plain dict, ready for JSON.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

#: Kinds a client can ask for. `all` in the HTTP API means each of these, grouped.
KINDS: tuple[str, ...] = ("cross_sell", "upsell", "service_package", "replenishment")

Suggestion = dict[str, Any]
"""{"item_id", "name", "kind", "score", "price", "reason", ...kind-specific extras}."""


class SuggestionModel(Protocol):
    """The interface every registered model version implements."""

    #: {"model_format": 1, "trained_at": iso, "data": fingerprint, "params": {...}}
    meta: dict[str, Any]

    def knows_client(self, client_id: str) -> bool: ...

    def knows_item(self, item_id: str) -> bool: ...

    def segment(self, client_id: str) -> dict[str, Any]:
        """{"abc": "A"|"B"|"C"|None, "activity": "active"|"lapsing"|"inactive"|None, "rfm": str|None}."""

    def suggest(self, client_id: str, kind: str, limit: int = 10, *, category: str | None = None,
                exclude: Sequence[str] = (), recent_purchases: Sequence[str] = ()) -> list[Suggestion]:
        """Ranked suggestions of one kind. Unknown clients get cold-start suggestions.
        `recent_purchases`: item ids bought since training (from the event stream); they leave
        cross-sell at once and refresh the client's taste vector. ValueError on an unknown kind."""

    def cart(self, items: Sequence[str], client_id: str | None = None, limit: int = 10, *,
             recent_purchases: Sequence[str] = ()) -> dict[str, Any]:
        """{"complete": [Suggestion], "upsell": [Suggestion], "bundles": [{"bundle_id", "name",
        "items": [item ids], "price", "bundle_price", "score", "reason"}], "unknown_items": [ids]}."""

    def similar(self, item_id: str, limit: int = 10) -> list[Suggestion]:
        """Items like this one. KeyError when the item is unknown to the model."""

    def smoke_check(self) -> None:
        """Answer a few known requests and raise ValueError if an answer is wrong (NaN scores,
        nothing for a known client, ids outside the catalogue). Run before a version is swapped in."""
