"""What the API accepts and answers, as pydantic v2 models.

Request models validate every input (extra fields forbidden, ids of 1 to 128 characters without
control characters, bounded batches); response models exist for the OpenAPI document. Bounds
that come from the settings (MAX_LIMIT, MAX_EVENTS_PER_BATCH, MAX_CART_ITEMS) are passed as
validation context: `Model.model_validate(data, context=limits(settings))`.

Bodies are checked as JSON Schema reads them, so the published spec and the code agree exactly
(the OpenAPI fuzz test holds them to it): a number is never a string or a boolean, an integer may
be written 3.0, a timestamp is an RFC 3339 date-time with its offset or epoch seconds.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from eventstore.schema import CHANNELS
from scoring.contract import KINDS, OBJECTIVES
from service.config import Settings

#: What `kind` may be in a suggestions query: one of the contract's kinds, or `all`.
KIND_CHOICES: tuple[str, ...] = (*KINDS, "all")

EVENT_TYPES: tuple[str, ...] = ("view", "cart", "purchase", "impression", "click")
MAX_ID_LENGTH = 128
MAX_EXCLUDE = 100
#: An id: 1 to 128 characters, none a control character (C0, DEL, C1) or a line or paragraph
#: separator (they break logs and Redis keys). The OpenAPI document publishes this pattern; the
#: code also refuses lone surrogates, which are not Unicode text at all (no JSON Schema engine
#: can express them, nor encode them as UTF-8).
ID_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]{1,128}$"
ID_CHARACTERS = re.compile(r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029\ud800-\udfff]{1,128}$")
#: Epoch seconds a timestamp may be: 1970-01-01 to 9999-12-31.
MAX_EPOCH_SECONDS = 253_402_300_799
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:([Zz])|([+-])(\d{2}):(\d{2}))$")


def _id_characters(value: str) -> str:
    if not ID_CHARACTERS.fullmatch(value):
        raise ValueError("must be 1 to 128 characters, none of them a control character")
    return value


Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, json_schema_extra={"pattern": ID_PATTERN}),
               AfterValidator(_id_characters)]
ID = TypeAdapter(Id)


def _json_integer(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


def _timestamp(value: Any) -> datetime:
    """An RFC 3339 date-time with its offset, or epoch seconds, as an aware datetime."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or not 0 <= value <= MAX_EPOCH_SECONDS:
            raise ValueError(f"epoch seconds must be between 0 and {MAX_EPOCH_SECONDS}")
        return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=value)
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("must be an RFC 3339 date-time with an offset (2024-05-01T10:00:00Z) or epoch seconds")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction = match.group(7)
    try:
        offset = timezone.utc if match.group(8) else timezone(
            (1 if match.group(9) == "+" else -1) * timedelta(hours=int(match.group(10)), minutes=int(match.group(11))))
        return datetime(year, month, day, hour, minute, min(second, 59),
                        int(float(fraction) * 1_000_000) if fraction else 0, tzinfo=offset)
    except ValueError as error:
        raise ValueError(f"not a real date-time: {error}") from None


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp), WithJsonSchema({"anyOf": [
    {"type": "string", "format": "date-time"},
    {"type": "number", "minimum": 0, "maximum": MAX_EPOCH_SECONDS}],
    "description": "RFC 3339 date-time with its offset, or epoch seconds."})]


def limits(settings: Settings) -> dict[str, int]:
    """The validation context carrying the configured bounds."""
    return {"max_limit": settings.max_limit, "max_events": settings.max_events_per_batch,
            "max_cart_items": settings.max_cart_items}


def _at_most(value: Any, info: ValidationInfo, key: str, default: int) -> Any:
    cap = (info.context or {}).get(key, default)
    size = len(value) if isinstance(value, list) else value
    if size > cap:
        raise ValueError(f"must be at most {cap}" + (" items" if isinstance(value, list) else ""))
    return value


