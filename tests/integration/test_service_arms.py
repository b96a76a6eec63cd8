"""Online A/B between model versions (issue 12, item 5) against a real `mlflow server` and redis-server.

Each test registers versions of the contract double (support/service_model_double.py) under its
own model name, with @champion on one and @candidate on another, and runs the service in-process
with EXPERIMENT=champion:50,candidate:50: both versions load through the same checks, each client
gets its arm's version stickily, a candidate moved to a version failing the checks leaves the last
good candidate serving, and a candidate alias that does not exist (or is removed) sends its share
to the champion, the answer naming the champion.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from flask import Flask
from mlflow import MlflowClient
from support.apps import app_maker
from support.processes import free_port, wait_until
from support.service_model_double import register_double
from support.service_process import ADMIN, Service, workers_serving

from scoring.contract import MODEL_UPDATES_CHANNEL
from service.loop.assignment import CONTROL
from service.metrics import ARM_FALLBACKS

EXPERIMENT = {"EXPERIMENT": "champion:50,candidate:50", "CONTROL_SHARE": "0.1"}
SUBJECTS = [f"client-{n}" for n in range(400)] + [f"visitor:v{n}" for n in range(100)]


@pytest.fixture()
def make_app(service_env: dict[str, str]) -> Iterator[Callable[..., Flask]]:
    yield from app_maker({**service_env, **EXPERIMENT}, lambda app: app.extensions["crm"].arms.refresh_all("test"))


@pytest.fixture()
def versions(mlflow_server: str, model_name: str) -> tuple[str, str]:
    """v1 @champion, v2 @candidate."""
    champion = register_double(mlflow_server, model_name, tag="champion")
    candidate = register_double(mlflow_server, model_name, "candidate", tag="candidate")
    return champion, candidate


def served(app: Flask) -> dict[str, tuple[str, str]]:
    """{subject: (variant, version)} through Runtime.model_for."""
    rt = app.extensions["crm"]
    return {subject: (variant, model.version) for subject in SUBJECTS
            for variant, model in [rt.model_for(subject)]}


def arms_of(client: Any) -> dict[str, dict[str, Any]]:
    """/readyz's arms by alias ({} while not ready)."""
    response = client.get("/readyz")
    return {arm["alias"]: arm for arm in response.get_json()["arms"]} if response.status_code == 200 else {}


def test_both_versions_load_and_each_client_keeps_its_arm(make_app: Callable[..., Flask],
                                                          versions: tuple[str, str]) -> None:
    champion, candidate = versions
    app = make_app()
    first = served(app)
    variants = {variant for variant, _ in first.values()}
    assert variants == {CONTROL, "champion", "candidate"}
    for variant, version in first.values():
        assert version == (candidate if variant == "candidate" else champion)
    assert served(app) == first  # sticky within a worker
    assert served(make_app()) == first  # and across workers (another app, its own stores)
    share = sum(variant == "candidate" for variant, _ in first.values()) / len(first)
    assert 0.3 < share < 0.6
    model = app.extensions["crm"].arms.stores["candidate"].current
    assert (model.version, model.source, model.recommender.meta["params"]["tag"]) == (candidate, "registry", "candidate")

    client = app.test_client()
    assert {alias: (arm["version"], arm["source"], arm["status"]) for alias, arm in arms_of(client).items()} == {
        "champion": (champion, "registry", "serving"), "candidate": (candidate, "registry", "serving")}
    text = client.get("/metrics").get_data(as_text=True)
    name = app.extensions["crm"].settings.model_name
    assert f'crm_model_version{{alias="candidate",name="{name}"}} {float(candidate)}' in text
    assert f'crm_model_version{{alias="champion",name="{name}"}} {float(champion)}' in text


def test_a_candidate_failing_its_checks_leaves_the_last_good_candidate_serving(
        make_app: Callable[..., Flask], versions: tuple[str, str], mlflow_server: str, model_name: str) -> None:
    champion, candidate = versions
    app = make_app()
    before = served(app)
    broken = register_double(mlflow_server, model_name, "candidate", tag="broken", broken=True)
    response = app.test_client().post("/v1/admin/reload", headers=ADMIN)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["model_version"] == champion and body["changed"] is False
    arms = {arm["alias"]: arm for arm in body["arms"]}
    assert arms["candidate"]["model_version"] == candidate and f"version {broken}" in arms["candidate"]["error"]
    assert arms["champion"]["error"] is None
    assert served(app) == before
    assert arms_of(app.test_client())["candidate"]["version"] == candidate

    # a worker started now serves the last good candidate from its local copy: the same split
    fresh = make_app()
    assert (arms_of(fresh.test_client())["candidate"]["version"], arms_of(fresh.test_client())["candidate"]["source"]) == (
        candidate, "local-copy")
    assert served(fresh) == before


