"""What each suggestion endpoint does, between the HTTP handler and the model.

Every function takes the `Serving` the request chose once (the variant and the `LoadedModel` of
its arm), so a whole answer comes from one model version. Redis is optional here: without it
there is no cache, no recent purchase and no reaction state, and the exposure goes straight to
the event store. Each answer is traced (`service.loop.exposures`): its own recommendation id, the
variant, positions, and an exposure record. What the client's reactions and fatigue leave out
(`service.redis.loop_state`) is left out before the answer is cached.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from scoring.contract import GROUPED_KINDS, client_value_of, one_section_each
from service.loop import exposures
from service.loop.assignment import CONTROL
from service.loop.control import control_cart, control_suggestions
from service.loop.recording import Serving, record_exposure
from service.metrics import CACHE, SUPPRESSED, VARIANTS
from service.redis.cache import ClientContext, answer_field
from service.redis.core import RedisUnavailable
from service.redis.loop_state import NOTHING, Suppressions
from service.schemas import CartRequest, SuggestionQuery

logger = logging.getLogger(__name__)


class UnknownItem(KeyError):
    """The item is not in the catalogue of the model serving."""


def json_default(value: Any) -> Any:
    """Make numpy scalars and arrays (which a model may return) JSON-ready without importing numpy."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(body: dict[str, Any]) -> str:
    """The answer as JSON text, encoded once: the response body and the cached copy are this text.

    Why text and not a dict: a cache hit then returns the stored bytes as they are, and a miss
    encodes once, instead of encoding, decoding and encoding again on every request.
    NaN and infinities are not JSON: a suggestion whose score is not finite is dropped (and
    logged), any other non-finite number becomes null. The version passed its smoke checks, so
    this guards the odd client or item, not a broken model."""
    text = json.dumps(body, default=json_default)
    if "NaN" in text or "Infinity" in text:
        cleaned = _finite(json.loads(text))
        if cleaned != json.loads(text, parse_constant=lambda _: None):
            logger.warning("dropped suggestions with non-finite scores", extra={"model_version": body.get("model_version")})
        return json.dumps(cleaned)
    return text


def _finite(node: Any) -> Any:
    if isinstance(node, float):
        return node if math.isfinite(node) else None
    if isinstance(node, list):
        return [_finite(item) for item in node if not _non_finite_score(item)]
    if isinstance(node, dict):
        return {key: _finite(value) for key, value in node.items()}
    return node


def _non_finite_score(item: Any) -> bool:
    score = item.get("score") if isinstance(item, dict) else None
    return isinstance(score, float) and not math.isfinite(score)


def _client_context(serving: Serving, subject: str, field: str | None, endpoint: str) -> ClientContext | None:
    try:
        context = serving.redis.cache.client_context(subject, field)
    except RedisUnavailable:
        CACHE.labels(endpoint, "off").inc()
        return None
    CACHE.labels(endpoint, "hit" if context.cached is not None else "miss").inc()
    return context


def _remember(serving: Serving, subject: str, field: str, body: str, context: ClientContext) -> None:
    try:
        serving.redis.cache.store_client_answer(subject, field, body, context.generation)
    except RedisUnavailable:
        pass


def _params(serving: Serving, params: dict[str, Any]) -> dict[str, Any]:
    """Cache parameters: the control group's answer is another answer than the arm's."""
    return {**params, "control": True} if serving.variant == CONTROL else params


