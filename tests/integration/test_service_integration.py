"""The service in-process (Flask's test client) against a real `mlflow server` and a real redis-server.

Each test registers its own model name in the session's MLflow server (versions of the contract
double in support/service_model_double.py, logged with their code), so tests do not see each other's
aliases. Redis is flushed per test by the `redis_url` fixture. The same service as real processes
over HTTP: test_service_processes.py.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from support.apps import app_maker
from support.processes import RedisServer, free_port, wait_until
from support.service_model_double import register_double
from support.service_process import ADMIN, READ

from scoring.contract import MODEL_UPDATES_CHANNEL
from service.config import Settings
from service.metrics import RELOADS
from service.redis.core import Keys


@pytest.fixture()
def make_app(service_env: dict[str, str]) -> Iterator[Callable[..., Flask]]:
    yield from app_maker(service_env, lambda app: app.extensions["crm"].models.refresh("test"))


def serving_version(client: Any) -> str | None:
    response = client.get("/readyz")
    body = response.get_json()
    return body["model"]["version"] if response.status_code == 200 else None


def cross_sell_ids(client: Any, client_id: str = "c1") -> list[str]:
    response = client.get(f"/v1/clients/{client_id}/suggestions?kind=cross_sell", headers=READ)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [s["item_id"] for s in response.get_json()["suggestions"]]


def test_every_endpoint_with_real_registry_and_redis(make_app: Callable[..., Flask], first_version: str) -> None:
    client = make_app().test_client()
    ready = client.get("/readyz").get_json()
    assert ready["model"]["version"] == first_version and ready["model"]["source"] == "registry"
    assert ready["redis"] == "up"

    first = client.get("/v1/clients/c1/suggestions?kind=all", headers=READ)
    again = client.get("/v1/clients/c1/suggestions?kind=all", headers=READ)
    assert first.status_code == again.status_code == 200
    assert (first.headers["X-Cache"], again.headers["X-Cache"]) == ("miss", "hit")
    def untraced(answer: dict) -> dict:  # each answer has its own id, a cached one too
        return {key: value for key, value in answer.items() if key != "recommendation_id"}

    assert first.get_json()["recommendation_id"] != again.get_json()["recommendation_id"]
    assert untraced(first.get_json()) == untraced(again.get_json()) and first.get_json()["model_version"] == first_version

    cold = client.get("/v1/clients/nobody/suggestions?kind=cross_sell&limit=2", headers=READ).get_json()
    assert cold["cold_start"] is True and len(cold["suggestions"]) == 2

    cart = {"client_id": "c2", "items": ["coffee"], "limit": 3}
    assert client.post("/v1/cart/suggestions", json=cart, headers=READ).headers["X-Cache"] == "miss"
    cached = client.post("/v1/cart/suggestions", json=cart, headers=READ)
    assert cached.headers["X-Cache"] == "hit" and cached.get_json()["bundles"][0]["bundle_id"] == "coffee-starter"
    anonymous = client.post("/v1/cart/suggestions", json={"items": ["coffee"]}, headers=READ)
    assert anonymous.status_code == 200 and anonymous.get_json()["client_id"] is None

    similar = client.get("/v1/items/coffee/similar?limit=5", headers=READ)
    assert similar.status_code == 200 and similar.get_json()["suggestions"]
    assert client.get("/v1/items/coffee/similar?limit=5", headers=READ).headers["X-Cache"] == "hit"
    assert client.get("/v1/items/unknown/similar", headers=READ).status_code == 404

    events = [{"client_id": "c3", "item_id": "mug", "type": "view", "timestamp": "2024-05-01T10:00:00Z"},
              {"client_id": "c3", "item_id": "mug", "type": "click", "timestamp": 1714557600, "price": 6}]
    accepted = client.post("/v1/events", json={"events": events}, headers=READ)
    assert accepted.status_code == 202 and accepted.get_json()["accepted"] == 2

    reload = client.post("/v1/admin/reload", headers=ADMIN)
    assert reload.status_code == 200 and reload.get_json()["changed"] is False
    assert client.delete("/v1/clients/c3", headers=ADMIN).status_code == 200
    assert client.get("/healthz").status_code == 200
    assert "crm_cache_requests_total" in client.get("/metrics").get_data(as_text=True)
    assert client.get("/openapi.json").status_code == 200 and client.get("/docs").status_code == 200


def test_purchase_takes_item_out_of_cross_sell_at_once(make_app: Callable[..., Flask], first_version: str,
                                                       redis_url: str) -> None:
    client = make_app().test_client()
    assert "filters" in cross_sell_ids(client)
    assert client.get("/v1/clients/c1/suggestions?kind=cross_sell", headers=READ).headers["X-Cache"] == "hit"

    purchase = {"client_id": "c1", "item_id": "filters", "type": "purchase", "timestamp": "2024-05-02T09:00:00Z",
                "quantity": 2, "price": 3.0}
    response = client.post("/v1/events", json=[purchase], headers=READ)
    assert response.status_code == 202 and response.get_json()["purchases"] == 1

    after = client.get("/v1/clients/c1/suggestions?kind=cross_sell", headers=READ)
    assert after.headers["X-Cache"] == "miss" and "filters" not in cross_sell_ids(client)
    keys = Keys("default")
    with redis.Redis.from_url(redis_url, decode_responses=True) as r:
        assert r.lrange(keys.recent("c1"), 0, -1) == ["filters"]
        stored = r.xrange(keys.events)[-1][1]
        assert stored["client_id"] == "c1" and stored["type"] == "purchase" and stored["quantity"] == "2.0"
        assert r.ttl(keys.recent("c1")) > 0


def test_erasure_drops_events_and_answers_and_is_recorded(make_app: Callable[..., Flask], first_version: str,
                                                          redis_url: str, service_env: dict[str, str]) -> None:
    client = make_app().test_client()
    events = [{"client_id": cid, "item_id": "coffee", "type": kind, "timestamp": "2024-05-01T10:00:00Z"}
              for cid in ("gone", "stays") for kind in ("view", "purchase")]
    assert client.post("/v1/events", json=events, headers=READ).status_code == 202
    assert client.get("/v1/clients/gone/suggestions", headers=READ).status_code == 200  # cached now

    response = client.delete("/v1/clients/gone", headers=ADMIN)
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["events_deleted"] == 2 and body["cached_answers_deleted"] == 1
    assert body["recent_purchases_deleted"] == 1

    keys = Keys("default")
    with redis.Redis.from_url(redis_url, decode_responses=True) as r:
        remaining = [fields["client_id"] for _, fields in r.xrange(keys.events)]
        assert remaining == ["stays", "stays"]
        assert r.sismember("erasures", "gone")
        assert not r.exists(keys.answers("gone"), keys.recent("gone"))
        # bumped, not deleted (an answer computed before the erasure is then not cached), and expiring
        assert int(r.get(keys.generation("gone"))) >= 2 and r.ttl(keys.generation("gone")) > 0
    lines = (Path(service_env["SERVICE_STATE_DIR"]) / "erasures.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["client_id"] == "gone" and json.loads(lines[-1])["tenant"] == "default"
    assert client.get("/v1/clients/gone/suggestions", headers=READ).headers["X-Cache"] == "miss"


def test_alias_moved_is_served_without_restart(make_app: Callable[..., Flask], first_version: str,
                                               mlflow_server: str, model_name: str, redis_url: str) -> None:
    client = make_app(watch=True).test_client()
    client.get("/healthz")  # the first request starts the watcher
    wait_until(lambda: serving_version(client) == first_version)

    second = register_double(mlflow_server, model_name, tag="second")
    with redis.Redis.from_url(redis_url) as r:  # what the trainer publishes after moving the alias
        r.publish(MODEL_UPDATES_CHANNEL, json.dumps({"name": model_name, "alias": "champion", "version": second}))
    wait_until(lambda: serving_version(client) == second, timeout=30)
    body = client.get("/v1/clients/c1/suggestions", headers=READ).get_json()
    assert body["model_version"] == second


def test_a_custom_updates_channel_carries_the_trainers_notice(make_app: Callable[..., Flask], first_version: str,
                                                              mlflow_server: str, model_name: str,
                                                              redis_url: str) -> None:
    """MODEL_UPDATES_CHANNEL set alike on both sides: the notice the trainer publishes (its own code
    path, training.registry) reaches the service; a notice on another channel does not."""
    from training.config import TrainConfig
    from training.registry import _notify

    channel = "shop-b:model-updates"
    client = make_app(watch=True, MODEL_UPDATES_CHANNEL=channel).test_client()
    client.get("/healthz")
    wait_until(lambda: serving_version(client) == first_version)
    with redis.Redis.from_url(redis_url) as r:  # the watcher has subscribed to the custom channel
        wait_until(lambda: dict(r.pubsub_numsub(channel)).get(channel.encode(), 0) >= 1)
    second = register_double(mlflow_server, model_name, tag="second")
    trainer = TrainConfig(tracking_uri=mlflow_server, model_name=model_name, redis_url=redis_url)
    _notify(trainer, "champion", second)  # on the default channel: not this service's
    time.sleep(1.5)
    assert serving_version(client) == first_version
    _notify(trainer.model_copy(update={"updates_channel": channel}), "champion", second)
    wait_until(lambda: serving_version(client) == second, timeout=30)


def test_polling_follows_the_alias_without_redis(make_app: Callable[..., Flask], first_version: str,
                                                 mlflow_server: str, model_name: str) -> None:
    client = make_app(watch=True, REDIS_URL="", RELOAD_POLL_SECONDS="0.5").test_client()
    client.get("/healthz")
    wait_until(lambda: serving_version(client) == first_version)
    second = register_double(mlflow_server, model_name, tag="second")
    wait_until(lambda: serving_version(client) == second, timeout=30)
    assert client.get("/readyz").get_json()["redis"] == "not-configured"


def test_version_failing_its_smoke_check_leaves_the_old_one_serving(
        make_app: Callable[..., Flask], first_version: str, mlflow_server: str, model_name: str) -> None:
    app = make_app(watch=False)
    client = app.test_client()
    failures_before = RELOADS.labels("failure", "admin")._value.get()
    broken = register_double(mlflow_server, model_name, tag="broken", broken=True)

    response = client.post("/v1/admin/reload", headers=ADMIN)
    assert response.status_code == 409 and response.mimetype == "application/problem+json"
    assert response.get_json()["serving_version"] == first_version and "broken" in response.get_json()["detail"]
    assert serving_version(client) == first_version
    assert RELOADS.labels("failure", "admin")._value.get() == failures_before + 1
    assert client.get("/v1/clients/c1/suggestions", headers=READ).get_json()["model_version"] == first_version

    # the watcher does not retry the broken version on every poll either
    with pytest.raises(Exception, match=f"version {broken} failed"):
        app.extensions["crm"].models.refresh("poll")
    fixed = register_double(mlflow_server, model_name, tag="fixed")
    assert client.post("/v1/admin/reload", headers=ADMIN).get_json()["model_version"] == fixed


def test_redis_stopped_mid_test_suggestions_still_answer(make_app: Callable[..., Flask], first_version: str,
                                                         redis_server: RedisServer) -> None:
    client = make_app().test_client()
    event = [{"client_id": "c1", "item_id": "mug", "type": "view", "timestamp": "2024-05-01T10:00:00Z"}]
    assert client.post("/v1/events", json=event, headers=READ).status_code == 202
    redis_server.stop()
    try:
        started = time.monotonic()
        for _ in range(20):
            response = client.get("/v1/clients/c1/suggestions?kind=all", headers=READ)
            assert response.status_code == 200 and response.headers["X-Cache"] == "off"
        assert time.monotonic() - started < 5  # the breaker: no timeout paid on every request
        assert client.post("/v1/cart/suggestions", json={"items": ["coffee"]}, headers=READ).status_code == 200
        stored = client.post("/v1/events", json=event, headers=READ)  # the event store keeps it
        assert stored.status_code == 202 and stored.get_json()["live"] is False
        assert client.get("/readyz").get_json()["redis"] == "down"
    finally:
        redis_server.start()
    wait_until(lambda: client.post("/v1/events", json=event, headers=READ).get_json()["live"], timeout=10)
    assert client.get("/readyz").get_json()["redis"] == "up"


def test_restart_with_registry_unreachable_serves_local_copy(
        make_app: Callable[..., Flask], first_version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    make_app()  # loads from the registry and keeps the local copy
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    dead_registry = f"http://127.0.0.1:{free_port()}"
    client = make_app(MLFLOW_TRACKING_URI=dead_registry).test_client()
    ready = client.get("/readyz").get_json()
    assert ready["model"]["version"] == first_version and ready["model"]["source"] == "local-copy"
    assert client.get("/v1/clients/c1/suggestions", headers=READ).status_code == 200
    assert client.post("/v1/admin/reload", headers=ADMIN).status_code == 503


def test_a_local_copy_changed_on_disk_is_not_served(
        make_app: Callable[..., Flask], first_version: str, service_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10, item 10: the digest taken at download is checked before a copy is used: changed,
    it is not served while the registry is unreachable, and is downloaded again once it is back."""
    from service.model.errors import RegistryUnavailable
    from service.model.local_copy import folder_digest

    make_app()  # loads from the registry and keeps the local copy
    records = list(Path(service_env["MODEL_CACHE_DIR"]).rglob("copy.json"))
    assert len(records) == 1
    model = records[0].parent / "model"
    with (model / "MLmodel").open("a") as mlmodel:
        mlmodel.write("# changed on disk\n")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    cut_off = make_app(refresh=False, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}").test_client()
    with pytest.raises(RegistryUnavailable):
        cut_off.application.extensions["crm"].models.refresh("test")
    assert cut_off.get("/readyz").status_code == 503
    client = make_app().test_client()
    assert serving_version(client) == first_version
    assert folder_digest(model) == json.loads(records[0].read_text())["digest"]
    assert "changed on disk" not in (model / "MLmodel").read_text()


