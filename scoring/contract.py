"""What a registered model answers, and the names both sides of Redis agree on.

The service imports this module and nothing else of `scoring` or `training`: it loads the
registered MLflow pyfunc, unwraps it (`model.unwrap_python_model().recommender`) and talks to an
object with exactly the methods of `SuggestionModel`. The trainer writes the same Redis keys the
service reads (erasures, model-update notices), so their names live here, once. (The service
reaches past this module in one place: a model registered before models were saved as code is
read from its arrays by `scoring.pyfunc.load_model_folder`, so that no pickle is executed.)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, NotRequired, Protocol, TypedDict, runtime_checkable

#: Kinds a client can ask for.
KINDS: tuple[str, ...] = ("cross_sell", "upsell", "service_package", "replenishment", "next_basket")
#: What `all` in the HTTP API means: each of these, grouped. Not next_basket: its one list holds
#: replenishment's and cross-sell's items again, and an item appears in one section of `all` only.
GROUPED_KINDS: tuple[str, ...] = tuple(kind for kind in KINDS if kind != "next_basket")
#: What a list may be ranked by: the kind's relevance, or expected value (`scoring.objective`).
OBJECTIVES: tuple[str, ...] = ("relevance", "revenue", "margin")


class ObjectiveUnavailable(ValueError):
    """The objective is known but this model has no data for it (margin without `items.margin`)."""


class ScoreBreakdown(TypedDict):
    """Why a suggestion sits where it does, in numbers (`scoring.objective` says how each is made)."""

    relevance: float                 # the kind's own score
    probability: float | None        # chance of a purchase; None where nothing estimates it
    probability_source: str          # "learnt", "rank" (calibrated on the inner split), "rank-unmeasured", "none"
    expected_revenue: float | None   # probability x price; None without a positive price
    expected_margin: NotRequired[float | None]  # probability x margin, when the model has margins

class Suggestion(TypedDict):
    """One suggestion, ready for JSON. Kind-specific extras are optional keys."""

    item_id: str
    name: str
    kind: str
    score: float
    price: float | None                        # the item's typical positive price; never 0
    reason: str
    price_note: NotRequired[str]               # why `price` is null
    brand: NotRequired[str | None]             # item facts (null when the items file lacks them)
    package_size: NotRequired[str | None]
    category: NotRequired[str | None]
    subcategory: NotRequired[str | None]
    product_type: NotRequired[str | None]
    image_url: NotRequired[str | None]         # only when the items file has the column
    url: NotRequired[str | None]
    upsell_step: NotRequired[str]              # upsell: "larger_pack" | "better_brand" | "higher_tier"
    product_group: NotRequired[str]            # items of one group are the same thing to a client
    upgrade_from: NotRequired[str | None]      # upsell: the item it replaces
    price_difference: NotRequired[float | None]  # upsell: price step over what it replaces
    due: NotRequired[bool]                     # replenishment, next_basket's own items: the usual interval has elapsed
    due_in_days: NotRequired[float | None]     # the same: days until it is due (negative: overdue)
    items: NotRequired[list[str]]              # packages and bundles: their member item ids
    tier: NotRequired[float | None]            # packages: the ordered level
    bundle_id: NotRequired[str]                # bundles
    bundle_price: NotRequired[float]           # bundles: the discounted price
    breakdown: NotRequired[ScoreBreakdown]     # every suggestion of `suggest`; the service shows it on explain=true


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
                exclude: Sequence[str] = (), recent_purchases: Sequence[str] = (),
                objective: str = "relevance") -> list[Suggestion]:
        """Ranked suggestions of one kind. Unknown clients get cold-start suggestions.
        `recent_purchases`: item ids bought since training (from the event stream); they leave
        cross-sell at once and refresh the client's taste vector. `objective` (one of OBJECTIVES)
        ranks by relevance or by expected revenue or margin; each suggestion carries its
        `breakdown`. ValueError on an unknown kind or objective; ObjectiveUnavailable (a
        ValueError) for `margin` on a model without margins."""

    def cart(self, items: Sequence[str], client_id: str | None = None, limit: int = 10, *,
             recent_purchases: Sequence[str] = ()) -> CartAnswer:
        """What completes the basket, upsells of its items, and bundle offers with their bundle price."""

    def similar(self, item_id: str, limit: int = 10) -> list[Suggestion]:
        """Items like this one. KeyError when the item is unknown to the model."""

    def smoke_check(self) -> None:
        """Answer a few known requests and raise ValueError if an answer is wrong (NaN scores,
        nothing for a known client, ids outside the catalogue). Run before a version is swapped in."""


@runtime_checkable
class ItemGroups(Protocol):
    """Optional beside `SuggestionModel` (not in CONTRACT_METHODS, so versions registered before
    it still load): the product group of items, as suggestions carry it in `product_group`. The
    effect report attributes a purchase of another pack of a suggested product to the suggestion
    through it; a model without it is attributed by the exact item only."""

    def groups_of(self, item_ids: Sequence[str]) -> list[str | None]:
        """Each item's product group (None for an item the model does not know)."""


def implements(model: object, protocol: type) -> bool:
    """`isinstance(model, protocol)` for a runtime-checkable protocol of methods, decided once per class.

    Why: on Python 3.11 such an isinstance lists the protocol's members again on every call (tens of
    microseconds), and the service asks on every request. A class whose methods include the protocol's is
    an instance of it for good (the first thing isinstance checks), so that answer is kept per class; any
    other object is asked as before."""
    return _class_implements(type(model), protocol) or isinstance(model, protocol)


