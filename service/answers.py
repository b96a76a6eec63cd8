"""What each endpoint does, between the HTTP handler and the model: cache, recent purchases, events.

Every function takes the `LoadedModel` the request grabbed once, so a whole answer comes from
one model version. Redis is optional on the read paths (no cache, no recent purchases when it is
down) and required on the write paths (RedisUnavailable reaches the handler, which answers 503).
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scoring.contract import GROUPED_KINDS, one_section_each
from service.metrics import CACHE, ERASURES, EVENTS
from service.model.store import LoadedModel
from service.redis.cache import ClientContext, answer_field
from service.redis.core import RedisUnavailable
from service.redis.store import RedisStore
from service.schemas import CartRequest, EventBatch, SuggestionQuery

logger = logging.getLogger(__name__)

_erasure_file_lock = threading.Lock()


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


def _client_context(store: RedisStore, client_id: str, field: str | None, endpoint: str) -> ClientContext | None:
    try:
        context = store.cache.client_context(client_id, field)
    except RedisUnavailable:
        CACHE.labels(endpoint, "off").inc()
        return None
    CACHE.labels(endpoint, "hit" if context.cached is not None else "miss").inc()
    return context


def _remember(store: RedisStore, client_id: str, field: str, body: str, context: ClientContext) -> None:
    try:
        store.cache.store_client_answer(client_id, field, body, context.generation)
    except RedisUnavailable:
        pass


def client_suggestions(model: LoadedModel, store: RedisStore, client_id: str,
                       query: SuggestionQuery) -> tuple[str, str]:
    """The client's suggestions of one kind (or every kind of `GROUPED_KINDS`, grouped), as JSON text, and whether the
    cache answered."""
    field = answer_field(model.identity, "suggestions", query.model_dump(mode="json"))
    context = _client_context(store, client_id, field, "client_suggestions")
    if context is not None and context.cached is not None:
        return context.cached, "hit"
    recent = context.recent_purchases if context is not None else []
    recommender = model.recommender
    kinds = GROUPED_KINDS if query.kind == "all" else (query.kind,)
    # kind=all: each kind asked for more, so that sections stay full once duplicates leave
    fetch = 2 * query.limit if query.kind == "all" else query.limit
    by_kind = {kind: _shown(recommender.suggest(client_id, kind, fetch, category=query.category,
                                                exclude=query.exclude, recent_purchases=recent,
                                                objective=query.objective), query.explain) for kind in kinds}
    if query.kind == "all":
        by_kind = one_section_each(by_kind, query.limit)
    body = encode({
        "client_id": client_id,
        "model_version": model.version,
        "kind": query.kind,
        "objective": query.objective,
        "segment": recommender.segment(client_id),
        "cold_start": not recommender.knows_client(client_id),
        "suggestions": by_kind if query.kind == "all" else by_kind[query.kind],
    })
    if context is not None:
        _remember(store, client_id, field, body, context)
    return body, "miss" if context is not None else "off"


def _shown(suggestions: list[Any], explain: bool) -> list[Any]:
    """The suggestions as answered: the score breakdown only when the request asked for it."""
    if explain:
        return suggestions
    return [{key: value for key, value in s.items() if key != "breakdown"} for s in suggestions]


def cart_suggestions(model: LoadedModel, store: RedisStore, cart: CartRequest) -> tuple[str, str]:
    """What completes the basket, upsells of its items and bundle offers (known or anonymous client)."""
    params = {"endpoint": "cart", "items": cart.items, "limit": cart.limit}
    recent: list[str] = []
    context: ClientContext | None = None
    shared_key: str | None = None
    if cart.client_id is not None:
        field = answer_field(model.identity, "cart", params)
        context = _client_context(store, cart.client_id, field, "cart_suggestions")
        if context is not None:
            if context.cached is not None:
                return context.cached, "hit"
            recent = context.recent_purchases
    else:
        try:
            shared_key, cached = store.cache.shared_answer(model.identity, params)
        except RedisUnavailable:
            CACHE.labels("cart_suggestions", "off").inc()
        else:
            CACHE.labels("cart_suggestions", "hit" if cached is not None else "miss").inc()
            if cached is not None:
                return cached, "hit"
    answer = model.recommender.cart(cart.items, cart.client_id, cart.limit, recent_purchases=recent)
    body = encode({
        "client_id": cart.client_id,
        "model_version": model.version,
        "complete": answer.get("complete", []),
        "upsell": answer.get("upsell", []),
        "bundles": answer.get("bundles", []),
        "unknown_items": answer.get("unknown_items", []),
    })
    if context is not None and cart.client_id is not None:
        _remember(store, cart.client_id, answer_field(model.identity, "cart", params), body, context)
        return body, "miss"
    if shared_key is not None:
        _store_shared(store, shared_key, body)
        return body, "miss"
    return body, "off"


def similar_items(model: LoadedModel, store: RedisStore, item_id: str, limit: int) -> tuple[str, str]:
    """Items like `item_id`; UnknownItem when the model does not know it."""
    recommender = model.recommender
    if not recommender.knows_item(item_id):
        raise UnknownItem(item_id)
    params = {"endpoint": "similar", "item_id": item_id, "limit": limit}
    try:
        key, cached = store.cache.shared_answer(model.identity, params)
    except RedisUnavailable:
        key, cached = None, None
        CACHE.labels("similar_items", "off").inc()
    else:
        CACHE.labels("similar_items", "hit" if cached is not None else "miss").inc()
    if cached is not None:
        return cached, "hit"
    try:
        suggestions = recommender.similar(item_id, limit)
    except KeyError as error:
        raise UnknownItem(item_id) from error
    body = encode({"item_id": item_id, "model_version": model.version, "suggestions": suggestions})
    if key is not None:
        _store_shared(store, key, body)
        return body, "miss"
    return body, "off"


def _store_shared(store: RedisStore, key: str, body: str) -> None:
    try:
        store.cache.store_shared_answer(key, body)
    except RedisUnavailable:
        pass


def record_events(store: RedisStore, batch: EventBatch) -> dict[str, Any]:
    """Store a batch of events; purchases reach the buyers' next answers at once."""
    received_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    events = [{**event.model_dump(exclude_none=True), "timestamp": event.timestamp.isoformat(),
               "received_at": received_at} for event in batch.events]
    ids = store.events.add_events(events)
    for event in batch.events:
        EVENTS.labels(event.type).inc()
    purchases = sum(1 for event in batch.events if event.type == "purchase")
    return {"accepted": len(ids), "purchases": purchases, "ids": ids}


def append_erasure(state_dir: Path, record: dict[str, Any]) -> None:
    """Append one erasure to SERVICE_STATE_DIR/erasures.jsonl and fsync it (Redis may be ephemeral)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with _erasure_file_lock, open(state_dir / "erasures.jsonl", "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def erase_client(store: RedisStore, state_dir: Path, tenant: str, client_id: str,
                 request_id: str | None) -> dict[str, Any]:
    """Record the erasure durably first, then drop the client's events and cached answers in Redis.

    The local record is written even when Redis is down (RedisUnavailable then reaches the
    handler), so the next training excludes the client either way; repeating the call is safe.
    """
    erased_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    append_erasure(state_dir, {"client_id": client_id, "tenant": tenant, "erased_at": erased_at,
                               "request_id": request_id})
    counts = store.events.erase_client(client_id)
    ERASURES.inc()
    logger.info("client erased", extra={"erased": counts})
    return {"client_id": client_id, "erased_at": erased_at, **counts}
