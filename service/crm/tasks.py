"""Manager tasks: the behaviour changes the serving model found (`scoring.contract.ClientChanges`), each with the
client's value figures, its money at stake, its state from the event store and three offers.

Why the offers go through `service.answers.client_suggestions`: a task's offers are an answer like any other,
with its own `recommendation_id`, an exposure on channel `crm_task`, the client's group (control clients get the
business-as-usual answer) and their reactions and fatigue honoured; so the effect report measures what
working tasks earns (`GET /v1/reports/effect?channel=crm_task`) and a purchase is attributed to the offer.
"""
from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from scoring.contract import ClientChanges, client_value_of
from service import answers, client_state
from service.crm.schemas import TaskOutcomeRequest, TaskQuery
from service.runtime import Runtime
from service.schemas import SuggestionQuery

#: which kind of offer each action makes: keep what they buy, step them up, bring the usual basket back
OFFER_KIND = {"retain": "replenishment", "develop": "upsell", "win_back": "next_basket"}
OFFERS = 3


def changes_of(recommender: Any) -> list[dict[str, Any]]:
    """Every transition of the model (none when the model predates issue 13)."""
    return recommender.transitions() if isinstance(recommender, ClientChanges) else []


def stake(change: dict[str, Any], value: dict[str, Any] | None) -> dict[str, float | None]:
    """The money a task is about: value at risk (clv × P(churn), P(churn) = 1 - p_alive) for retain and
    win-back, value to gain (the next period's expected revenue × severity: what a growing client adds if the
    change holds, one period at a time) for develop; 0 without value figures, so such tasks sink to the end."""
    if value is None:
        return {"value_at_risk": None, "value_to_gain": None, "priority": 0.0}
    if change["action"] == "develop":
        gain = round(value["expected_revenue"] * change["severity"], 2)
        return {"value_at_risk": None, "value_to_gain": gain, "priority": gain}
    risk = round(value["clv"] * (1.0 - value["p_alive"]), 2)
    return {"value_at_risk": risk, "value_to_gain": None, "priority": risk}


def _outcome(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    if stored is None:
        return None
    return {"status": stored["outcome"], "by": stored["recorded_by"], "at": stored["recorded_at"].isoformat(),
            "note": stored["note"]}


def _matches(change: dict[str, Any], segment: dict[str, Any], status: str, params: TaskQuery) -> bool:
    return ((params.type is None or change["trigger"] == params.type)
            and (params.abc is None or segment.get("abc") == params.abc)
            and (params.since is None or date.fromisoformat(change["as_of"]) >= params.since)
            and (params.status == "all" or status == params.status))


def offers(rt: Runtime, client_id: str, action: str) -> dict[str, Any]:
    """Three offers for the task, as a traced answer on channel crm_task (cross-sell when the action's kind
    has none for this client)."""
    for kind in (OFFER_KIND[action], "cross_sell"):
        query = SuggestionQuery(kind=kind, limit=OFFERS, channel="crm_task")
        body = answers.client_suggestions(rt.serving(client_id), client_id, query).body
        answer = json.loads(body)
        if answer["suggestions"] or kind == "cross_sell":
            return {"recommendation_id": answer["recommendation_id"], "variant": answer["variant"], "kind": kind,
                    "suggestions": answer["suggestions"]}
    raise AssertionError("unreachable")  # pragma: no cover


def find_tasks(rt: Runtime, params: TaskQuery, client_id: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Every task matching `params` (of one client, if given), ordered by money at stake, without offers;
    and the date the model's changes are as of. The CRM screens list these and open a client's card."""
    serving = rt.serving_model().recommender
    stored = rt.events.task_outcomes(rt.settings.tenant)
    changes = [c for c in changes_of(serving) if client_id is None or c["client_id"] == client_id]
    # the clients' own models (one Redis round trip for all, when their state lives there)
    models = client_state.fetch_many(rt.redis.connection, serving, [c["client_id"] for c in changes])
    found = []
    for change in changes:
        recommender = models[change["client_id"]]
        value_of = client_value_of(recommender)
        segment = recommender.segment(change["client_id"])
        outcome = _outcome(stored.get(change["task_id"]))
        status = outcome["status"] if outcome else "open"
        if not _matches(change, segment, status, params):
            continue
        value = value_of(change["client_id"]) if value_of else None
        found.append({"task_id": change["task_id"], "client_id": change["client_id"], "segment": segment,
                      "change": change, "action": change["action"], "value": value, **stake(change, value),
                      "status": status, "outcome": outcome})
    found.sort(key=lambda task: (-task["priority"], -task["change"]["severity"], task["task_id"]))
    return found, (changes[0]["as_of"] if changes else None)


def list_tasks(rt: Runtime, params: TaskQuery) -> dict[str, Any]:
    """The open (or filtered) tasks, ordered by money at stake, the first `limit` with their offers."""
    model = rt.serving_model()
    found, as_of = find_tasks(rt, params)
    page = found[:params.limit]
    for task in page:
        task["offers"] = offers(rt, task["client_id"], task["action"])
    return {"model_version": model.version, "as_of": as_of if found else None, "total": len(found), "tasks": page}


def record_outcome(rt: Runtime, task_id: str, body: TaskOutcomeRequest) -> dict[str, Any]:
    """Store what the manager did. A task the serving model did not raise is stored too, with `known: false`:
    a manager may close a task listed by the previous version after a retrain dropped it, and losing their
    work would be worse than keeping a mistyped id (which no listing ever shows)."""
    model = rt.models.current
    changes = changes_of(model.recommender) if model is not None else []
    change = next((c for c in changes if c["task_id"] == task_id), None)
    at = datetime.now().astimezone()
    client = change["client_id"] if change else None
    rt.events.add_task_outcome(rt.settings.tenant, {
        "task_id": task_id, "client_id": client, "outcome": body.status, "note": body.note,
        "recorded_by": body.by, "trigger": change["trigger"] if change else None, "recorded_at": at})
    return {"task_id": task_id, "known": change is not None, "client_id": client, "status": body.status,
            "by": body.by, "at": at.isoformat()}
