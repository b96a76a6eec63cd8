"""The loop's endpoints: reactions to suggestions, and which group a client is in."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from eventstore import StoreUnavailable
from service.api import store_unavailable
from service.inputs import json_body, path_id
from service.loop import reactions
from service.loop.assignment import CONTROL, assign
from service.loop.schemas import ClientGroup, ReactionAccepted, ReactionRequest
from service.openapi import Endpoint, api_route
from service.runtime import runtime
from service.schemas import limits

loop = Blueprint("loop", __name__, url_prefix="/v1")


@api_route(loop, "/reactions", "POST", Endpoint(
    summary="What a person did with a suggestion: shown, clicked, accepted, rejected, snoozed", tag="events",
    body=ReactionRequest, response=ReactionAccepted, status=201, errors=(404, 410, 503),
    description="Stored in the event store before the answer. 201 the first time; the same reaction again is "
                "200 with duplicate: true. A rejection leaves the item and its product group out of the "
                "client's answers for REJECT_SUPPRESS_DAYS, a snooze for snooze_days, at once. 404: an unknown "
                "recommendation_id, or an item that was not in that answer (the error names the field); 410: "
                "the answer is older than REACTION_MAX_AGE_DAYS.", extra_responses={200: "The same reaction was already stored."}))
def post_reaction() -> Response:
    rt = runtime()
    body = json_body(request, ReactionRequest, limits(rt.settings), rt.settings.max_body_bytes)
    try:
        answer = reactions.react(rt.redis, rt.events, rt.settings, body)
    except StoreUnavailable as error:
        raise store_unavailable(error, "The reaction was not stored") from None
    response = jsonify(answer)
    response.status_code = 200 if answer["duplicate"] else 201
    return response


@api_route(loop, "/clients/<client_id>/group", "GET", Endpoint(
    summary="The client's group: the persistent control group, or the experiment arm it is in", tag="events",
    response=ClientGroup, description="Assignment hashes TENANT, ASSIGNMENT_SALT and the id: the same on every "
                                      "worker and replica, stable when the model changes."))
def client_group(client_id: str) -> Response:
    rt = runtime()
    client_id = path_id("client_id", client_id)
    settings = rt.settings
    variant = assign(settings.tenant, settings.assignment_salt, client_id, settings.control_share, settings.arms)
    return jsonify({"client_id": client_id, "group": "control" if variant == CONTROL else "treatment",
                    "variant": variant, "control_share": settings.control_share, "experiment": settings.experiment})
