"""A suggestion request's Redis round trips, counted by Redis itself: one for a cached answer, two
for a computed one, with the rate limit, the client's state and the exposure write all inside.

Redis's MONITOR lists every command it runs, with who sent it: a command a script runs is listed
as the script's (`lua`), so the commands a client sent are exactly its round trips (the app's
connection pool sends one command per trip: no pipeline is used on this path).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from support.apps import double_clients
from support.redis_monitor import sent_commands

READ_KEY = "read-key-0123456789"
READ = {"X-API-Key": READ_KEY}


@pytest.fixture()
def make_client(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., FlaskClient]]:
    yield from double_clients({"API_KEYS": READ_KEY, "REDIS_URL": redis_url, "CONTROL_SHARE": "0",
                               "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db",
                               "MODEL_CACHE_DIR": str(tmp_path / "cache"), "SERVICE_STATE_DIR": str(tmp_path / "state"),
                               "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db", "REDIS_TIMEOUT_SECONDS": "1"})


def _get(client: FlaskClient, path: str) -> dict[str, Any]:
    response = client.get(path, headers=READ)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _post_cart(client: FlaskClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/cart/suggestions", json=body, headers=READ)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _hot_row(client: FlaskClient, recommendation_id: str) -> dict[str, Any]:
    row = client.application.extensions["crm"].redis.exposures.hot(recommendation_id)
    assert row, f"no exposure for {recommendation_id}"
    return row


REQUESTS: dict[str, Callable[[FlaskClient], dict[str, Any]]] = {
    "client": lambda c: _get(c, "/v1/clients/c1/suggestions?kind=cross_sell&limit=3"),
    "kind=all": lambda c: _get(c, "/v1/clients/c2/suggestions?kind=all&limit=2"),
    "client cart": lambda c: _post_cart(c, {"items": ["coffee"], "client_id": "c3", "limit": 3}),
    "visitor cart": lambda c: _post_cart(c, {"items": ["coffee", "milk"], "visitor_id": "v1", "limit": 3}),
    "anonymous cart": lambda c: _post_cart(c, {"items": ["machine"], "limit": 3}),
    "similar": lambda c: _get(c, "/v1/items/coffee/similar?limit=3&visitor_id=v2"),
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_a_cached_answer_is_one_round_trip_and_a_computed_one_two(name: str, make_client: Callable[..., FlaskClient],
                                                                   redis_url: str) -> None:
    client = make_client()
    ask = REQUESTS[name]
    _get(client, "/v1/clients/warm-up/suggestions?kind=upsell")  # the scripts loaded once per Redis
    cold, cold_sent = sent_commands(redis_url, lambda: ask(client))
    warm, warm_sent = sent_commands(redis_url, lambda: ask(client))

    assert cold_sent == ["EVALSHA", "EVALSHA"], cold_sent
    assert warm_sent == ["EVALSHA"], warm_sent
    assert cold["recommendation_id"] != warm["recommendation_id"]
    assert {k: v for k, v in cold.items() if k != "recommendation_id"} == \
        {k: v for k, v in warm.items() if k != "recommendation_id"}
    # The exposure Redis composed for the cached answer is the one the computed answer recorded.
    tenant = client.application.extensions["crm"].settings.tenant
    cold_row, warm_row = _hot_row(client, cold["recommendation_id"]), _hot_row(client, warm["recommendation_id"])
    assert warm_row["items"] == cold_row["items"] and warm_row["items"]
    assert {k: v for k, v in warm_row.items() if k not in ("recommendation_id", "shown_at")} == \
        {k: v for k, v in cold_row.items() if k not in ("recommendation_id", "shown_at")}
    assert warm_row["recommendation_id"] == warm["recommendation_id"]
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = raw.xrange(f"crm:{tenant}:exposures")
    ids = [json.loads(fields["row"])["recommendation_id"] for _, fields in stream]
    assert ids[-2:] == [cold["recommendation_id"], warm["recommendation_id"]]
    # the hot copy is the entry's id, not a second copy of the row
    assert [raw.get(f"crm:{tenant}:rec:{answer['recommendation_id']}") for answer in (cold, warm)] == \
        [entry_id for entry_id, _ in stream[-2:]]


def test_a_refused_request_reads_and_writes_nothing(make_client: Callable[..., FlaskClient], redis_url: str) -> None:
    client = make_client(RATE_LIMIT_PER_MINUTE="2", RATE_LIMIT_WINDOW_SECONDS="60")
    tenant = client.application.extensions["crm"].settings.tenant
    answers = [client.get("/v1/clients/c1/suggestions?kind=cross_sell", headers=READ) for _ in range(2)]
    refused, sent = sent_commands(redis_url, lambda: client.get("/v1/clients/c1/suggestions?kind=cross_sell",
                                                                headers=READ))
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1].headers["X-RateLimit-Remaining"] == "0"
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.get_json()["type"].endswith("rate-limited")
    assert sent == ["EVALSHA"]
    assert redis.Redis.from_url(redis_url).xlen(f"crm:{tenant}:exposures") == 2


def test_without_exposure_logging_a_cached_answer_is_still_one_round_trip(
        make_client: Callable[..., FlaskClient], redis_url: str) -> None:
    client = make_client(EXPOSURE_LOGGING="false")
    tenant = client.application.extensions["crm"].settings.tenant
    _get(client, "/v1/clients/c1/suggestions?kind=cross_sell")
    _, sent = sent_commands(redis_url, lambda: _get(client, "/v1/clients/c1/suggestions?kind=cross_sell"))
    assert sent == ["EVALSHA"]
    assert redis.Redis.from_url(redis_url).xlen(f"crm:{tenant}:exposures") == 0


def test_the_access_log_samples_answers_and_keeps_every_refusal(make_client: Callable[..., FlaskClient],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    quiet, full = make_client(ACCESS_LOG_SAMPLE="0"), make_client()
    with caplog.at_level("INFO", logger="service"):
        for client in (quiet, full):
            _get(client, "/v1/clients/c1/suggestions?kind=cross_sell")
            assert client.get("/v1/clients/c1/suggestions?kind=nope", headers=READ).status_code == 400
    logged = [(r.path, r.status) for r in caplog.records if r.getMessage() == "request"]  # type: ignore[attr-defined]
    assert logged == [("/v1/clients/c1/suggestions", 400), ("/v1/clients/c1/suggestions", 200),
                      ("/v1/clients/c1/suggestions", 400)]
