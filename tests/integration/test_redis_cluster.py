"""Redis Cluster (issue 15, part 2: "Redis Cluster is supported through redis-py's cluster client, with hash tags
keeping one client's keys in one slot"), on a real cluster of three masters started here.

The trainer writes the slice's client state into the cluster (`REDIS_CLUSTER=true`), and the service, on the
same cluster, answers known clients from it: a cached answer is served, a rejection takes its item out of the
next answer, the rate limit counts, the answers' exposures reach the event store, and an erasure removes the
client's keys. A client's keys all share its slot; the stores' keys spread over the three nodes.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis.cluster import RedisCluster
from support.apps import app_maker
from support.redis_cluster import RedisClusterServer
from support.redis_monitor import sent_commands

from features.loader import load_dataset
from scoring.contract import client_state_key
from scoring.recommender import Recommender
from service.redis.core import Keys
from training.candidates import precompute
from training.config import TrainConfig
from training.context import TrainContext
from training.fit import fit_recommender
from training.registry import log_and_register

READ_KEY, ADMIN_KEY, LIMITED_KEY = "cluster-read-key-0123", "cluster-admin-key-0123", "cluster-limited-key-0123"
READ, ADMIN = {"X-API-Key": READ_KEY}, {"X-API-Key": ADMIN_KEY}
#: The limited key's allowance a window (RATE_LIMIT_PER_MINUTE over a minute's window).
ALLOWANCE = 3


@pytest.fixture()
def cluster(redis_cluster: RedisClusterServer) -> RedisClusterServer:
    """The emptied cluster (tests/conftest.py)."""
    return redis_cluster


@pytest.fixture(scope="module")
def fitted(slice_dir: Path) -> Recommender:
    data = load_dataset(slice_dir)
    rec = fit_recommender(TrainContext.build(data.transactions, data.items, data.packages),
                          TrainConfig(threads=1, redis_url=None), fingerprint=data.fingerprint)
    precompute(rec, workers=1)
    return rec


@pytest.fixture()
def serve(tmp_path: Path, mlflow_uri: str, cluster: RedisClusterServer) -> Iterator[Callable[..., Flask]]:
    env = {"MLFLOW_TRACKING_URI": mlflow_uri, "REDIS_URL": cluster.url, "REDIS_CLUSTER": "true",
           "CLIENT_STATE": "redis", "API_KEYS": f"{READ_KEY},{LIMITED_KEY}", "ADMIN_API_KEYS": ADMIN_KEY,
           "CONTROL_SHARE": "0", "MODEL_CACHE_DIR": str(tmp_path / "cache"), "SERVICE_STATE_DIR": str(tmp_path / "state"),
           "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db", "REDIS_TIMEOUT_SECONDS": "2", "RELOAD_POLL_SECONDS": "60"}
    makers = app_maker(env, lambda app: app.extensions["crm"].models.refresh("test"))
    make = next(makers)
    yield lambda name, **overrides: make(MODEL_NAME=name, **overrides)
    next(makers, None)


def _config(tmp_path: Path, mlflow_uri: str, cluster: RedisClusterServer, name: str) -> TrainConfig:
    return TrainConfig(tracking_uri=mlflow_uri, model_name=name, redis_url=cluster.url, redis_cluster=True,
                       client_state="redis", erasures_file=str(tmp_path / "none.jsonl"), threads=1,
                       events_db_url=f"sqlite:///{tmp_path / 'no-events.db'}")


def _get(app: Flask, path: str, headers: dict[str, str] = READ, status: int = 200) -> tuple[dict[str, Any], str]:
    response = app.test_client().get(path, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json(), response.headers.get("X-Cache", "")


def _node_keys(cluster: RedisClusterServer, pattern: str) -> dict[int, int]:
    """How many keys matching `pattern` each node holds."""
    import redis

    counts = {}
    for port in cluster.ports:
        with redis.Redis(port=port) as node:
            counts[port] = sum(1 for _ in node.scan_iter(match=pattern, count=1000))
    return counts


def test_the_service_answers_from_client_state_in_a_redis_cluster(
        fitted: Recommender, serve: Callable[..., Flask], tmp_path: Path, mlflow_uri: str,
        cluster: RedisClusterServer) -> None:
    registered = log_and_register(fitted, {"tasks": {}}, _config(tmp_path, mlflow_uri, cluster, "cs-cluster"),
                                  promote="force")
    spread = _node_keys(cluster, f"cs:{registered['run_id']}:*")
    assert sum(spread.values()) == len(fitted.client_ids) and min(spread.values()) > 0, spread  # all three nodes
    app = serve("cs-cluster")
    rt = app.extensions["crm"]
    assert rt.redis.connection.cluster and isinstance(rt.redis.connection.client, RedisCluster)

    client = str(fitted.client_ids[int(fitted.state.hist_indptr[1:].argmax())])
    path = f"/v1/clients/{client}/suggestions?kind=cross_sell&limit=5"
    first, cache = _get(app, path)
    assert cache == "miss" and first["cold_start"] is False and first["suggestions"]
    assert [s["item_id"] for s in first["suggestions"]] == [s["item_id"] for s in fitted.suggest(client, "cross_sell", 5)]
    second, cache = _get(app, path)
    assert cache == "hit" and second["suggestions"] == first["suggestions"]
    assert second["recommendation_id"] != first["recommendation_id"]
    keys = Keys("default", cluster=True)
    with RedisCluster.from_url(cluster.url) as r:
        assert {r.keyslot(k) for k in (keys.answers(client), keys.generation(client), keys.recent(client),
                                       keys.loop(client), client_state_key(registered["run_id"], client))} \
            == {r.keyslot(client_state_key(registered["run_id"], client))}
        assert r.hlen(keys.answers(client)) == 1

    # a rejection: the item leaves the client's next answer (the cached one is dropped)
    rejected = first["suggestions"][0]["item_id"]
    reaction = app.test_client().post("/v1/reactions", headers=READ, json={
        "recommendation_id": first["recommendation_id"], "item_id": rejected, "reaction": "rejected"})
    assert reaction.status_code == 201 and reaction.get_json()["changes_next_answer"] is True, reaction.get_data(as_text=True)
    after, cache = _get(app, path)
    assert cache == "miss" and rejected not in [s["item_id"] for s in after["suggestions"]] and after["suggestions"]

    # a purchase: the client's recent purchases and generation (its slot) and the event stream (another), one
    # pipeline; the cached answer is dropped and the bought item left out of the next
    bought = after["suggestions"][0]["item_id"]
    posted = app.test_client().post("/v1/events", headers=READ, json={"events": [
        {"client_id": client, "item_id": bought, "type": "purchase", "timestamp": "2024-05-01T10:00:00Z"}]})
    assert posted.status_code == 202, posted.get_data(as_text=True)
    later, cache = _get(app, path)
    assert cache == "miss" and bought not in [s["item_id"] for s in later["suggestions"]]
    profile, _ = _get(app, f"/v1/clients/{client}/profile")  # its state read by a pipelined GET
    assert profile["known"] is True

    # a cart with the client: a shared answer (its own slot) with the client's state read in the client's
    cart = app.test_client().post("/v1/cart/suggestions", headers=READ,
                                  json={"items": [str(fitted.item_ids[0])], "client_id": client, "limit": 3})
    assert cart.status_code == 200, cart.get_data(as_text=True)
    again = app.test_client().post("/v1/cart/suggestions", headers=READ,
                                   json={"items": [str(fitted.item_ids[0])], "client_id": client, "limit": 3})
    assert again.headers["X-Cache"] == "hit" and again.get_json()["bundles"] == cart.get_json()["bundles"]

    # similar items for a visitor: an answer shared by everyone (its own slot), the visitor's state in its own
    item = str(fitted.item_ids[int(fitted.state.item_pop.argmax())])
    similar_path = f"/v1/items/{item}/similar?limit=4&visitor_id=v-cluster"
    similar, cache = _get(app, similar_path)
    assert cache == "miss" and similar["suggestions"]
    shared, cache = _get(app, similar_path)
    assert cache == "hit" and shared["suggestions"] == similar["suggestions"]
    dropped = similar["suggestions"][0]["item_id"]
    reaction = app.test_client().post("/v1/reactions", headers=READ, json={
        "recommendation_id": shared["recommendation_id"], "item_id": dropped, "reaction": "rejected"})
    assert reaction.status_code == 201, reaction.get_data(as_text=True)
    without, _ = _get(app, similar_path)  # the shared answer, less what the visitor rejected
    assert dropped not in [s["item_id"] for s in without["suggestions"]] and without["suggestions"]

    # the rate limit counts
    limited = serve("cs-cluster", RATE_LIMIT_PER_MINUTE=str(ALLOWANCE), RATE_LIMIT_WINDOW_SECONDS="60")
    for _ in range(ALLOWANCE):
        _get(limited, path, {"X-API-Key": LIMITED_KEY})
    refused, _ = _get(limited, path, {"X-API-Key": LIMITED_KEY}, status=429)
    assert refused["status"] == 429

    # every answer's exposure reaches the event store
    answers = [first, second, after, later]
    assert rt.drain.drain_all() >= len(answers) + 5
    for answer in answers:
        stored = rt.events.exposure("default", answer["recommendation_id"])
        assert stored is not None and stored["client_id"] == client
        assert [i["item_id"] for i in stored["items"]] == [s["item_id"] for s in answer["suggestions"]]

    for answer in (similar, shared):
        stored = rt.events.exposure("default", answer["recommendation_id"])
        assert stored is not None and stored["visitor_id"] == "v-cluster"

    # erasure removes the client's keys (its two cached answers: the cross-sell and the cart)
    erased = app.test_client().delete(f"/v1/clients/{client}", headers=ADMIN)
    assert erased.status_code == 200, erased.get_data(as_text=True)
    assert erased.get_json()["client_state_deleted"] == 1 and erased.get_json()["cached_answers_deleted"] == 2
    with RedisCluster.from_url(cluster.url) as r:
        assert not r.exists(client_state_key(registered["run_id"], client))
        assert not r.exists(keys.answers(client)) and not r.exists(keys.recent(client))
        assert r.exists(client_state_key(registered["run_id"], str(fitted.client_ids[0])))
    gone, _ = _get(app, path)
    assert gone["cold_start"] is True


def _sent_to_every_node(cluster: RedisClusterServer, action: Callable[[], Any]) -> tuple[Any, list[str]]:
    """What `action` returns, and the commands the cluster's nodes were sent meanwhile (MONITOR on each)."""
    def watched(port: int, inner: Callable[[], tuple[Any, list[str]]]) -> Callable[[], tuple[Any, list[str]]]:
        def run() -> tuple[Any, list[str]]:
            (result, deeper), sent = sent_commands(f"redis://127.0.0.1:{port}", inner)
            return result, deeper + sent
        return run

    action_sent: Callable[[], tuple[Any, list[str]]] = lambda: (action(), [])  # noqa: E731
    for port in cluster.ports:
        action_sent = watched(port, action_sent)
    return action_sent()


