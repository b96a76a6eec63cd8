"""Client state in Redis (issue 15, part 2): the model trained on the real slice, registered once holding its
clients and once with them in a real Redis, served by the real app from a real MLflow store.

The same client gets the same answers either way; a client whose key is gone is answered as cold start and
counted; a request still makes one round trip warm and two cold; erasure removes the client's key in every
version; promoting a new version gives the old version's keys their grace.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import redis
from flask import Flask
from prometheus_client import REGISTRY
from support.apps import app_maker
from support.processes import RedisServer
from support.redis_monitor import sent_commands

from features.loader import load_dataset
from scoring.contract import client_state_key, client_state_models_key
from scoring.recommender import Recommender
from scoring.value import FIGURE_ARRAYS
from training.candidates import precompute
from training.clients import load_model
from training.config import TrainConfig
from training.context import TrainContext
from training.fit import fit_recommender
from training.registry import log_and_register
from training.train import train

READ_KEY, ADMIN_KEY = "read-key-0123456789", "admin-key-0123456789"
READ, ADMIN = {"X-API-Key": READ_KEY}, {"X-API-Key": ADMIN_KEY}
#: what differs between two answers to the same request by construction
PER_ANSWER = ("recommendation_id", "model_version")


@pytest.fixture(scope="module")
def fitted(slice_dir: Path) -> Recommender:
    """The model `train` registers, fitted on the real slice (no tuning), with its candidate lists."""
    data = load_dataset(slice_dir)
    config = TrainConfig(threads=1, redis_url=None)
    rec = fit_recommender(TrainContext.build(data.transactions, data.items, data.packages), config,
                          fingerprint=data.fingerprint)
    precompute(rec, workers=1)
    return rec


def _config(tmp_path: Path, mlflow_uri: str, redis_url: str, name: str, mode: str) -> TrainConfig:
    return TrainConfig(tracking_uri=mlflow_uri, model_name=name, redis_url=redis_url, client_state=mode,
                       erasures_file=str(tmp_path / "none.jsonl"), threads=1, client_state_grace_seconds=600,
                       events_db_url=f"sqlite:///{tmp_path / 'no-events.db'}")


def _register(rec: Recommender, config: TrainConfig) -> dict[str, Any]:
    return log_and_register(rec, {"tasks": {}}, config, promote="force")


@pytest.fixture()
def serve(tmp_path: Path, mlflow_uri: str, redis_url: str) -> Iterator[Callable[..., Flask]]:
    """`serve(model_name, **env)`: an app serving the model's @champion from the test's store."""
    env = {"MLFLOW_TRACKING_URI": mlflow_uri, "REDIS_URL": redis_url, "API_KEYS": READ_KEY,
           "ADMIN_API_KEYS": ADMIN_KEY, "CONTROL_SHARE": "0", "MODEL_CACHE_DIR": str(tmp_path / "cache"),
           "SERVICE_STATE_DIR": str(tmp_path / "state"), "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db",
           "REDIS_TIMEOUT_SECONDS": "2", "RELOAD_POLL_SECONDS": "60"}
    makers = app_maker(env, lambda app: app.extensions["crm"].models.refresh("test"))
    make = next(makers)
    yield lambda name, **overrides: make(MODEL_NAME=name, **overrides)
    next(makers, None)


def _get(app: Flask, path: str, headers: dict[str, str] = READ) -> dict[str, Any]:
    response = app.test_client().get(path, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return {k: v for k, v in response.get_json().items() if k not in PER_ANSWER}


def _post(app: Flask, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = app.test_client().post(path, json=body, headers=READ)
    assert response.status_code == 200, response.get_data(as_text=True)
    return {k: v for k, v in response.get_json().items() if k not in PER_ANSWER}


def _keys(redis_url: str, model_id: str) -> list[bytes]:
    return list(redis.Redis.from_url(redis_url).scan_iter(match=f"cs:{model_id}:*", count=1000))


def _missing(reason: str) -> float:
    return REGISTRY.get_sample_value("crm_client_state_missing_total", {"reason": reason}) or 0.0


def _requests(client: str, item: str) -> list[Callable[[Flask], dict[str, Any]]]:
    kinds = ["cross_sell", "upsell", "service_package", "replenishment", "next_basket"]
    asks: list[Callable[[Flask], dict[str, Any]]] = [
        (lambda app, k=k: _get(app, f"/v1/clients/{client}/suggestions?kind={k}&limit=8")) for k in kinds]
    asks += [lambda app: _get(app, f"/v1/clients/{client}/suggestions?kind=all&limit=4&explain=true"),
             lambda app: _get(app, f"/v1/clients/{client}/suggestions?kind=cross_sell&limit=5&objective=revenue"),
             lambda app: _get(app, f"/v1/clients/{client}/suggestions?kind=cross_sell&limit=60"),
             lambda app: _get(app, f"/v1/clients/{client}/suggestions?kind=cross_sell&limit=5&exclude={item}"),
             lambda app: _post(app, "/v1/cart/suggestions", {"items": [item], "client_id": client, "limit": 5}),
             lambda app: _get(app, f"/v1/clients/{client}/profile")]
    return asks


def test_redis_mode_answers_every_client_endpoint_as_model_mode(
        fitted: Recommender, serve: Callable[..., Flask], tmp_path: Path, mlflow_uri: str, redis_url: str) -> None:
    in_model = _register(fitted, _config(tmp_path, mlflow_uri, redis_url, "cs-model", "model"))
    in_redis = _register(fitted, _config(tmp_path, mlflow_uri, redis_url, "cs-redis", "redis"))
    assert len(_keys(redis_url, in_redis["run_id"])) == len(fitted.client_ids) > 100
    assert not _keys(redis_url, in_model["run_id"])
    model_app, redis_app = serve("cs-model"), serve("cs-redis")
    served = redis_app.extensions["crm"].models.current.recommender
    assert len(served.client_ids) == 0 and served.state.client_factors.shape[0] == 0  # the item side only
    assert served.state.hist_indices.size == 0 and not [k for k in served.state.extras
                                                         if k.startswith(("cand_", "value_"))]
    # the value figures the trainer precomputed travel in each client's value, like the summary they come from
    rows = {name for name, _, _ in served.meta["client_state"]["rows"]}
    assert {f"extra.{key}" for key in FIGURE_ARRAYS.values()} | {"extra.value_frequency"} <= rows

    rng = np.random.default_rng(0)
    clients = [str(c) for c in rng.choice(fitted.client_ids, 12, replace=False)]
    busiest = str(fitted.client_ids[int(np.argmax(np.diff(fitted.state.hist_indptr)))])
    item = str(fitted.item_ids[int(np.argmax(fitted.state.item_pop))])
    compared = 0
    for client in [busiest, *clients]:
        for ask in _requests(client, item):
            expected, got = ask(model_app), ask(redis_app)
            assert got == expected, client
            compared += 1
        assert _get(redis_app, f"/v1/clients/{client}/suggestions?kind=cross_sell")["cold_start"] is False
    assert compared == 13 * 11
    tasks = _get(model_app, "/v1/tasks?limit=3")
    assert tasks["total"] > 0
    assert _strip_offers(_get(redis_app, "/v1/tasks?limit=3")) == _strip_offers(tasks)
    found = redis_app.test_client().get(f"/app/clients?q={busiest}", headers=READ)
    assert found.status_code in (200, 302)


def _strip_offers(tasks: dict[str, Any]) -> list[dict[str, Any]]:
    """Tasks without their offers' recommendation ids (a new one per answer)."""
    return [{**t, "offers": {k: v for k, v in t["offers"].items() if k != "recommendation_id"}}
            for t in tasks["tasks"]]