@cache
def _class_implements(cls: type, protocol: type) -> bool:
    return issubclass(cls, protocol)


def groups_of(model: object) -> Callable[[Sequence[str]], list[str | None]] | None:
    """The model's item -> group mapping, or None when the model has none."""
    return model.groups_of if implements(model, ItemGroups) else None


@runtime_checkable
class ClientValues(Protocol):
    """Optional beside `SuggestionModel` (versions registered before issue 13 have no value model): a client's
    value figures from the BG/NBD and Gamma-Gamma parameters the trainer fitted (`scoring.value`)."""

    def client_value(self, client_id: str) -> dict[str, Any] | None:
        """{"p_alive", "p_purchase", "expected_purchases", "expected_revenue", "expected_value_per_purchase",
        "clv": float, "horizon_days", "clv_horizon_days": float, "as_of", "data_end": ISO dates}; None for a
        client the model does not know or a model without a value model."""


@runtime_checkable
class ClientChanges(Protocol):
    """Optional beside `SuggestionModel` (issue 13): segments a period ago and the behaviour changes the trainer
    found as of its data's end (`scoring.crm`), which the service lists as manager tasks."""

    def segment_before(self, client_id: str) -> dict[str, Any]:
        """{"abc", "activity", "rfm"} a period before the data's end ({} when the model has none)."""

    def transitions(self, client_id: str | None = None) -> list[dict[str, Any]]:
        """Each {"task_id", "client_id", "trigger", "action", "severity", "change", "detail", "as_of", "period"};
        every client's, or one client's."""

    def holdings(self, client_id: str) -> list[dict[str, Any]]:
        """The service packages the client holds: each {"package_id", "name", "tier"}."""


@runtime_checkable
class ClientStateInRedis(Protocol):
    """Optional beside `SuggestionModel` (issue 15): a model trained with `CLIENT_STATE=redis` keeps the item
    side only; each client's state is one Redis value the service reads in the request's own round trip."""

    def client_state_key(self, client_id: str) -> str | None:
        """The Redis key of the client's state, or None when the model holds its clients itself."""

    def with_client_state(self, client_id: str, value: bytes | None) -> SuggestionModel:
        """The model answering for this one client from its stored value (None: a client with no state,
        answered as unknown). ValueError for a value that is not of this model's layout."""

    def client_state_models(self) -> str | None:
        """The model identity its client state is keyed by, or None."""


def client_state_of(model: object) -> ClientStateInRedis | None:
    """The model as a `ClientStateInRedis` when its clients live in Redis, else None."""
    if implements(model, ClientStateInRedis) and model.client_state_models() is not None:
        return model
    return None


def client_value_of(model: object) -> Callable[[str], dict[str, Any] | None] | None:
    """The model's client -> value figures mapping, or None when the model has none."""
    return model.client_value if implements(model, ClientValues) else None


#: In `kind=all`, which section keeps an item (or another item of its product group) that two
#: kinds suggest: the most specific reason wins (what they buy, then a step up, then new things).
SECTION_PRECEDENCE: tuple[str, ...] = ("replenishment", "upsell", "service_package", "cross_sell")


def one_section_each(by_kind: dict[str, list[Suggestion]], limit: int) -> dict[str, list[Suggestion]]:
    """`kind=all` sections in which an item or product group appears once, each cut to `limit`.

    Each kind's list is already free of duplicates; across kinds the same product could still
    read twice ("replenish milk" and "try milk"), so the section earlier in
    `SECTION_PRECEDENCE` keeps it. Ask each kind for more than `limit` so sections stay full."""
    seen: set[str] = set()
    kept: dict[str, list[Suggestion]] = {}
    order = [k for k in SECTION_PRECEDENCE if k in by_kind] + [k for k in by_kind if k not in SECTION_PRECEDENCE]
    for kind in order:
        section = [s for s in by_kind[kind] if not _identities(s) & seen][:limit]
        for s in section:
            seen |= _identities(s)
        kept[kind] = section
    return {kind: kept[kind] for kind in by_kind}


def _identities(s: Suggestion) -> set[str]:
    """What makes two suggestions the same for a reader: the item, and its product group."""
    return {f"item:{s['item_id']}"} | ({f"group:{s['product_group']}"} if "product_group" in s else set())


#: Method names of the protocol, derived from it (the service checks a loaded model has them all).
CONTRACT_METHODS: tuple[str, ...] = tuple(
    name for name, value in vars(SuggestionModel).items() if callable(value) and not name.startswith("_"))

#: Default pub/sub channel of "an alias moved" notices: {"name", "alias", "version"}.
MODEL_UPDATES_CHANNEL = "crm-recommender:model-updates"


def client_state_key(model_id: str, client_id: str) -> str:
    """Redis key of one client's state for one model identity (the trainer's run id). The client id is the
    key's hash tag, so on Redis Cluster every key of one client lands in one slot."""
    return f"cs:{model_id}:{{{client_id}}}"


def client_state_models_key(tenant: str, model_name: str) -> str:
    """Redis sorted set of the model identities whose client state may still be in Redis, scored by when their
    keys expire (+inf: an alias points to it). Erasure deletes a client's key under each; the trainer moves
    identities no alias points to any more to CLIENT_STATE_GRACE_SECONDS from now."""
    return f"crm:{tenant}:client-state-models:{model_name}"


def erasures_key(tenant: str) -> str:
    """Redis set of the client ids erased on request in `tenant`: the service adds to it, the
    trainer excludes its members. The default tenant keeps the historical name `erasures`."""
    return "erasures" if tenant == "default" else f"erasures:{tenant}"