def test_on_a_cluster_old_versions_get_their_grace_and_the_round_trips_are_as_documented(
        fitted: Recommender, serve: Callable[..., Flask], tmp_path: Path, mlflow_uri: str,
        cluster: RedisClusterServer) -> None:
    """README "Redis Cluster": a client's cached answer costs three round trips on a cluster, a computed one four;
    an answer shared by every subject one more each (its own slot)."""
    config = _config(tmp_path, mlflow_uri, cluster, "cs-cluster-grace").model_copy(
        update={"client_state_grace_seconds": 600})
    first = log_and_register(fitted, {"tasks": {}}, config, promote="force")
    second = log_and_register(fitted, {"tasks": {}}, config, promote="force")
    with RedisCluster.from_url(cluster.url) as r:
        old = list(r.scan_iter(match=f"cs:{first['run_id']}:*", count=1000))
        new = list(r.scan_iter(match=f"cs:{second['run_id']}:*", count=1000))
        assert len(old) == len(new) == len(fitted.client_ids)
        assert {0 < r.ttl(key) <= 600 for key in old} == {True} and {r.ttl(key) for key in new} == {-1}

    app = serve("cs-cluster-grace")
    client, other = str(fitted.client_ids[5]), str(fitted.client_ids[6])
    item = str(fitted.item_ids[0])
    _get(app, f"/v1/clients/{other}/suggestions?kind=upsell")  # scripts loaded, the cluster's map read
    # (cold, warm): the rate count, the subject's script, [the shared answer's read,] [FINISH,] the exposure
    asks = {"client": (lambda: _get(app, f"/v1/clients/{client}/suggestions?kind=all&limit=3")[0], (4, 3)),
            "similar, a visitor": (lambda: _get(app, f"/v1/items/{item}/similar?limit=3&visitor_id=v-trips")[0],
                                   (5, 4))}
    for name, (ask, (cold_trips, warm_trips)) in asks.items():
        cold, cold_sent = _sent_to_every_node(cluster, ask)
        warm, warm_sent = _sent_to_every_node(cluster, ask)
        assert (cold_sent, warm_sent) == (["EVALSHA"] * cold_trips, ["EVALSHA"] * warm_trips), name
        assert cold["suggestions"] == warm["suggestions"]
