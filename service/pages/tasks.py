"""/app/tasks: the manager's list of clients whose behaviour changed, each opening the client's card.

The list is the one `GET /v1/tasks` answers (`service.crm.tasks.find_tasks`: ordered by money at
stake), without the offers: a manager opens the card to see them, so listing fifty tasks records
no answer. Working a task (done, dismissed) is `POST /v1/tasks/{id}` for a CRM; here it is the
form on each row, recorded with the signed-in person.
"""
from __future__ import annotations

from typing import Any

from flask import Response, redirect, render_template, request, url_for
from pydantic import ValidationError

from eventstore import StoreUnavailable
from service.api import store_unavailable
from service.crm import tasks
from service.crm.schemas import TRIGGERS, TaskOutcomeRequest, TaskQuery
from service.inputs import path_id
from service.pages.blueprint import page_context, screens
from service.problems import validation_problem
from service.runtime import runtime

#: Tasks listed on one page.
PAGE = 50


@screens.get("/tasks")
def task_list() -> str:
    try:
        params = TaskQuery.model_validate({**request.args.to_dict(flat=True), "limit": PAGE})
    except ValidationError as error:
        raise validation_problem(error, 400, "invalid-parameter", "query parameter") from None
    found, as_of = tasks.find_tasks(runtime(), params)
    return render_template("tasks.html", tasks=found[:PAGE], total=len(found), as_of=as_of, params=params,
                           triggers=TRIGGERS, **page_context())


@screens.post("/tasks/<task_id>")
def task_outcome(task_id: str) -> Response:
    rt = runtime()
    task_id = path_id("task_id", task_id)
    session = page_context()["session"]
    try:
        body = TaskOutcomeRequest.model_validate({"status": request.form.get("status"),
                                                  "by": session.who if session else "unknown"})
    except ValidationError as error:
        raise validation_problem(error, 400, "invalid-body", "form field") from None
    try:
        tasks.record_outcome(rt, task_id, body)
    except StoreUnavailable as error:
        raise store_unavailable(error, "The outcome was not stored") from None
    back = request.form.get("back", "")
    return redirect(back if back.startswith("/app/") else url_for("screens.task_list"))


def client_tasks(client_id: str) -> list[dict[str, Any]]:
    """Every task of one client (any status), for the card."""
    found, _ = tasks.find_tasks(runtime(), TaskQuery(status="all"), client_id=client_id)
    return found
