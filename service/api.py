"""The /v1 endpoints: parse the input, call `answers`, shape the HTTP answer."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Request, Response, g, jsonify, request

from eventstore import StoreUnavailable
from scoring.contract import ObjectiveUnavailable
from service import answers, intake
from service.inputs import json_body, path_id, query
from service.loop.assignment import subject_of
from service.model.errors import RegistryUnavailable
from service.model.store import RefreshResult
from service.openapi import Endpoint, api_route
from service.problems import Problem
from service.redis.core import RedisUnavailable
from service.runtime import Runtime, runtime
from service.schemas import (
    CartRequest,
    CartSuggestions,
    ClientSuggestions,
    Erasure,
    Event,
    EventBatch,
    EventsAccepted,
    Reload,
    SimilarItems,
    SimilarQuery,
    SuggestionQuery,
    limits,
)

v1 = Blueprint("v1", __name__, url_prefix="/v1")


def _traced(answer: answers.Answer) -> Response:
    """A suggestion answer; its rate-limit allowance goes out as headers (`service.app`)."""
    g.allowance = answer.allowance
    return _answer(answer.body, answer.cache)


def _answer(body: dict[str, Any] | str, cache: str, status: int = 200) -> Response:
    """A JSON response; `body` may be JSON text already (answers and cache hits are)."""
    response = (Response(body, status=status, mimetype="application/json") if isinstance(body, str)
                else jsonify(body))
    response.status_code = status
    response.headers["X-Cache"] = cache
    return response


def store_unavailable(error: StoreUnavailable | RedisUnavailable, what: str) -> Problem:
    which = "the event store" if isinstance(error, StoreUnavailable) else "Redis"
    return Problem(503, "store-unavailable", f"{what}: {which} is unavailable ({error}).",
                   headers={"Retry-After": "5"})


@api_route(v1, "/clients/<client_id>/suggestions", "GET", Endpoint(
    summary="Suggestions for one client: cross-sell, upsell, service packages, replenishment, next basket",
    tag="suggestions", query=SuggestionQuery, response=ClientSuggestions, errors=(409, 503), rate_in_trip=True,
    description="Unknown clients get cold-start suggestions (cold_start: true). kind=all groups by kind, every "
                "kind but next_basket (the whole next basket in one list: due repeats and new items). "
                "409 when the objective needs data the serving model has not (margin without item margins)."))
def client_suggestions(client_id: str) -> Response:
    return answer_client(request, runtime(), client_id)


def answer_client(req: Request, rt: Runtime, client_id: str) -> Response:
    """The handler's work, for Flask's view and the fast path alike (an app context pushed)."""
    client_id = path_id("client_id", client_id)
    params = query(req, SuggestionQuery, limits(rt.settings))
    serving = rt.serving(client_id)
    try:
        answer = answers.client_suggestions(serving, client_id, params, g.get("rate"))
    except ObjectiveUnavailable as error:
        raise Problem(409, "objective-unavailable", f"{error} (model version {serving.model.version}).",
                      errors=[{"field": "objective", "message": str(error)}]) from None
    return _traced(answer)


@api_route(v1, "/cart/suggestions", "POST", Endpoint(
    summary="What completes a basket, upsells of its items and bundle offers",
    tag="suggestions", body=CartRequest, response=CartSuggestions, errors=(503,), rate_in_trip=True,
    description="Works for anonymous carts (no client_id)."))
def cart_suggestions() -> Response:
    return answer_cart(request, runtime())


def answer_cart(req: Request, rt: Runtime) -> Response:
    """The handler's work, for Flask's view and the fast path alike (an app context pushed)."""
    cart = json_body(req, CartRequest, limits(rt.settings), rt.settings.max_body_bytes)
    return _traced(answers.cart_suggestions(rt.serving(subject_of(cart.client_id, cart.visitor_id)), cart,
                                            g.get("rate")))


@api_route(v1, "/items/<item_id>/similar", "GET", Endpoint(
    summary="Items similar to one item", tag="suggestions", query=SimilarQuery, response=SimilarItems,
    errors=(404, 503), rate_in_trip=True))
def similar_items(item_id: str) -> Response:
    return answer_similar(request, runtime(), item_id)


def answer_similar(req: Request, rt: Runtime, item_id: str) -> Response:
    """The handler's work, for Flask's view and the fast path alike (an app context pushed)."""
    item_id = path_id("item_id", item_id)
    params = query(req, SimilarQuery, limits(rt.settings))
    serving = rt.serving(subject_of(None, params.visitor_id))
    try:
        answer = answers.similar_items(serving, item_id, params.limit, params.visitor_id, g.get("rate"))
    except answers.UnknownItem:
        raise Problem(404, "unknown-item", f"Item {item_id!r} is not in the catalogue of model version "
                      f"{serving.model.version}.", errors=[{"field": "item_id", "message": "unknown item"}]) from None
    return _traced(answer)


@api_route(v1, "/events", "POST", Endpoint(
    summary="Store a batch of client events (view, cart, purchase, impression, click)", tag="events",
    body=EventBatch, body_also_array_of=Event, response=EventsAccepted, status=202, errors=(503,),
    description="Committed to the event store before the answer: a 202 is never lost (503: nothing stored, "
                "retry; an event_id makes the retry harmless). A purchase changes the client's next answers at "
                "once. impression and click events naming their recommendation_id are recorded as the reactions "
                "shown and clicked."))
def post_events() -> Response:
    rt = runtime()
    batch = json_body(request, EventBatch, limits(rt.settings), rt.settings.max_body_bytes, array_field="events")
    try:
        body = intake.record_events(rt.redis, rt.events, rt.settings, batch)
    except StoreUnavailable as error:
        raise store_unavailable(error, "Events were not stored") from None
    return _answer(body, "off", status=202)


@api_route(v1, "/clients/<client_id>", "DELETE", Endpoint(
    summary="Erase a client (GDPR): stored events, exposures, reactions and cached answers dropped, erasure "
            "recorded for training",
    tag="admin", auth="admin", response=Erasure, errors=(503,)))
def erase_client(client_id: str) -> Response:
    rt = runtime()
    client_id = path_id("client_id", client_id)
    try:
        body = intake.erase_client(rt.redis, rt.events, rt.settings.service_state_dir, rt.settings.tenant,
                                   client_id, g.get("request_id"))
    except (StoreUnavailable, RedisUnavailable) as error:
        raise store_unavailable(error, "The erasure is recorded for training, but events and cached answers "
                                "could not be dropped yet; repeat the request") from None
    return _answer(body, "off")


@api_route(v1, "/admin/reload", "POST", Endpoint(
    summary="Load the versions the aliases point to now (MODEL_ALIAS and each arm of EXPERIMENT)", tag="admin",
    auth="admin", response=Reload, errors=(409, 503),
    description="409 when MODEL_ALIAS's version fails its checks: the last good one keeps serving. `arms` says "
                "what happened to each alias; an arm that failed keeps its last good version (or its share is "
                "answered by MODEL_ALIAS's)."))
def reload_model() -> Response:
    rt = runtime()
    outcomes = rt.arms.refresh_all("admin", force=True)
    for outcome in outcomes.values():
        if isinstance(outcome, RefreshResult) and outcome.changed and outcome.current is not None:
            try:  # other workers and replicas follow without waiting for their poll
                rt.redis.updates.publish(outcome.current.name, outcome.current.alias, outcome.current.version)
            except RedisUnavailable:
                pass
    result = outcomes[rt.arms.primary_alias]
    if isinstance(result, RegistryUnavailable):
        raise Problem(503, "registry-unavailable", str(result))
    if isinstance(result, Exception):
        serving = rt.models.current
        raise Problem(409, "model-check-failed", f"{result}"[:500],
                      extra={"serving_version": serving.version if serving else None})
    assert result.current is not None
    return _answer({"changed": result.changed, "previous_version": result.previous_version,
                    "model_version": result.current.version, "source": result.current.source,
                    "arms": rt.arms.reload_report(outcomes)}, "off")
