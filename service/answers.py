"""What each suggestion endpoint does, between the HTTP handler and the model.

Every function takes the `Serving` the request chose once (the variant and the `LoadedModel` of
its arm), so a whole answer comes from one model version. A request talks to Redis once when its
answer is cached and twice when it is not (`service.redis.trips`): the rate-limit count, the cached
answer, the subject's recent purchases and reaction state, and the exposure write all ride in
those trips. Redis is optional here: without it there is no cache, no recent purchase and no
reaction state, and the exposure goes straight to the event store. Each answer is traced
(`service.loop.exposures`): its own recommendation id, the variant, positions, and an exposure
record. What the client's reactions and fatigue leave out (`service.redis.loop_state`) is left out
before the answer is cached.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from eventstore.schema import SHOWING_CHANNELS
from scoring.contract import GROUPED_KINDS, client_value_of, one_section_each
from service import client_state
from service.encoding import compact, encode, finite_scores
from service.loop import exposures
from service.loop.assignment import CONTROL
from service.loop.control import control_cart, control_suggestions
from service.loop.recording import Serving, record_exposure
from service.metrics import CACHE, EXPOSURES, SUPPRESSED, VARIANTS, child
from service.rate_limit import Allowance, settle
from service.redis.cache import answer_field, digest
from service.redis.core import RedisUnavailable
from service.redis.loop_state import NOTHING, Suppressions
from service.redis.trips import RateCount, Read, Slot
from service.schemas import CartRequest, SuggestionQuery

logger = logging.getLogger(__name__)

Sections = dict[str, list[dict[str, Any]]]
_HITS = ("hit", "logged")
_BUFFERED = EXPOSURES.labels("buffered")
_CART_SECTIONS = ("complete", "upsell", "bundles")


class UnknownItem(KeyError):
    """The item is not in the catalogue of the model serving."""


@dataclass(frozen=True)
class Answer:
    """The traced JSON text, whether the cache answered (hit, miss, off), and the caller's
    rate-limit allowance (None when not limited)."""

    body: str
    cache: str
    allowance: Allowance | None


@dataclass(frozen=True)
class Plan:
    """One answer's where and whom: its audience, what it is recorded as, and its cache slot."""

    audience: exposures.Audience
    endpoint: str  # as recorded in the exposure: client, cart, similar
    metric: str  # crm_cache_requests_total's endpoint label
    kind: str | None
    channel: str | None
    slot: Slot
    shared: bool  # the answer belongs to no one: a subject's suppressions are applied after the cache
    sections: Callable[[dict[str, Any]], Sections]  # the lists shown, in an answer (a dict or parsed JSON)
    rate: RateCount | None
    state_key: str | None = None  # the client's state, read with a miss (clients in Redis: service.client_state)


@dataclass(frozen=True)
class Computed:
    """An answer computed after a miss: its JSON text, the exposure items of what it shows, and
    whether that text is what the plan's slot caches (a shared answer filtered for a subject is not)."""

    body: str
    items: list[dict[str, Any]]
    cacheable: bool = True


def _params(serving: Serving, params: dict[str, Any]) -> dict[str, Any]:
    """Cache parameters: the control group's answer is another answer than the arm's."""
    return {**params, "control": True} if serving.variant == CONTROL else params


