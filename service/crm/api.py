"""The CRM endpoints: manager tasks and a client's profile. Thin handlers over `tasks` and `profile`."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from eventstore import StoreUnavailable
from service.api import store_unavailable
from service.crm import profile, tasks
from service.crm.schemas import ClientProfile, TaskList, TaskOutcome, TaskOutcomeRequest, TaskQuery
from service.inputs import json_body, path_id, query
from service.openapi import Endpoint, api_route
from service.runtime import runtime
from service.schemas import limits

crm = Blueprint("crm", __name__, url_prefix="/v1")


@api_route(crm, "/tasks", "GET", Endpoint(
    summary="Manager tasks: clients whose behaviour changed, with the figures, an action and three offers",
    tag="crm", query=TaskQuery, response=TaskList, errors=(503,),
    description="The changes the serving model found as of its data end (features/changes.py), ordered by value "
                "at risk (clv × (1 - p_alive): retain, win_back) or value to gain (expected_revenue × severity: develop). "
                "Each task's offers are a traced answer on channel crm_task: reactions, attribution and the "
                "effect report (channel=crm_task) see them. A task's id is stable across retrains."))
def list_tasks() -> Response:
    rt = runtime()
    params = query(request, TaskQuery, limits(rt.settings))
    try:
        return jsonify(tasks.list_tasks(rt, params))
    except StoreUnavailable as error:
        raise store_unavailable(error, "Task outcomes could not be read") from None


@api_route(crm, "/tasks/<task_id>", "POST", Endpoint(
    summary="Mark a task done or dismissed, with who did it", tag="crm", body=TaskOutcomeRequest,
    response=TaskOutcome, status=201, errors=(503,),
    description="Stored in the event store (task_outcomes) before the answer; the latest outcome is the task's "
                "state. A task the serving model did not raise (listed by an earlier version) is stored too, "
                "with known: false."))
def post_task_outcome(task_id: str) -> Response:
    rt = runtime()
    task_id = path_id("task_id", task_id)
    body = json_body(request, TaskOutcomeRequest, limits(rt.settings), rt.settings.max_body_bytes)
    try:
        answer = tasks.record_outcome(rt, task_id, body)
    except StoreUnavailable as error:
        raise store_unavailable(error, "The outcome was not stored") from None
    response = jsonify(answer)
    response.status_code = 201
    return response


@api_route(crm, "/clients/<client_id>/profile", "GET", Endpoint(
    summary="A client's profile: segments now and a period ago, transitions, value figures, replenishments due, "
            "service tiers held, group", tag="crm", response=ClientProfile, errors=(503,),
    description="Value figures carry as_of and data_end. A client the serving model has never seen answers "
                "known: false with empty figures (and its group), not an error."))
def client_profile(client_id: str) -> Response:
    rt = runtime()
    client_id = path_id("client_id", client_id)
    return jsonify(profile.client_profile(rt, client_id))
