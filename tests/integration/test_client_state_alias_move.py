"""An alias move under load with the clients in Redis (issue 15, part 2: "an alias move under load gives 0
failed requests and no answer mixing versions").

Two versions are trained on the real slice with different seeds and factor counts, both with
`CLIENT_STATE=redis`, and a gunicorn service (two workers) answers known clients from Redis while a load loop
runs. `@champion` moves to the second version the trainer's way (its keys written, the alias moved, the notice
published), then back to the first as a person would (the registry client, and a notice), while the first
version's keys are in their grace. Once on a single Redis, once on a real Redis Cluster (`REDIS_CLUSTER=true`).

What would show mixing: the two versions' client values have different layouts (8 and 12 factors), so a
version's item side reading the other version's value cannot decode it and answers the client as cold start,
counted as `unreadable`; and every answer naming a version must be that version's one answer to the request
(asked once before the load, once after), the two versions' answers differing.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from mlflow import MlflowClient
from support.load_loop import LoadLoop
from support.processes import wait_until
from support.reliability_harness import READ, service_env
from support.service_process import Service

from features.loader import load_dataset
from scoring.contract import MODEL_UPDATES_CHANNEL
from scoring.recommender import Recommender
from training.candidates import precompute
from training.config import TrainConfig
from training.context import TrainContext
from training.fit import fit_recommender
from training.registry import log_and_register

#: Two versions that answer differently, and whose client values have different layouts.
SETTINGS = ({"seed": 0, "als_factors": (8,)}, {"seed": 7, "als_factors": (12,)})


def _fit(slice_dir: Path, **settings: Any) -> Recommender:
    data = load_dataset(slice_dir)
    config = TrainConfig(threads=1, redis_url=None, **settings)
    rec = fit_recommender(TrainContext.build(data.transactions, data.items, data.packages), config,
                          fingerprint=data.fingerprint)
    precompute(rec, workers=1)
    return rec


@pytest.fixture(scope="module")
def versions(slice_dir: Path) -> tuple[Recommender, Recommender]:
    first, second = (_fit(slice_dir, **settings) for settings in SETTINGS)
    return first, second


def _calls(rec: Recommender) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Known clients' requests: (method, path, body). Busy clients (long histories), so that the answers are
    the client's own."""
    busiest = rec.client_ids[(-(rec.state.hist_indptr[1:] - rec.state.hist_indptr[:-1])).argsort()[:3]]
    item = str(rec.item_ids[int(rec.state.item_pop.argmax())])
    calls: list[tuple[str, str, dict[str, Any] | None]] = []
    for client in map(str, busiest):
        calls += [("GET", f"/v1/clients/{client}/suggestions?kind=cross_sell&limit=5", None),
                  ("GET", f"/v1/clients/{client}/suggestions?kind=all&limit=3", None),
                  ("POST", "/v1/cart/suggestions", {"items": [item], "client_id": client, "limit": 4})]
    return calls


@dataclass(frozen=True)
class Seen:
    call: int
    started: float
    status: int | None
    version: str | None = None
    cold_start: bool | None = None
    answer: str = ""  # the body without its recommendation id, as canonical JSON


def _ask(session: requests.Session, base: str, index: int, call: tuple[str, str, dict[str, Any] | None]) -> Seen:
    method, path, body = call
    started = time.monotonic()
    try:
        response = session.request(method, base + path, json=body, headers=READ, timeout=15)
    except requests.RequestException:
        return Seen(index, started, None)
    if response.status_code != 200:
        return Seen(index, started, response.status_code, answer=response.text[:300])
    got = {k: v for k, v in response.json().items() if k != "recommendation_id"}
    return Seen(index, started, 200, str(got.get("model_version")), got.get("cold_start"),
                json.dumps(got, sort_keys=True))


def _config(root: Path, mlflow_uri: str, redis_url: str, name: str, **settings: Any) -> TrainConfig:
    return TrainConfig(tracking_uri=mlflow_uri, model_name=name, redis_url=redis_url, client_state="redis",
                       erasures_file=str(root / "none.jsonl"), threads=1, client_state_grace_seconds=600,
                       events_db_url=f"sqlite:///{root / 'no-events.db'}", **settings)


def _answers(base: str, calls: list[tuple[str, str, dict[str, Any] | None]]) -> list[Seen]:
    with requests.Session() as session:
        return [_ask(session, base, n, call) for n, call in enumerate(calls)]


