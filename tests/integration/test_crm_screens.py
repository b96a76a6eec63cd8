"""The manager's screens over the analytical CRM: /app/tasks lists the tasks the API lists, in its order,
and opens each client's card, which shows the client's value figures, segment a period ago, changes and
tasks; a task marked done there is stored with who did it. The champion trained on the real slice (the
session's hand-run trainings), a real Redis, a real SQLite event store; auth off (the demo's session)."""
from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.app import create_app
from service.config import Settings
from service.pages.sessions import DEMO_WHO
from training.registry import load_champion


@pytest.fixture(scope="module")
def champion(trained_runs: Any) -> Any:
    model, _ = load_champion(trained_runs[0])
    assert model.transitions(), "the champion trained on the slice has transitions"
    return model


@pytest.fixture()
def client(tmp_path: Path, redis_url: str, champion: Any) -> Iterator[FlaskClient]:
    settings = Settings.from_env({
        "AUTH_DISABLED": "true", "REDIS_URL": redis_url, "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db", "MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "SERVICE_STATE_DIR": str(tmp_path / "state"), "REDIS_TIMEOUT_SECONDS": "1", "CONTROL_SHARE": "0"})
    app: Flask = create_app(settings, watch=False)
    app.extensions["crm"].models.install(champion, "3")
    yield app.test_client()
    app.extensions["crm"].events.close()
    app.extensions["crm"].redis.close()


def _page(client: FlaskClient, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    return answer.get_data(as_text=True)


def test_the_task_list_is_the_apis_in_its_order_and_opens_cards(client: FlaskClient) -> None:
    api = client.get("/v1/tasks", query_string={"limit": 10}).get_json()
    page = _page(client, "/app/tasks")
    listed = re.findall(r'<tr data-task-id="([^"]+)">', page)
    assert api["tasks"] and listed[:len(api["tasks"])] == [task["task_id"] for task in api["tasks"]]
    first = api["tasks"][0]
    assert f'href="/app/clients/{first["client_id"]}"' in page and html.escape(first["change"]["detail"]) in page
    trigger = first["change"]["trigger"]
    narrowed = re.findall(r'<tr data-task-id="([^"]+)">', _page(client, f"/app/tasks?type={trigger}"))
    filtered = client.get("/v1/tasks", query_string={"type": trigger, "limit": 5}).get_json()["tasks"]
    assert narrowed[:len(filtered)] == [task["task_id"] for task in filtered] and first["task_id"] in narrowed
    assert "Lifetime value" not in page  # the list carries no offers and no card


def test_the_card_shows_value_changes_and_tasks_and_a_task_done_is_stored(client: FlaskClient) -> None:
    task = client.get("/v1/tasks", query_string={"limit": 1}).get_json()["tasks"][0]
    profile = client.get(f"/v1/clients/{task['client_id']}/profile").get_json()
    card = _page(client, f"/app/clients/{task['client_id']}")
    value = re.search(r'<section aria-labelledby="value-title".*?</section>', card, re.S).group(0)
    assert f"{profile['value']['clv']:.2f}" in value and f"{100 * profile['value']['p_purchase']:.0f} %" in value
    assert profile["value"]["as_of"] in value and f"class {profile['segment_before']['abc']}" in value
    tasks = re.search(r'<section aria-labelledby="tasks-title".*?</section>', card, re.S).group(0)
    assert f'data-task-id="{task["task_id"]}"' in tasks and html.escape(task["change"]["detail"]) in tasks

    csrf = re.search(r'name="csrf" value="([^"]+)"', tasks).group(1)
    back = f"/app/clients/{task['client_id']}"
    done = client.post(f"/app/tasks/{task['task_id']}", data={"csrf": csrf, "status": "done", "back": back})
    assert done.status_code == 302 and done.headers["Location"] == back
    stored = client.get("/v1/tasks", query_string={"status": "done", "limit": 100}).get_json()["tasks"]
    assert [(t["task_id"], t["outcome"]["by"]) for t in stored] == [(task["task_id"], DEMO_WHO)]
    assert "(done)" in _page(client, back)
    refused = client.post(f"/app/tasks/{task['task_id']}", data={"csrf": "forged", "status": "dismissed"})
    assert refused.status_code == 403