def test_a_client_without_state_is_cold_start_counted_and_logged(
        fitted: Recommender, serve: Callable[..., Flask], tmp_path: Path, mlflow_uri: str, redis_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    registered = _register(fitted, _config(tmp_path, mlflow_uri, redis_url, "cs-gone", "redis"))
    app = serve("cs-gone")
    client = str(fitted.client_ids[3])
    known = _get(app, f"/v1/clients/{client}/suggestions?kind=cross_sell&limit=5")
    assert known["cold_start"] is False
    assert redis.Redis.from_url(redis_url).delete(client_state_key(registered["run_id"], client)) == 1
    before = _missing("missing")
    with caplog.at_level(logging.INFO, logger="service.client_state"):
        gone = _get(app, f"/v1/clients/{client}/suggestions?kind=cross_sell&limit=6")  # not the cached answer
        profile = _get(app, f"/v1/clients/{client}/profile")
    stranger = _get(app, "/v1/clients/never-seen-anywhere/suggestions?kind=cross_sell&limit=6")
    assert gone["cold_start"] is True and gone["segment"]["abc"] is None
    assert gone["suggestions"] == stranger["suggestions"] and gone["suggestions"]
    assert profile["known"] is False and profile["segment"]["abc"] is None
    assert _missing("missing") == before + 3  # the suggestion, the profile and the stranger
    assert any(r.getMessage() == "no client state: answered as cold start" and r.client_id == client
               for r in caplog.records)


def test_a_request_still_makes_one_round_trip_warm_and_two_cold(
        fitted: Recommender, serve: Callable[..., Flask], tmp_path: Path, mlflow_uri: str, redis_url: str) -> None:
    _register(fitted, _config(tmp_path, mlflow_uri, redis_url, "cs-trips", "redis"))
    app = serve("cs-trips")
    client, other = str(fitted.client_ids[5]), str(fitted.client_ids[6])
    _get(app, f"/v1/clients/{other}/suggestions?kind=upsell")  # the scripts loaded once per Redis
    asks = {"client": lambda: _get(app, f"/v1/clients/{client}/suggestions?kind=all&limit=3"),
            "cart": lambda: _post(app, "/v1/cart/suggestions",
                                  {"items": [str(fitted.item_ids[0])], "client_id": client, "limit": 3})}
    for name, ask in asks.items():
        cold, cold_sent = sent_commands(redis_url, ask)
        warm, warm_sent = sent_commands(redis_url, ask)
        assert (cold_sent, warm_sent) == (["EVALSHA", "EVALSHA"], ["EVALSHA"]), name
        assert cold == warm and cold.get("cold_start", False) is False


def test_erasure_removes_the_clients_state_in_every_version(
        fitted: Recommender, serve: Callable[..., Flask], tmp_path: Path, mlflow_uri: str, redis_url: str) -> None:
    config = _config(tmp_path, mlflow_uri, redis_url, "cs-erase", "redis")
    first, second = _register(fitted, config), _register(fitted, config)
    app = serve("cs-erase")
    client, kept = str(fitted.client_ids[7]), str(fitted.client_ids[8])
    r = redis.Redis.from_url(redis_url)
    keys = [client_state_key(v["run_id"], client) for v in (first, second)]
    assert r.exists(*keys) == 2
    response = app.test_client().delete(f"/v1/clients/{client}", headers=ADMIN)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["client_state_deleted"] == 2
    assert r.exists(*keys) == 0
    assert r.exists(*[client_state_key(v["run_id"], kept) for v in (first, second)]) == 2
    assert _get(app, f"/v1/clients/{client}/suggestions?kind=cross_sell")["cold_start"] is True


def test_promoting_a_new_version_gives_the_old_keys_their_grace(
        fitted: Recommender, slice_dir: Path, tmp_path: Path, mlflow_uri: str, redis_url: str) -> None:
    """The second version is trained end to end by `train` (its champion, the first, holds no clients)."""
    config = _config(tmp_path, mlflow_uri, redis_url, "cs-grace", "redis")
    first = _register(fitted, config)
    mlflow.set_tracking_uri(mlflow_uri)
    second = train(slice_dir, config=config, tune=False, promote="force", max_baskets=300)
    assert second["alias"] == "champion"
    r = redis.Redis.from_url(redis_url)
    old, new = _keys(redis_url, first["run_id"]), _keys(redis_url, second["run_id"])
    assert len(old) == len(fitted.client_ids) and len(new) > 100
    assert {0 < r.ttl(key) <= 600 for key in old} == {True}
    assert {r.ttl(key) for key in new} == {-1}
    scores = dict(r.zrange(client_state_models_key("default", "cs-grace"), 0, -1, withscores=True))
    assert scores[second["run_id"].encode()] == float("inf") and scores[first["run_id"].encode()] < float("inf")


def test_the_service_warns_when_redis_may_evict_client_state(
        tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture, serve: Callable[..., Flask]) -> None:
    r = redis.Redis.from_url(redis_url)
    r.config_set("maxmemory-policy", "allkeys-lru")  # our own server (the fixture started it)
    try:
        with caplog.at_level(logging.WARNING, logger="service.app"):
            serve("nothing-registered", CLIENT_STATE="redis", refresh=False)
    finally:
        r.config_set("maxmemory-policy", "noeviction")
    assert any("maxmemory-policy 'allkeys-lru'" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="service.app"):
        serve("nothing-registered", CLIENT_STATE="redis", refresh=False)
    assert not any("maxmemory-policy" in r.getMessage() for r in caplog.records)


def test_campaigns_read_the_champions_clients_from_redis(fitted: Recommender, tmp_path: Path, mlflow_uri: str,
                                                          redis_url: str) -> None:
    """`python -m training campaign` asks the champion for offers client by client (`training.clients.load_model`)."""
    config = _config(tmp_path, mlflow_uri, redis_url, "cs-campaign", "redis")
    _register(fitted, config)
    champion, _, _ = load_model(config, None)
    for client in map(str, fitted.client_ids[:6]):
        assert champion.suggest(client, "replenishment", 5) == fitted.suggest(client, "replenishment", 5)
        assert champion.holdings(client) == fitted.holdings(client)
    assert champion.suggest(str(fitted.client_ids[0]), "cross_sell", 5)[0]["reason"]


def test_going_back_to_model_mode_lets_the_last_redis_version_go(
        fitted: Recommender, tmp_path: Path, mlflow_uri: str, redis_url: str) -> None:
    in_redis = _register(fitted, _config(tmp_path, mlflow_uri, redis_url, "cs-back", "redis"))
    _register(fitted, _config(tmp_path, mlflow_uri, redis_url, "cs-back", "model"))
    r = redis.Redis.from_url(redis_url)
    assert {0 < r.ttl(key) <= 600 for key in _keys(redis_url, in_redis["run_id"])} == {True}


def test_with_redis_down_a_client_is_answered_as_cold_start(
        fitted: Recommender, serve: Callable[..., Flask], tmp_path: Path, mlflow_uri: str, redis_url: str,
        redis_server: RedisServer) -> None:
    _register(fitted, _config(tmp_path, mlflow_uri, redis_url, "cs-down", "redis"))
    app = serve("cs-down")
    client = str(fitted.client_ids[9])
    assert _get(app, f"/v1/clients/{client}/suggestions?kind=cross_sell")["cold_start"] is False
    before = _missing("unavailable")
    redis_server.stop()  # the next test's redis_url starts it again
    down = _get(app, f"/v1/clients/{client}/suggestions?kind=cross_sell&limit=4")
    assert down["cold_start"] is True and down["suggestions"]
    assert _missing("unavailable") == before + 1
