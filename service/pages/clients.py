"""/app/clients: find a client, and the client card (segment, suggestions by kind, Accept / Reject / Snooze).

The card asks for the client's suggestions through the same path as the API (so the answer is
recorded and reactions to it are checked like any other), and posts reactions through
`service.loop.reactions` with the signed-in person recorded as who made them. After a reaction
the card is drawn again (post/redirect/get): a rejected item is gone from the new answer.
"""
from __future__ import annotations

import json
from typing import Any

from flask import Response, redirect, render_template, request, url_for
from pydantic import ValidationError

from eventstore import StoreUnavailable
from service import answers, client_state
from service.api import store_unavailable
from service.crm.profile import client_profile
from service.inputs import path_id
from service.loop import reactions
from service.loop.schemas import ReactionRequest
from service.pages import sessions
from service.pages.blueprint import page_context, screens
from service.pages.tasks import client_tasks
from service.problems import validation_problem
from service.runtime import runtime
from service.schemas import ID_CHARACTERS, SuggestionQuery, limits

#: Suggestions per kind on a card.
CARD_LIMIT = 4
#: What the Reject button offers as reasons (codes of eventstore.schema.REACTION_REASONS).
REJECT_REASONS = {"not_relevant": "Not relevant", "already_have": "Already has it", "too_expensive": "Too expensive",
                  "later": "Maybe later"}
KIND_TITLES = {"cross_sell": "Cross-sell", "upsell": "Upsell", "service_package": "Service packages",
               "replenishment": "Due again", "next_basket": "Next basket"}


@screens.get("/")
def home() -> Response:
    return redirect(url_for("screens.client_search"))


@screens.get("/clients")
def client_search() -> Any:
    query = request.args.get("q", "").strip()
    found: bool | None = None
    if query:
        if not ID_CHARACTERS.fullmatch(query):
            found = False
        else:
            model = runtime().models.current
            known = model is not None and client_state.fetch(runtime().redis.connection, model.recommender,
                                                             query).knows_client(query)
            if known:
                return redirect(url_for("screens.client_card", client_id=query))
            found = False
    return render_template("clients.html", query=query, found=found, **page_context())


def card_answer(client_id: str) -> dict[str, Any]:
    """The client's suggestions of every kind, as the API answers them (recorded: reactions name it)."""
    rt = runtime()
    serving = rt.serving(client_id)
    params = SuggestionQuery.model_validate({"kind": "all", "limit": CARD_LIMIT, "channel": "crm"},
                                            context=limits(rt.settings))
    body = answers.client_suggestions(serving, client_id, params).body
    return json.loads(body) if isinstance(body, str | bytes) else body


@screens.get("/clients/<client_id>")
def client_card(client_id: str) -> str:
    client_id = path_id("client_id", client_id)
    answer = card_answer(client_id)
    sections = answer["suggestions"] if isinstance(answer["suggestions"], dict) else {"all": answer["suggestions"]}
    return render_template("client_card.html", client_id=client_id, answer=answer, sections=sections,
                           profile=client_profile(runtime(), client_id), tasks=client_tasks(client_id),
                           kind_titles=KIND_TITLES, reasons=REJECT_REASONS, done=request.args.get("done"),
                           control=answer.get("variant") == "control", **page_context())


@screens.post("/clients/<client_id>/reactions")
def client_reaction(client_id: str) -> Response:
    rt = runtime()
    client_id = path_id("client_id", client_id)
    form = {name: request.form[name] for name in ("recommendation_id", "item_id", "reaction") if name in request.form}
    if form.get("reaction") == "rejected" and request.form.get("reason"):
        form["reason"] = request.form["reason"]
    if form.get("reaction") == "snoozed":
        form["snooze_days"] = int(request.form["snooze_days"]) if request.form.get("snooze_days", "").isdigit() else 7
    try:
        body = ReactionRequest.model_validate({**form, "channel": "crm"}, context=limits(rt.settings))
    except ValidationError as error:
        raise validation_problem(error, 422, "invalid-body", "reaction") from None
    session = sessions.current_session(rt.redis, request)
    assert session is not None  # the gate let only sessions through
    try:
        reactions.react(rt.redis, rt.events, rt.settings, body)
        rt.events.add_reaction_actor(rt.settings.tenant, body.recommendation_id, body.item_id, body.reaction,
                                     session.who)
    except StoreUnavailable as error:
        raise store_unavailable(error, "The reaction was not stored") from None
    return redirect(url_for("screens.client_card", client_id=client_id, done=f"{body.reaction}:{body.item_id}"), 303)