def _split_ids(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _query_bool(value: Any) -> Any:
    """A query flag is `true` or `false`, as JSON Schema writes a boolean: pydantic's lax "yes",
    "1" or "on" would accept what the published schema refuses."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("must be true or false")


QueryBool = Annotated[bool, BeforeValidator(_query_bool)]


class _Limited(BaseModel):
    limit: int = Field(10, ge=1, description="How many suggestions, 1 to MAX_LIMIT (default 100).")

    @field_validator("limit")
    @classmethod
    def _limit_cap(cls, value: int, info: ValidationInfo) -> int:
        return _at_most(value, info, "max_limit", 100)


class SuggestionQuery(_Limited):
    """Query of GET /v1/clients/{client_id}/suggestions."""

    model_config = ConfigDict(extra="ignore")
    kind: Literal[KIND_CHOICES] = Field(  # type: ignore[valid-type]
        "all", description="One kind, or `all` for every kind but next_basket, grouped by kind (next_basket's "
                           "one list repeats replenishment's and cross_sell's items).")
    category: Id | None = Field(None, description="Only items of this category.")
    exclude: Annotated[list[Id], BeforeValidator(_split_ids)] = Field(
        default_factory=list, max_length=MAX_EXCLUDE, description="Item ids never to suggest, comma separated.")
    objective: Literal[OBJECTIVES] = Field(  # type: ignore[valid-type]
        "relevance", description="Rank by relevance, or by expected revenue (probability of purchase x price) "
        "or expected margin (x items.margin; 409 when the model has no margins). Items without a price follow.")
    explain: QueryBool = Field(False, description="true: each suggestion carries its score breakdown.")
    channel: Literal[CHANNELS] | None = Field(  # type: ignore[valid-type]
        None, description="Where the answer is shown. email and push count as shown at once (fatigue); a CRM "
                          "card (crm, the default) counts only when it posts a `shown` reaction.")


class SimilarQuery(_Limited):
    """Query of GET /v1/items/{item_id}/similar."""

    model_config = ConfigDict(extra="ignore")
    visitor_id: Id | None = Field(None, description="The shop's first-party visitor or session id: assignment, "
                                                    "fatigue and attribution use it.")


class CartRequest(BaseModel):
    """Body of POST /v1/cart/suggestions: a basket, known client or anonymous."""

    model_config = ConfigDict(extra="forbid")
    limit: JsonInt = Field(10, ge=1, description="How many suggestions per list, 1 to MAX_LIMIT (default 100).")
    client_id: Id | None = Field(None, description="Omit for an anonymous cart.")
    visitor_id: Id | None = Field(None, description="The widget's first-party id or the shop's session id: "
                                                    "assignment, fatigue and attribution use it without a client.")
    items: list[Id] = Field(default_factory=list, description="Item ids in the cart (at most MAX_CART_ITEMS).")

    @field_validator("items")
    @classmethod
    def _items_cap(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return _at_most(value, info, "max_cart_items", 100)

    @field_validator("limit")
    @classmethod
    def _limit_cap(cls, value: int, info: ValidationInfo) -> int:
        return _at_most(value, info, "max_limit", 100)


class Event(BaseModel):
    """One interaction of a client with an item."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    client_id: Id
    item_id: Id
    type: Literal["view", "cart", "purchase", "impression", "click"]
    timestamp: Timestamp
    quantity: Annotated[float, Field(strict=True, gt=0, le=1_000_000)] | None = None
    price: Annotated[float, Field(strict=True, ge=0, le=1_000_000_000)] | None = None
    event_id: Id | None = Field(None, description="The caller's id of this event: a retried batch is stored once.")
    visitor_id: Id | None = Field(None, description="The widget's visitor id, when the client was a visitor before "
                                                    "(a purchase is then attributed to the visitor's answers too).")
    order_id: Id | None = Field(None, description="The order a purchase belongs to (de-duplicates against the "
                                                  "next training's data folder).")
    recommendation_id: Id | None = Field(None, description="impression and click: the answer they react to "
                                                           "(recorded as the reactions shown and clicked).")

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class EventBatch(BaseModel):
    """Body of POST /v1/events (a bare JSON array of events is accepted too)."""

    model_config = ConfigDict(extra="forbid")
    events: list[Event] = Field(min_length=1, description="At most MAX_EVENTS_PER_BATCH events.")

    @field_validator("events")
    @classmethod
    def _events_cap(cls, value: list[Event], info: ValidationInfo) -> list[Event]:
        return _at_most(value, info, "max_events", 500)


# ---- answers (documented in the OpenAPI spec; handlers return plain dicts) ----

class ScoreBreakdown(BaseModel):
    """Why a suggestion sits where it does (`explain=true`); scoring/objective.py says how each is made."""

    relevance: float = Field(description="The kind's own score (its ranking under objective=relevance).")
    probability: float | None = Field(description="Chance of a purchase; null where nothing estimates it.")
    probability_source: Literal["learnt", "rank", "rank-unmeasured", "none"] = Field(
        description="learnt: a regression fitted on the inner split; rank: read from the place, p = rate / (rank + 1), "
        "rate measured on the inner split; rank-unmeasured: the same with a placeholder rate; none: not estimated.")
    expected_revenue: float | None = Field(description="probability x price; null without a positive price.")
    expected_margin: float | None = Field(None, description="probability x margin; only for a model with margins.")


class Suggestion(BaseModel):
    model_config = ConfigDict(extra="allow")
    item_id: str
    name: str | None = None
    kind: str
    score: float
    price: float | None = Field(None, description="The item's typical positive price (never 0); null with "
                                                  "`price_note` saying why.")
    price_note: str | None = Field(None, description="Why `price` is null.")
    reason: str = Field(description="Why this item, in words a person can read.")
    brand: str | None = Field(None, description="The item's brand (from the items file).")
    package_size: str | None = Field(None, description='Pack size as the items file writes it ("32 OZ").')
    category: str | None = None
    subcategory: str | None = None
    product_type: str | None = Field(None, description="The finest grouping the items file has.")
    image_url: str | None = Field(None, description="Present when the items file has image links.")
    url: str | None = Field(None, description="Present when the items file has product page links.")
    upsell_step: Literal["larger_pack", "better_brand", "higher_tier"] | None = Field(
        None, description="upsell: what makes it a step up from `upgrade_from`.")
    product_group: str | None = Field(None, description="Items of one group are the same thing to a client "
                                                        "(brand or pack codes of one product): a list holds one.")
    upgrade_from: str | None = Field(None, description="upsell: the item it replaces.")
    price_difference: float | None = Field(None, description="upsell: its price over what it replaces.")
    due: bool | None = Field(None, description="replenishment: the usual interval has elapsed.")
    due_in_days: float | None = Field(None, description="replenishment: days until due (negative: overdue).")
    breakdown: ScoreBreakdown | None = Field(None, description="Only with explain=true.")
    position: int = Field(description="1-based place in its list (reactions and attribution name it).")


class Segment(BaseModel):
    model_config = ConfigDict(extra="allow")
    abc: Literal["A", "B", "C"] | None = Field(None, description="ABC class of the client by value.")
    activity: Literal["active", "lapsing", "inactive"] | None = None
    rfm: str | None = None
    value: dict[str, Any] | None = Field(None, description="The client's value figures (p_alive, p_purchase, "
                                         "expected_purchases, expected_revenue, expected_value_per_purchase, clv, "
                                         "horizon_days, clv_horizon_days, as_of, data_end); null for a client the "
                                         "model does not know. Absent with a model registered before issue 13.")


class Traced(BaseModel):
    """What makes an answer traceable: reactions and attribution refer to it by its id."""

    recommendation_id: str = Field(description="Unique per answer, a cached one too: post reactions with it.")
    variant: str = Field(description="`control` (the persistent control group: business-as-usual answer), or the "
                                     "registry alias whose version answered (e.g. champion).")
    visitor_id: str | None = Field(None, description="The visitor the answer is for, when one was given.")


class Resting(BaseModel):
    kind: str
    until: str = Field(description="When the kind is offered again (the client ignored it FATIGUE_MAX_SHOWS times).")


class ClientSuggestions(Traced):
    client_id: str
    model_version: str
    kind: str
    objective: Literal[OBJECTIVES] = Field(description="What the lists are ranked by.")  # type: ignore[valid-type]
    segment: Segment
    cold_start: bool = Field(description="True when the model does not know the client.")
    suggestions: list[Suggestion] | dict[str, list[Suggestion]] = Field(
        description="A list for one kind; for kind=all an object kind -> list.")
    resting: list[Resting] = Field(default_factory=list, description="Kinds left out for now: shown too often "
                                                                     "without a click (fatigue).")


class Bundle(BaseModel):
    model_config = ConfigDict(extra="allow")
    bundle_id: str
    name: str | None = None
    items: list[str]
    price: float | None = Field(None, description="Sum of the items' prices.")
    bundle_price: float | None = Field(None, description="What the bundle costs.")
    score: float
    reason: str
    position: int = Field(description="1-based place in its list.")


class CartSuggestions(Traced):
    client_id: str | None
    model_version: str
    complete: list[Suggestion] = Field(description="Items that complete the basket.")
    upsell: list[Suggestion] = Field(description="Better versions of items in the cart.")
    bundles: list[Bundle]
    unknown_items: list[str]


class SimilarItems(Traced):
    item_id: str
    model_version: str
    suggestions: list[Suggestion]


class EventsAccepted(BaseModel):
    accepted: int = Field(description="Events stored now (committed to the event store).")
    duplicates: int = Field(description="Events with an event_id already stored: not counted twice.")
    purchases: int
    ids: list[str] = Field(description="Redis stream ids of the stored events.")


class Erasure(BaseModel):
    client_id: str
    erased_at: str
    events_deleted: int
    cached_answers_deleted: int
    recent_purchases_deleted: int
    client_state_deleted: int = Field(0, description="The client's stored state, one key per model version that "
                                                     "may still have it (CLIENT_STATE=redis; 0 otherwise).")
    stored_deleted: dict[str, int] = Field(description="Rows deleted from the event store, by table.")


class ArmReload(BaseModel):
    """What an admin reload did to one alias of the experiment (`error`: why its last good version stays)."""

    alias: str
    changed: bool
    previous_version: str | None
    model_version: str | None
    source: str | None
    error: str | None


class Reload(BaseModel):
    changed: bool
    previous_version: str | None
    model_version: str
    source: str
    arms: list[ArmReload]


class Health(BaseModel):
    status: Literal["ok"]


class ModelInfo(BaseModel):
    name: str
    alias: str
    version: str
    source: Literal["registry", "local-copy", "direct"]
    loaded_at: str


class ArmInfo(BaseModel):
    """One arm of EXPERIMENT (without one: MODEL_ALIAS at 100). `served_by` is the alias whose version
    answers the arm's share: its own while it serves one, else the primary (MODEL_ALIAS)."""

    alias: str
    weight: float
    status: Literal["serving", "alias-missing", "not-loaded"]
    version: str | None
    source: Literal["registry", "local-copy", "direct"] | None
    loaded_at: str | None
    served_by: str


class Ready(BaseModel):
    status: Literal["ready"]
    model: ModelInfo
    arms: list[ArmInfo]
    redis: Literal["up", "down", "not-configured"]
    event_store: Literal["up", "down"] = Field(description="Whether events can be stored now (down: POST /v1/events "
                                                           "and reactions answer 503; suggestions still answer).")


class FieldError(BaseModel):
    field: str
    message: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details (media type application/problem+json)."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = Field(None, description="Each field in error and what is wrong.")
