"""Manager tasks and client profiles through the real service app, with the champion trained on the real slice
(the session's hand-run trainings), a real Redis and a real event store, each test on SQLite and PostgreSQL."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scoring.crm import task_id
from service.app import create_app
from service.config import Settings
from service.loop.assignment import in_control
from training.registry import load_champion

READ_KEY = "read-key-0123456789"
ADMIN_KEY = "admin-key-0123456789"
READ = {"X-API-Key": READ_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}

@pytest.fixture(scope="module")
def champion(trained_runs) -> Any:
    model, _ = load_champion(trained_runs[0])
    assert model.transitions(), "the champion trained on the slice has transitions"
    return model

@pytest.fixture()
def client(tmp_path: Path, redis_url: str, events_url: str, champion: Any) -> Iterator[FlaskClient]:
    settings = Settings.from_env({
        "API_KEYS": READ_KEY, "ADMIN_API_KEYS": ADMIN_KEY, "REDIS_URL": redis_url, "EVENTS_DB_URL": events_url,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db", "MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "SERVICE_STATE_DIR": str(tmp_path / "state"), "REDIS_TIMEOUT_SECONDS": "1"})
    app: Flask = create_app(settings, watch=False)
    app.extensions["crm"].models.install(champion, "3")
    yield app.test_client()
    app.extensions["crm"].events.close()
    app.extensions["crm"].redis.close()

def _tasks(client: FlaskClient, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/tasks", query_string=params, headers=READ)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()

def _problem_field(response: Any, status: int) -> str:
    assert response.status_code == status and response.mimetype == "application/problem+json"
    return response.get_json()["errors"][0]["field"]

def test_tasks_are_ordered_by_money_at_stake_with_traced_offers(client: FlaskClient, champion: Any) -> None:
    answer = _tasks(client, limit=5)
    tasks = answer["tasks"]
    assert answer["total"] == len(champion.transitions()) and len(tasks) == 5
    assert [t["priority"] for t in tasks] == sorted((t["priority"] for t in tasks), reverse=True)
    for task in tasks:
        change = task["change"]
        assert task["task_id"] == task_id(task["client_id"], change["trigger"], change["period"])  # stable
        assert task["value"]["as_of"] and task["value"]["data_end"] and change["detail"]
        assert task["offers"]["recommendation_id"] and 1 <= len(task["offers"]["suggestions"]) <= 3
    rt = client.application.extensions["crm"]
    rt.drain.drain_all()
    stored = rt.events.exposure(rt.settings.tenant, tasks[0]["offers"]["recommendation_id"])
    assert stored["channel"] == "crm_task" and stored["client_id"] == tasks[0]["client_id"]

def test_filters_narrow_the_list(client: FlaskClient) -> None:
    lapsing = _tasks(client, type="spend_drop", abc="A", limit=100)["tasks"]
    assert all(t["change"]["trigger"] == "spend_drop" and t["segment"]["abc"] == "A" for t in lapsing)
    tomorrow = date.fromisoformat(_tasks(client, limit=1)["as_of"]) + timedelta(days=1)
    assert _tasks(client, since=tomorrow.isoformat())["total"] == 0

def test_an_outcome_is_stored_with_who_and_closes_the_task(client: FlaskClient) -> None:
    task = _tasks(client, limit=1)["tasks"][0]
    response = client.post(f"/v1/tasks/{task['task_id']}", json={"status": "done", "by": "manager-7",
                                                                 "note": "called: moving house"}, headers=READ)
    assert response.status_code == 201 and response.get_json()["by"] == "manager-7"
    rt = client.application.extensions["crm"]
    stored = rt.events.task_outcomes(rt.settings.tenant)[task["task_id"]]
    assert (stored["outcome"], stored["recorded_by"], stored["client_id"]) == ("done", "manager-7", task["client_id"])
    assert task["task_id"] not in {t["task_id"] for t in _tasks(client, limit=100)["tasks"]}
    done = _tasks(client, status="done")["tasks"]
    assert [t["task_id"] for t in done] == [task["task_id"]] and done[0]["outcome"]["by"] == "manager-7"

def test_bad_input_is_a_problem_naming_the_field(client: FlaskClient) -> None:
    assert _problem_field(client.get("/v1/tasks?type=bored", headers=READ), 400) == "type"
    assert _problem_field(client.get("/v1/tasks?abc=D", headers=READ), 400) == "abc"
    assert _problem_field(client.get("/v1/tasks?since=last-week", headers=READ), 400) == "since"
    assert _problem_field(client.get("/v1/tasks?limit=0", headers=READ), 400) == "limit"
    task = _tasks(client, limit=1)["tasks"][0]["task_id"]
    assert _problem_field(client.post(f"/v1/tasks/{task}", json={"status": "done"}, headers=READ), 422) == "by"
    assert _problem_field(client.post(f"/v1/tasks/{task}", json={"status": "maybe", "by": "m"}, headers=READ),
                          422) == "status"
    assert _problem_field(client.post(f"/v1/tasks/{task}", json={"status": "done", "by": "m", "extra": 1},
                                      headers=READ), 422) == "extra"
    assert _problem_field(client.post(f"/v1/tasks/{task}", data="{", headers={**READ, "Content-Type":
                                                                               "application/json"}), 400) == "body"
    assert client.get("/v1/tasks").status_code == 401

def test_a_task_of_an_earlier_version_is_stored_all_the_same(client: FlaskClient) -> None:
    response = client.post("/v1/tasks/raised-by-v2", json={"status": "dismissed", "by": "m"}, headers=READ)
    assert response.status_code == 201 and response.get_json()["known"] is False
    rt = client.application.extensions["crm"]
    assert rt.events.task_outcomes(rt.settings.tenant)["raised-by-v2"]["outcome"] == "dismissed"


def test_an_unknown_client_has_an_empty_profile(client: FlaskClient) -> None:
    profile = client.get("/v1/clients/never-seen/profile", headers=READ).get_json()
    assert profile["known"] is False and profile["value"] is None and profile["transitions"] == []


def test_the_profile_says_segments_changes_value_and_group(client: FlaskClient, champion: Any) -> None:
    changed = champion.transitions()[0]["client_id"]
    response = client.get(f"/v1/clients/{changed}/profile", headers=READ)
    assert response.status_code == 200
    profile = response.get_json()
    assert profile["segment"]["abc"] in "ABC" and profile["segment_before"]
    assert {t["client_id"] for t in profile["transitions"]} == {changed}
    assert 0 < profile["value"]["p_purchase"] <= 1 and profile["value"]["as_of"]
    assert profile["group"] == ("control" if in_control("default", "crm", changed, 0.05) else "treatment")
    assert all(r["due_in_days"] is None or r["due_in_days"] <= 0 for r in profile["due_replenishments"])
    suggestions = client.get(f"/v1/clients/{changed}/suggestions?kind=cross_sell", headers=READ).get_json()
    assert suggestions["segment"]["value"] == profile["value"]

def test_every_crm_endpoint_is_in_the_openapi_document(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    assert {"get"} <= set(paths["/v1/tasks"]) and {"post"} <= set(paths["/v1/tasks/{task_id}"])
    assert "get" in paths["/v1/clients/{client_id}/profile"]