def _until(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def _encoded(body: dict[str, Any], sections: Callable[[dict[str, Any]], Sections]) -> Computed:
    """The answer's text and the items it shows."""
    return Computed(encode(body), exposures.shown_items(sections(body)))


def _respond(serving: Serving, plan: Plan, compute: Callable[[Read | None], Computed]) -> Answer:
    """Read (counting the request and, on a hit, logging its exposure), compute on a miss, then
    cache and log in one more trip; trace the answer with its own recommendation id."""
    settings = serving.settings
    recommendation_id = exposures.new_recommendation_id()  # also when nothing is recorded
    pending = (exposures.exposure_parts(recommendation_id, plan.audience, variant=serving.variant,
                                        model_version=serving.model.version, endpoint=plan.endpoint, kind=plan.kind,
                                        channel=plan.channel) if settings.exposure_logging else None)
    # A campaign's answer also counts its items shown for fatigue: record_exposure does both.
    # On Redis Cluster the scripts do not write it either (`AnswerTrips.logs_exposures`).
    in_trip = pending if plan.channel not in SHOWING_CHANNELS and serving.redis.trips.logs_exposures else None
    try:
        read: Read | None = serving.redis.trips.read(rate=plan.rate, subject=plan.audience.subject, slot=plan.slot,
                                                     exposure=in_trip, shared=plan.shared,
                                                     client_state=plan.state_key)
    except RedisUnavailable:
        read = None
    allowance = settle(plan.rate, read)  # a 429 problem above the allowance
    logged = read is not None and read.status == "logged"
    items: list[dict[str, Any]] | None = None
    if read is not None and read.status in _HITS:
        body, cache = read.body or "{}", "hit"
    else:
        computed = compute(read)
        body, items, cache = computed.body, computed.items, "off" if read is None else "miss"
        if read is not None:
            try:
                serving.redis.trips.finish(slot=plan.slot if computed.cacheable else None, generation=read.generation,
                                           body=body, items_json=compact(items), exposure=in_trip,
                                           subject=plan.audience.subject)
                logged = in_trip is not None
            except RedisUnavailable:
                pass
    child(CACHE, plan.metric, cache).inc()
    if logged:
        _BUFFERED.inc()
    elif pending is not None:  # Redis down, a campaign's channel, or a hit cached without its items
        shown = items if items is not None else exposures.shown_items(plan.sections(json.loads(body)))
        record_exposure(serving, exposures.row_of(pending, shown))
    child(VARIANTS, serving.variant).inc()
    head: dict[str, Any] = {"recommendation_id": recommendation_id, "variant": serving.variant}
    if plan.audience.visitor_id is not None:
        head["visitor_id"] = plan.audience.visitor_id
    return Answer(exposures.traced(body, head), cache, allowance)


def client_suggestions(serving: Serving, client_id: str, query: SuggestionQuery,
                       rate: RateCount | None = None) -> Answer:
    """The client's suggestions of one kind (or every kind of `GROUPED_KINDS`, grouped)."""
    field = answer_field(serving.model.identity, "suggestions", _params(serving, query.model_dump(mode="json")))

    def sections(body: dict[str, Any]) -> Sections:
        shown = body["suggestions"]
        return shown if query.kind == "all" else {query.kind: shown}

    plan = Plan(exposures.Audience(client_id), "client", "client_suggestions", query.kind, query.channel,
                Slot(serving.redis.keys.answers(client_id), field), False, sections, rate,
                client_state.key_of(serving.model.recommender, client_id))
    return _respond(serving, plan, lambda read: _encoded(_client_body(serving, client_id, query, read), sections))


def _for_client(serving: Serving, client_id: str | None, read: Read | None) -> Any:
    """The model answering this client: the serving one, or its view over the state the read brought."""
    return client_state.view(serving.model.recommender, client_id, read.client_state if read is not None else None,
                             read=read is not None)


def _client_body(serving: Serving, client_id: str, query: SuggestionQuery, read: Read | None) -> dict[str, Any]:
    recommender = _for_client(serving, client_id, read)
    kinds = GROUPED_KINDS if query.kind == "all" else (query.kind,)
    recent = list(read.recent_purchases) if read is not None else []
    suppressed = read.suppressions if read is not None else NOTHING
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
            by_kind[kind] = finite_scores(control_suggestions(recommender, kind, fetch,
                                                              serving.settings.control_answer, exclude))
        else:
            by_kind[kind] = finite_scores(_shown(recommender.suggest(
                client_id, kind, fetch, category=query.category, exclude=exclude, recent_purchases=recent,
                objective=query.objective), query.explain))
    if query.kind == "all":
        by_kind = one_section_each(by_kind, query.limit)
    by_kind = {kind: exposures.with_positions(list(items)[:query.limit]) for kind, items in by_kind.items()}
    return {
        "client_id": client_id,
        "model_version": serving.model.version,
        "kind": query.kind,
        "objective": query.objective,
        "segment": _segment(recommender, client_id),
        "cold_start": not recommender.knows_client(client_id),
        "suggestions": by_kind if query.kind == "all" else by_kind[query.kind],
        "resting": [{"kind": kind, "until": _until(until)} for kind, until in sorted(resting.items())],
    }


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


def _without(suggestions: list[dict[str, Any]], suppressed: Suppressions, limit: int) -> list[dict[str, Any]]:
    """A list without what the subject's reactions leave out (items, their groups, resting kinds)."""
    kept = [s for s in suggestions
            if (s.get("item_id") or s.get("bundle_id")) not in suppressed.items
            and s.get("product_group") not in suppressed.groups and s.get("kind") not in suppressed.kinds]
    return exposures.with_positions(kept[:limit])


def _filtered(body: dict[str, Any], suppressed: Suppressions, limit: int, names: tuple[str, ...]) -> dict[str, Any]:
    """The answer's lists without what the subject's reactions leave out, `limit` long, positioned.
    With nothing suppressed the lists were fetched `limit` long and positioned: the answer is kept."""
    if suppressed.empty:
        return body
    return {**body, **{name: _without(body[name], suppressed, limit) for name in names}}


def _fetch(limit: int, suppressed: Suppressions) -> int:
    """How many to ask for, so that `limit` are left once the subject's suppressions leave."""
    return limit + len(suppressed.items) + len(suppressed.groups)


def _shared_compute(serving: Serving, plan: Plan, read: Read | None, params: dict[str, Any], limit: int,
                    produce: Callable[[int], dict[str, Any]], names: tuple[str, ...]) -> Computed:
    """An answer that belongs to no one, after a miss. A subject with live suppressions (the read
    said `suppressed`) gets the answer fetched that much longer, cached under its own key and
    filtered for the subject: that path costs a round trip more, and only such subjects pay it."""
    suppressed = read.suppressions if read is not None else NOTHING
    if suppressed.empty:
        return _encoded(produce(limit), plan.sections)
    SUPPRESSED.labels(plan.metric).inc()
    longer = _params(serving, {**params, "fetch": _fetch(limit, suppressed)})
    text: str | None = None
    try:
        key, text = serving.redis.cache.shared_answer(serving.model.identity, longer)
    except RedisUnavailable:
        key = None
    if text is None:
        body = produce(_fetch(limit, suppressed))
        if key is not None:
            try:
                serving.redis.cache.store_shared_answer(key, encode(body))
            except RedisUnavailable:
                pass
    else:
        body = json.loads(text)
    return replace(_encoded(_filtered(body, suppressed, limit, names), plan.sections), cacheable=False)


def _cart_sections(body: dict[str, Any]) -> Sections:
    return {name: body[name] for name in _CART_SECTIONS}


def cart_suggestions(serving: Serving, cart: CartRequest, rate: RateCount | None = None) -> Answer:
    """What completes the basket, upsells of its items and bundle offers (known client or visitor).

    A client's cart is cached with the client's answers, already without what the client's
    reactions leave out (a reaction that changes that, a purchase or an erasure drops it). An
    anonymous cart's answer belongs to no one and is shared: a visitor with suppressions gets it
    fetched longer and filtered after the cache."""
    audience = exposures.Audience(cart.client_id, cart.visitor_id)
    params = _params(serving, {"endpoint": "cart", "items": cart.items, "limit": cart.limit})
    recommender = serving.model.recommender

    def produce(fetch: int, recent: list[str] | None = None, model: Any = recommender) -> dict[str, Any]:
        answer = (control_cart(model, fetch, serving.settings.control_answer) if serving.variant == CONTROL
                  else model.cart(cart.items, cart.client_id, fetch, recent_purchases=recent or []))
        return {"client_id": cart.client_id, "model_version": serving.model.version,
                **{name: exposures.with_positions(finite_scores(answer.get(name, []))) for name in _CART_SECTIONS},
                "unknown_items": answer.get("unknown_items", [])}

    if cart.client_id is not None:
        field = answer_field(serving.model.identity, "cart", params)
        slot = Slot(serving.redis.keys.answers(cart.client_id), field)

        def compute(read: Read | None) -> Computed:
            suppressed = read.suppressions if read is not None else NOTHING
            if not suppressed.empty:
                SUPPRESSED.labels("cart_suggestions").inc()
            body = produce(_fetch(cart.limit, suppressed), list(read.recent_purchases) if read is not None else [],
                           _for_client(serving, cart.client_id, read))
            return _encoded(_filtered(body, suppressed, cart.limit, _CART_SECTIONS), _cart_sections)

        plan = Plan(audience, "cart", "cart_suggestions", None, "cart", slot, False, _cart_sections, rate,
                    client_state.key_of(recommender, cart.client_id))
        return _respond(serving, plan, compute)
    slot = Slot(serving.redis.keys.shared(serving.model.identity, digest({**params, "fetch": cart.limit})))
    plan = Plan(audience, "cart", "cart_suggestions", None, "cart", slot, True, _cart_sections, rate)
    return _respond(serving, plan, lambda read: _shared_compute(serving, plan, read, params, cart.limit, produce,
                                                                _CART_SECTIONS))


def _similar_sections(body: dict[str, Any]) -> Sections:
    return {"similar": body["suggestions"]}


def similar_items(serving: Serving, item_id: str, limit: int, visitor_id: str | None = None,
                  rate: RateCount | None = None) -> Answer:
    """Items like `item_id`; UnknownItem when the model does not know it."""
    recommender = serving.model.recommender
    if not recommender.knows_item(item_id):
        raise UnknownItem(item_id)
    params = {"endpoint": "similar", "item_id": item_id}

    def produce(fetch: int) -> dict[str, Any]:
        try:
            suggestions = (control_suggestions(recommender, "cross_sell", fetch, serving.settings.control_answer,
                                               [item_id])
                           if serving.variant == CONTROL else recommender.similar(item_id, fetch))
        except KeyError as error:
            raise UnknownItem(item_id) from error
        return {"item_id": item_id, "model_version": serving.model.version,
                "suggestions": exposures.with_positions(finite_scores(suggestions))}

    slot = Slot(serving.redis.keys.shared(serving.model.identity, digest(_params(serving, {**params, "limit": limit}))))
    plan = Plan(exposures.Audience(None, visitor_id), "similar", "similar_items", None, None, slot, True,
                _similar_sections, rate)
    return _respond(serving, plan, lambda read: _shared_compute(
        serving, plan, read, {**params, "limit": limit}, limit, produce, ("suggestions",)))