def _until(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def client_suggestions(serving: Serving, client_id: str, query: SuggestionQuery) -> tuple[str, str]:
    """The client's suggestions of one kind (or every kind of `GROUPED_KINDS`, grouped), as traced
    JSON text, and whether the cache answered."""
    model = serving.model
    field = answer_field(model.identity, "suggestions", _params(serving, query.model_dump(mode="json")))
    context = _client_context(serving, client_id, field, "client_suggestions")
    kinds = GROUPED_KINDS if query.kind == "all" else (query.kind,)
    if context is not None and context.cached is not None:
        body, cache = context.cached, "hit"
    else:
        body = _client_body(serving, client_id, query, kinds, context)
        if context is not None:
            _remember(serving, client_id, field, body, context)
        cache = "miss" if context is not None else "off"

    def sections() -> dict[str, list[dict[str, Any]]]:
        shown = json.loads(body)["suggestions"]
        return shown if query.kind == "all" else {query.kind: shown}

    return _traced(serving, exposures.Audience(client_id), body, "client", query.kind, query.channel, sections), cache


def _client_body(serving: Serving, client_id: str, query: SuggestionQuery, kinds: tuple[str, ...],
                 context: ClientContext | None) -> str:
    recommender = serving.model.recommender
    recent = context.recent_purchases if context is not None else []
    suppressed = context.suppressions if context is not None else NOTHING
    resting = {kind: until for kind, until in suppressed.kinds.items() if kind in kinds}
    exclude = [*query.exclude, *sorted(suppressed.items)]
    if not suppressed.empty:
        SUPPRESSED.labels("client_suggestions").inc()
    # kind=all: each kind asked for more, so that sections stay full once duplicates leave
    fetch = 2 * query.limit if query.kind == "all" else query.limit
    by_kind: dict[str, list[Any]] = {}
    for kind in kinds:
        if kind in resting:
            by_kind[kind] = []
        elif serving.variant == CONTROL:
            by_kind[kind] = control_suggestions(recommender, kind, fetch, serving.settings.control_answer, exclude)
        else:
            by_kind[kind] = _shown(recommender.suggest(client_id, kind, fetch, category=query.category, exclude=exclude,
                                                       recent_purchases=recent, objective=query.objective),
                                   query.explain)
    if query.kind == "all":
        by_kind = one_section_each(by_kind, query.limit)
    by_kind = {kind: exposures.with_positions(list(items)[:query.limit]) for kind, items in by_kind.items()}
    return encode({
        "client_id": client_id,
        "model_version": serving.model.version,
        "kind": query.kind,
        "objective": query.objective,
        "segment": _segment(recommender, client_id),
        "cold_start": not recommender.knows_client(client_id),
        "suggestions": by_kind if query.kind == "all" else by_kind[query.kind],
        "resting": [{"kind": kind, "until": _until(until)} for kind, until in sorted(resting.items())],
    })


def _segment(recommender: Any, client_id: str) -> dict[str, Any]:
    """The client's segments, with the value figures when the model has a value model (issue 13)."""
    segment = recommender.segment(client_id)
    value_of = client_value_of(recommender)
    return {**segment, "value": value_of(client_id)} if value_of is not None else segment


def _shown(suggestions: list[Any], explain: bool) -> list[Any]:
    """The suggestions as answered: the score breakdown only when the request asked for it."""
    if explain:
        return suggestions
    return [{key: value for key, value in s.items() if key != "breakdown"} for s in suggestions]


def _traced(serving: Serving, audience: exposures.Audience, body: str, endpoint: str, kind: str | None,
            channel: str | None, sections: Callable[[], dict[str, list[dict[str, Any]]]]) -> str:
    """The answer with its own recommendation id in front, and its exposure recorded (`sections`
    gives the lists shown, read only when exposures are recorded)."""
    recommendation_id = exposures.new_recommendation_id()  # also when nothing is recorded
    if serving.settings.exposure_logging:
        record_exposure(serving, exposures.exposure_row(
            recommendation_id, audience, variant=serving.variant, model_version=serving.model.version,
            endpoint=endpoint, kind=kind, channel=channel, items=exposures.shown_items(sections())))
    VARIANTS.labels(serving.variant).inc()
    head: dict[str, Any] = {"recommendation_id": recommendation_id, "variant": serving.variant}
    if audience.visitor_id is not None:
        head["visitor_id"] = audience.visitor_id
    return exposures.traced(body, head)


def _without(suggestions: list[dict[str, Any]], suppressed: Suppressions, limit: int) -> list[dict[str, Any]]:
    """A list without what the subject's reactions leave out (items, their groups, resting kinds)."""
    kept = [s for s in suggestions
            if (s.get("item_id") or s.get("bundle_id")) not in suppressed.items
            and s.get("product_group") not in suppressed.groups and s.get("kind") not in suppressed.kinds]
    return exposures.with_positions(kept[:limit])


def _subject_state(serving: Serving, subject: str | None) -> tuple[Suppressions, list[str]]:
    """Suppressions and recent purchases of a cart's or similar list's subject (none without one)."""
    if subject is None:
        return NOTHING, []
    try:  # no answer is looked up here, so this is no cache lookup to count
        context = serving.redis.cache.client_context(subject, None)
    except RedisUnavailable:
        return NOTHING, []
    return context.suppressions, context.recent_purchases


def cart_suggestions(serving: Serving, cart: CartRequest) -> tuple[str, str]:
    """What completes the basket, upsells of its items and bundle offers (known client or visitor).

    A client's cart is cached with the client's answers, already without what the client's
    reactions leave out (a reaction that changes that, a purchase or an erasure drops it). An
    anonymous cart's answer belongs to no one and is shared: the visitor's suppressions are taken
    out after the cache, from a list fetched that much longer."""
    audience = exposures.Audience(cart.client_id, cart.visitor_id)
    params = _params(serving, {"endpoint": "cart", "items": cart.items, "limit": cart.limit})
    key: str | None = None
    if cart.client_id is not None:
        field = answer_field(serving.model.identity, "cart", params)
        context = _client_context(serving, cart.client_id, field, "cart_suggestions")
        suppressed = context.suppressions if context is not None else NOTHING
        cached = context.cached if context is not None else None
    else:
        context = None
        suppressed, _ = _subject_state(serving, audience.subject)
        key, cached = _shared(serving, {**params, "fetch": _fetch(cart.limit, suppressed)}, "cart_suggestions")
    if cached is not None:
        body, cache = cached, "hit"
    else:
        recommender = serving.model.recommender
        fetch = _fetch(cart.limit, suppressed)
        recent = context.recent_purchases if context is not None else []
        answer = (control_cart(recommender, fetch, serving.settings.control_answer) if serving.variant == CONTROL
                  else recommender.cart(cart.items, cart.client_id, fetch, recent_purchases=recent))
        body = encode({"client_id": cart.client_id, "model_version": serving.model.version,
                       **{name: exposures.with_positions(list(answer.get(name, []))) for name in _CART_SECTIONS},
                       "unknown_items": answer.get("unknown_items", [])})
        if context is not None and cart.client_id is not None:
            body = _filtered(body, suppressed, cart.limit, _CART_SECTIONS)
            _remember(serving, cart.client_id, field, body, context)
            cache = "miss"
        else:
            cache = _store_shared(serving, key, body)
    if context is None:  # shared (or uncached) answers are filtered per subject after the cache
        body = _filtered(body, suppressed, cart.limit, _CART_SECTIONS)
    if not suppressed.empty:
        SUPPRESSED.labels("cart_suggestions").inc()
    def sections() -> dict[str, list[dict[str, Any]]]:
        parsed = json.loads(body)  # once, not once per section
        return {name: parsed[name] for name in _CART_SECTIONS}

    return _traced(serving, audience, body, "cart", None, "cart", sections), cache


_CART_SECTIONS = ("complete", "upsell", "bundles")


def _fetch(limit: int, suppressed: Suppressions) -> int:
    """How many to ask for, so that `limit` are left once the subject's suppressions leave."""
    return limit + len(suppressed.items) + len(suppressed.groups)


def _filtered(body: str, suppressed: Suppressions, limit: int, sections: tuple[str, ...]) -> str:
    """The answer's lists without what the subject's reactions leave out, `limit` long, positioned.
    With nothing suppressed the lists were fetched `limit` long and positioned: the text is kept."""
    if suppressed.empty:
        return body
    parsed = json.loads(body)
    return encode({**parsed, **{name: _without(parsed[name], suppressed, limit) for name in sections}})


def similar_items(serving: Serving, item_id: str, limit: int, visitor_id: str | None = None) -> tuple[str, str]:
    """Items like `item_id`; UnknownItem when the model does not know it."""
    recommender = serving.model.recommender
    if not recommender.knows_item(item_id):
        raise UnknownItem(item_id)
    audience = exposures.Audience(None, visitor_id)
    suppressed, _ = _subject_state(serving, audience.subject)
    fetch = _fetch(limit, suppressed)
    key, cached = _shared(serving, {"endpoint": "similar", "item_id": item_id, "limit": fetch}, "similar_items")
    if cached is not None:
        body, cache = cached, "hit"
    else:
        try:
            suggestions = (control_suggestions(recommender, "cross_sell", fetch, serving.settings.control_answer,
                                               [item_id])
                           if serving.variant == CONTROL else recommender.similar(item_id, fetch))
        except KeyError as error:
            raise UnknownItem(item_id) from error
        body = encode({"item_id": item_id, "model_version": serving.model.version,
                       "suggestions": exposures.with_positions(list(suggestions))})
        cache = _store_shared(serving, key, body)
    body = _filtered(body, suppressed, limit, ("suggestions",))
    return _traced(serving, audience, body, "similar", None, None,
                   lambda: {"similar": json.loads(body)["suggestions"]}), cache


def _shared(serving: Serving, params: dict[str, Any], endpoint: str) -> tuple[str | None, str | None]:
    """(cache key, cached answer) of an answer that belongs to no client; (None, None) without Redis."""
    try:
        key, cached = serving.redis.cache.shared_answer(serving.model.identity, _params(serving, params))
    except RedisUnavailable:
        CACHE.labels(endpoint, "off").inc()
        return None, None
    CACHE.labels(endpoint, "hit" if cached is not None else "miss").inc()
    return key, cached


def _store_shared(serving: Serving, key: str | None, body: str) -> str:
    if key is None:
        return "off"
    try:
        serving.redis.cache.store_shared_answer(key, body)
    except RedisUnavailable:
        pass
    return "miss"