@pytest.fixture(params=["redis", "redis-cluster"])
def state_redis(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """Where the client state lives: (URL, whether it is a Redis Cluster)."""
    if request.param == "redis":
        return request.getfixturevalue("redis_url"), False
    return request.getfixturevalue("redis_cluster").url, True


@pytest.fixture()
def service(tmp_path: Path, mlflow_server: str, state_redis: tuple[str, bool],
            versions: tuple[Recommender, Recommender]) -> Iterator[tuple[Service, dict[str, Any], TrainConfig]]:
    """The service on @champion, the first version (registered in Redis mode, its keys written)."""
    name = f"cs-move-{int(time.time() * 1000) % 10**8}"
    redis_url, cluster = state_redis
    config = _config(tmp_path, mlflow_server, redis_url, name).model_copy(update={"redis_cluster": cluster})
    first = log_and_register(versions[0], {"tasks": {}}, config, promote="force")
    env = service_env(tmp_path, mlflow_server, name, redis_url, CLIENT_STATE="redis", CONTROL_SHARE="0",
                      REDIS_TIMEOUT_SECONDS="2", RELOAD_POLL_SECONDS="600", CACHE_TTL_SECONDS="2",
                      REDIS_CLUSTER=str(cluster).lower())
    with Service(tmp_path, env, "cs-move").start(timeout=120) as svc:
        svc.wait_serving(first["version"], timeout=60)
        yield svc, first, config


def test_an_alias_move_between_redis_state_versions_under_load_fails_nothing_and_mixes_nothing(
        service: tuple[Service, dict[str, Any], TrainConfig], versions: tuple[Recommender, Recommender],
        mlflow_server: str, state_redis: tuple[str, bool]) -> None:
    svc, first, config = service
    calls = _calls(versions[0])
    before = _answers(svc.base, calls)
    unreadable = svc.metric("crm_client_state_missing_total", reason="unreadable")
    with LoadLoop(lambda session, turn: _ask(session, svc.base, turn % len(calls), calls[turn % len(calls)])) as load:
        wait_until(lambda: load.count_since(0) >= 30, timeout=60)
        # 1. the trainer's way: the second version's keys written, the alias moved, the notice published
        second = log_and_register(versions[1], {"tasks": {}}, config.model_copy(update=SETTINGS[1]), promote="force")
        svc.wait_serving(second["version"], timeout=60)
        moved = time.monotonic()
        wait_until(lambda: load.count_since(moved) >= 30, timeout=60)
        after = _answers(svc.base, calls)
        moving_back = time.monotonic()
        # 2. back to the first version (its keys in their grace) with the registry client, and a notice
        MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server).set_registered_model_alias(
            config.model_name, "champion", first["version"])
        with redis.Redis.from_url(state_redis[0]) as r:  # on a cluster, a notice published on one node reaches all
            r.publish(MODEL_UPDATES_CHANNEL, json.dumps({"name": config.model_name, "alias": "champion",
                                                         "version": first["version"]}))
        svc.wait_serving(first["version"], timeout=60)
        back = time.monotonic()
        wait_until(lambda: load.count_since(back) >= 30, timeout=60)

    served = {first["version"]: {s.call: s.answer for s in before}, second["version"]: {s.call: s.answer for s in after}}
    assert {s.version for s in before} == {first["version"]}, before[:2]
    assert {s.version for s in after} == {second["version"]}, after[:2]
    differing = [n for n in range(len(calls)) if served[first["version"]][n] != served[second["version"]][n]]
    assert len(differing) >= len(calls) - 1, "the two versions must answer differently for the test to see a mix"

    failed = [s for s in load.results if s.status != 200]
    assert not failed, failed[:5]
    assert {s.version for s in load.results} == set(served)
    assert not [s for s in load.results if s.cold_start], "a known client answered as cold start"
    assert svc.metric("crm_client_state_missing_total", reason="unreadable") == unreadable
    mixed = [s for s in load.results if s.answer != served[s.version][s.call]]
    assert not mixed, mixed[:3]
    for start, end, version in ((moved, moving_back, second["version"]), (back, time.monotonic(), first["version"])):
        during = {s.version for s in load.results if start < s.started < end}
        assert during == {version}, (version, during)  # once every worker serves it, only it answers