@pytest.mark.parametrize("candidate", ["broken", "missing"])
def test_a_candidate_serving_no_version_sends_its_share_to_the_champion(
        make_app: Callable[..., Flask], mlflow_server: str, model_name: str, candidate: str) -> None:
    """A candidate that never passed its checks, or whose alias does not exist, is not served."""
    champion = register_double(mlflow_server, model_name, tag="champion")
    if candidate == "broken":
        register_double(mlflow_server, model_name, "candidate", tag="broken", broken=True)
    reason = "not-loaded" if candidate == "broken" else "alias-missing"
    app = make_app()
    fallbacks = ARM_FALLBACKS.labels("candidate", reason)
    before = fallbacks._value.get()
    answers = served(app)
    assert {variant for variant, _ in answers.values()} == {CONTROL, "champion"}
    assert {version for _, version in answers.values()} == {champion}
    assert fallbacks._value.get() > before
    arm = arms_of(app.test_client())["candidate"]
    assert (arm["status"], arm["version"], arm["served_by"]) == (reason, None, "champion")


def test_a_candidate_alias_removed_stops_serving_and_is_not_served_from_disk(
        make_app: Callable[..., Flask], versions: tuple[str, str], mlflow_server: str, model_name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    champion, candidate = versions
    app = make_app()
    assert {v for v, _ in served(app).values()} == {CONTROL, "champion", "candidate"}
    MlflowClient(mlflow_server, registry_uri=mlflow_server).delete_registered_model_alias(model_name, "candidate")
    app.extensions["crm"].arms.refresh_all("test")
    assert {version for _, version in served(app).values()} == {champion}
    assert arms_of(app.test_client())["candidate"]["status"] == "alias-missing"

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    cut_off = make_app(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    arms = arms_of(cut_off.test_client())
    assert (arms["champion"]["version"], arms["champion"]["source"]) == (champion, "local-copy")
    assert arms["candidate"]["status"] == "not-loaded"


def test_each_arm_restarts_on_its_own_local_copy(make_app: Callable[..., Flask], versions: tuple[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    champion, candidate = versions
    make_app()  # both arms load from the registry and keep their local copies
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    cut_off = make_app(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    arms = arms_of(cut_off.test_client())
    assert {alias: (arm["version"], arm["source"]) for alias, arm in arms.items()} == {
        "champion": (champion, "local-copy"), "candidate": (candidate, "local-copy")}


def test_each_arms_watcher_follows_its_own_alias(make_app: Callable[..., Flask], versions: tuple[str, str],
                                                 mlflow_server: str, model_name: str, redis_url: str) -> None:
    champion, candidate = versions
    client = make_app(watch=True).test_client()
    client.get("/healthz")  # the first request starts every arm's watcher
    wait_until(lambda: {alias: arm["version"] for alias, arm in arms_of(client).items()} == {
        "champion": champion, "candidate": candidate})
    channel = MODEL_UPDATES_CHANNEL
    with redis.Redis.from_url(redis_url) as r:
        wait_until(lambda: dict(r.pubsub_numsub(channel)).get(channel.encode(), 0) >= 2)
        third = register_double(mlflow_server, model_name, "candidate", tag="third")
        r.publish(channel, json.dumps({"name": model_name, "alias": "candidate", "version": third}))
    wait_until(lambda: arms_of(client)["candidate"]["version"] == third, timeout=30)
    assert arms_of(client)["champion"]["version"] == champion


@pytest.mark.slow
def test_every_gunicorn_worker_loads_both_arms_at_start(tmp_path: Path, service_env: dict[str, str],
                                                        versions: tuple[str, str]) -> None:
    """post_worker_init starts each worker's watchers for every arm (gunicorn.conf.py)."""
    champion, candidate = versions
    service = Service(tmp_path, {**service_env, **EXPERIMENT, "WORKERS": "2"}, "gunicorn")

    def candidates() -> dict[str, str]:
        try:
            return workers_serving(service.base, "candidate")
        except requests.RequestException:  # a worker still loading
            return {}

    with service.start(ready=False, timeout=60):
        wait_until(lambda: len(candidates()) == 2, timeout=90, interval=0.25)
        assert set(candidates().values()) == {candidate}
        assert set(service.wait_serving(champion, timeout=30).values()) == {champion}
        for _ in range(4):  # whichever worker answers
            arms = {arm["alias"]: arm["version"] for arm in requests.get(f"{service.base}/readyz", timeout=5).json()["arms"]}
            assert arms == {"champion": champion, "candidate": candidate}