def test_another_registrys_version_1_is_served_and_not_the_old_ones_answers(
        make_app: Callable[..., Flask], model_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10, item 10: a service moved from one registry to another (the same model name, the
    same MODEL_CACHE_DIR and Redis), each holding its own version 1, serves the new store's
    version 1, and no answer cached for the first store's version 1 is served."""
    monkeypatch.chdir(tmp_path)  # the sqlite stores' default experiment keeps its artifacts under ./mlruns
    shop_a, shop_b = (f"sqlite:///{tmp_path / name}" for name in ("shop-a.db", "shop-b.db"))
    assert register_double(shop_a, model_name, tag="shop-a") == register_double(shop_b, model_name, tag="shop-b") == "1"
    questions = [("get", "/v1/clients/c1/suggestions?kind=cross_sell", None),
                 ("post", "/v1/cart/suggestions", {"items": ["coffee"], "client_id": "c1"}),
                 ("post", "/v1/cart/suggestions", {"items": ["coffee"]}),  # shared, no client
                 ("get", "/v1/items/coffee/similar", None)]

    def ask(client: Any) -> list[str]:
        caches = []
        for method, url, body in questions:
            response = getattr(client, method)(url, json=body, headers=READ)
            assert response.status_code == 200, response.get_data(as_text=True)
            caches.append(response.headers["X-Cache"])
        return caches

    first = make_app(MLFLOW_TRACKING_URI=shop_a).test_client()
    assert ask(first) == ["miss"] * 4 and ask(first) == ["hit"] * 4
    served_a = first.application.extensions["crm"].models.current
    second = make_app(MLFLOW_TRACKING_URI=shop_b).test_client()
    served_b = second.application.extensions["crm"].models.current
    assert served_b.version == served_a.version == "1" and served_b.source == "registry"
    assert served_b.recommender.meta["params"]["tag"] == "shop-b"
    assert served_b.identity != served_a.identity
    assert ask(second) == ["miss"] * 4  # the first store's cached answers are not served
    assert ask(second) == ["hit"] * 4


def test_nothing_registered_means_503_until_a_version_appears(make_app: Callable[..., Flask],
                                                              mlflow_server: str, model_name: str) -> None:
    client = make_app(refresh=False).test_client()
    with pytest.raises(Exception, match="cannot resolve"):
        client.application.extensions["crm"].models.refresh("test")
    assert client.get("/readyz").status_code == 503
    assert client.get("/v1/clients/c1/suggestions", headers=READ).status_code == 503
    version = register_double(mlflow_server, model_name)
    assert client.post("/v1/admin/reload", headers=ADMIN).get_json()["model_version"] == version


def test_cache_entries_keep_the_answer_text_and_read_older_entries(redis_url: str) -> None:
    """A hit returns the stored JSON text unparsed; entries written by the earlier format
    ({"at": ..., "body": {...}}) still read, and an entry past its TTL does not."""
    from service.redis.store import RedisStore

    store = RedisStore(Settings.from_env({"REDIS_URL": redis_url, "CACHE_TTL_SECONDS": "60"}))
    text = '{"client_id": "c1", "suggestions": [{"item_id": "a", "score": 0.5}]}'
    key, cached = store.cache.shared_answer("v1", {"endpoint": "similar", "item_id": "a"})
    assert cached is None
    store.cache.store_shared_answer(key, text)
    assert store.cache.shared_answer("v1", {"endpoint": "similar", "item_id": "a"})[1] == text
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    raw.set(key, json.dumps({"at": time.time(), "body": {"client_id": "c1"}}))
    assert json.loads(store.cache.shared_answer("v1", {"endpoint": "similar", "item_id": "a"})[1]) == {"client_id": "c1"}
    raw.set(key, f"{time.time() - 120:.3f} {text}")
    assert store.cache.shared_answer("v1", {"endpoint": "similar", "item_id": "a"})[1] is None
