"""What a registered model answers, and the names both sides of Redis agree on.

The service imports this module and nothing else of `scoring` or `training`: it loads the
registered MLflow pyfunc, unwraps it (`model.unwrap_python_model().recommender`) and talks to an
object with exactly the methods of `SuggestionModel`. The trainer writes the same Redis keys the
service reads (erasures, model-update notices), so their names live here, once. (The service
reaches past this module in one place: a model registered before models were saved as code is
read from its arrays by `scoring.pyfunc.load_model_folder`, so that no pickle is executed.)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NotRequired, Protocol, TypedDict, runtime_checkable

#: Kinds a client can ask for.
KINDS: tuple[str, ...] = ("cross_sell", "upsell", "service_package", "replenishment", "next_basket")
#: What `all` in the HTTP API means: each of these, grouped. Not next_basket: its one list holds
#: replenishment's and cross-sell's items again, and an item appears in one section of `all` only.
GROUPED_KINDS: tuple[str, ...] = tuple(kind for kind in KINDS if kind != "next_basket")

class Suggestion(TypedDict):
    """One suggestion, ready for JSON. Kind-specific extras are optional keys."""

    item_id: str
    name: str
    kind: str
    score: float
    price: float | None
    reason: str
    upgrade_from: NotRequired[str | None]      # upsell: the item it replaces
    price_difference: NotRequired[float | None]  # upsell: price step over what it replaces
    due: NotRequired[bool]                     # replenishment, next_basket's own items: the usual interval has elapsed
    due_in_days: NotRequired[float | None]     # the same: days until it is due (negative: overdue)
    items: NotRequired[list[str]]              # packages and bundles: their member item ids
    tier: NotRequired[float | None]            # packages: the ordered level
    bundle_id: NotRequired[str]                # bundles
    bundle_price: NotRequired[float]           # bundles: the discounted price


class CartAnswer(TypedDict):
    complete: list[Suggestion]
    upsell: list[Suggestion]
    bundles: list[Suggestion]
    unknown_items: list[str]


@runtime_checkable
class SuggestionModel(Protocol):
    """The interface every registered model version implements (the real model and test doubles)."""

    #: {"model_format": int (see scoring.state), "trained_at": iso, "data": fingerprint, "params": {...}}
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
             recent_purchases: Sequence[str] = ()) -> CartAnswer:
        """What completes the basket, upsells of its items, and bundle offers with their bundle price."""

    def similar(self, item_id: str, limit: int = 10) -> list[Suggestion]:
        """Items like this one. KeyError when the item is unknown to the model."""

    def smoke_check(self) -> None:
        """Answer a few known requests and raise ValueError if an answer is wrong (NaN scores,
        nothing for a known client, ids outside the catalogue). Run before a version is swapped in."""


#: Method names of the protocol, derived from it (the service checks a loaded model has them all).
CONTRACT_METHODS: tuple[str, ...] = tuple(
    name for name, value in vars(SuggestionModel).items() if callable(value) and not name.startswith("_"))

#: Default pub/sub channel of "an alias moved" notices: {"name", "alias", "version"}.
MODEL_UPDATES_CHANNEL = "crm-recommender:model-updates"


def erasures_key(tenant: str) -> str:
    """Redis set of the client ids erased on request in `tenant`: the service adds to it, the
    trainer excludes its members. The default tenant keeps the historical name `erasures`."""
    return "erasures" if tenant == "default" else f"erasures:{tenant}"
