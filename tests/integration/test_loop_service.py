"""The loop through the real service app with a real Redis and a real event store, each test on
SQLite and on PostgreSQL: traced answers, reactions and what they change, fatigue, the control
group, campaign shows, erasure, retention."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.service_model_double import CatalogueRecommender

from service.app import create_app
from service.config import Settings
from service.loop.assignment import in_control
from service.redis import exposures as exposure_buffer

READ_KEY = "read-key-0123456789"
ADMIN_KEY = "admin-key-0123456789"
READ = {"X-API-Key": READ_KEY}



@pytest.fixture()
def make_client(tmp_path: Path, redis_url: str, events_url: str) -> Iterator[Callable[..., FlaskClient]]:
    apps: list[Flask] = []

    def make(**env: str) -> FlaskClient:
        base = {"API_KEYS": READ_KEY, "ADMIN_API_KEYS": ADMIN_KEY, "REDIS_URL": redis_url,
                "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db", "MODEL_CACHE_DIR": str(tmp_path / "cache"),
                "SERVICE_STATE_DIR": str(tmp_path / "state"), "EVENTS_DB_URL": events_url,
                "CONTROL_SHARE": "0", "REDIS_TIMEOUT_SECONDS": "1"}
        app: Flask = create_app(Settings.from_env({**base, **env}), watch=False)
        app.extensions["crm"].models.install(CatalogueRecommender(), "7")
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:  # the pools hold connections to a database the fixture drops
        app.extensions["crm"].events.close()
        app.extensions["crm"].redis.close()


@pytest.fixture()
def client(make_client: Callable[..., FlaskClient]) -> FlaskClient:
    return make_client()


def _suggest(client: FlaskClient, client_id: str = "c1", **params: str) -> dict[str, Any]:
    response = client.get(f"/v1/clients/{client_id}/suggestions", query_string={"kind": "cross_sell", **params},
                          headers=READ)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _react(client: FlaskClient, answer: dict[str, Any], item_id: str, reaction: str, **extra: Any) -> Any:
    return client.post("/v1/reactions", json={"recommendation_id": answer["recommendation_id"], "item_id": item_id,
                                              "reaction": reaction, **extra}, headers=READ)


def _items(answer: dict[str, Any]) -> list[str]:
    return [s["item_id"] for s in answer["suggestions"]]


def _rt(client: FlaskClient) -> Any:
    return client.application.extensions["crm"]


def test_every_answer_is_traced_and_its_exposure_reaches_the_store(client: FlaskClient) -> None:
    first, second = _suggest(client), _suggest(client)
    assert first["recommendation_id"] != second["recommendation_id"]  # the second came from the cache
    assert first["suggestions"] == second["suggestions"] and first["variant"] == "champion"
    assert first["model_version"] == "7"
    assert [s["position"] for s in first["suggestions"]] == list(range(1, len(first["suggestions"]) + 1))
    rt = _rt(client)
    hot = [rt.redis.keys.recommendation(answer["recommendation_id"]) for answer in (first, second)]
    reader = rt.drain.connection
    assert reader.run("test", lambda r: r.exists(*hot)) == 2  # a reaction now is checked against these
    assert rt.drain.drain_all() == 2
    assert reader.run("test", lambda r: r.exists(*hot)) == 0  # stored: the hot copies go with the entries
    assert _react(client, second, _items(second)[0], "clicked").status_code in (200, 201)  # found in the store
    stored = rt.events.exposure("default", first["recommendation_id"])
    assert stored["client_id"] == "c1" and stored["variant"] == "champion" and stored["endpoint"] == "client"
    assert [item["item_id"] for item in stored["items"]] == _items(first)
    assert [item["position"] for item in stored["items"]] == [s["position"] for s in first["suggestions"]]

    cart = client.post("/v1/cart/suggestions", json={"items": ["coffee"], "visitor_id": "v-9"}, headers=READ)
    body = cart.get_json()
    assert body["visitor_id"] == "v-9" and body["recommendation_id"] and body["bundles"][0]["position"] == 1
    similar = client.get("/v1/items/coffee/similar", query_string={"visitor_id": "v-9"}, headers=READ).get_json()
    assert similar["recommendation_id"] and similar["suggestions"][0]["position"] == 1
    rt.drain.drain_all()
    exposure = rt.events.exposure("default", body["recommendation_id"])
    assert exposure["visitor_id"] == "v-9" and exposure["client_id"] is None
    assert {item["item_id"] for item in exposure["items"]} >= {"coffee-starter", "coffee-premium"}


def test_reactions_are_refused_with_a_problem_naming_the_field(client: FlaskClient) -> None:
    answer = _suggest(client)
    unknown = client.post("/v1/reactions", json={"recommendation_id": "f" * 32, "item_id": "mug",
                                                 "reaction": "clicked"}, headers=READ)
    assert unknown.status_code == 404 and unknown.get_json()["errors"][0]["field"] == "recommendation_id"
    outside = _react(client, answer, "warranty", "clicked")
    assert outside.status_code == 404 and outside.get_json()["errors"][0]["field"] == "item_id"
    bad = _react(client, answer, _items(answer)[0], "loved")
    assert bad.status_code == 422 and bad.mimetype == "application/problem+json"
    rt = _rt(client)  # an answer older than REACTION_MAX_AGE_DAYS
    old = datetime.now(timezone.utc) - timedelta(days=31)
    rt.events.add_exposures("default", [{"recommendation_id": "a" * 32, "client_id": "c1", "visitor_id": None,
                                         "variant": "champion", "model_version": "7", "endpoint": "client",
                                         "kind": "cross_sell", "channel": None, "shown_at": old,
                                         "items": [{"item_id": "mug", "group": None, "kind": "cross_sell",
                                                    "position": 1}]}])
    expired = client.post("/v1/reactions", json={"recommendation_id": "a" * 32, "item_id": "mug",
                                                 "reaction": "clicked"}, headers=READ)
    assert expired.status_code == 410 and expired.get_json()["type"].endswith("recommendation-expired")


def test_a_rejection_is_stored_once_and_gone_from_the_next_answer(client: FlaskClient) -> None:
    answer = _suggest(client)
    top = _items(answer)[0]
    first = _react(client, answer, top, "rejected", reason="not_relevant", channel="crm")
    assert first.status_code == 201 and first.get_json()["changes_next_answer"] is True
    again = _react(client, answer, top, "rejected", reason="not_relevant")
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert top not in _items(_suggest(client))  # at once, although the answer was cached
    stored = _rt(client).events.reactions_between("default", datetime.now(timezone.utc) - timedelta(hours=1),
                                                   datetime.now(timezone.utc) + timedelta(hours=1))
    assert len(stored) == 1 and stored.iloc[0]["reason"] == "not_relevant"
    assert top in _items(_suggest(client, "c3"))  # another client still gets it


def test_a_snoozed_item_comes_back_after_its_days(client: FlaskClient) -> None:
    answer = _suggest(client)
    top = _items(answer)[0]
    assert _react(client, answer, top, "snoozed", snooze_days=2).status_code == 201
    assert top not in _items(_suggest(client))
    rt = _rt(client)  # two days later: the snooze's end is in the past
    rt.redis.connection.client.hset(rt.redis.keys.loop("c1"), f"x:{top}", datetime.now().timestamp() - 1)
    rt.redis.connection.client.delete(rt.redis.keys.answers("c1"))
    assert top in _items(_suggest(client))


def test_an_item_shown_three_times_without_a_click_rests(client: FlaskClient) -> None:
    seen = []
    for n in range(3):
        answer = _suggest(client)
        seen.append(_items(answer))
        assert _react(client, answer, "mug", "shown").status_code == 201
        if n == 2:  # another item of the kind is clicked: the kind is not ignored, the mug is
            other = next(item for item in _items(answer) if item != "mug")
            _react(client, answer, other, "shown")
            _react(client, answer, other, "clicked")
    assert all("mug" in items for items in seen)
    after = _suggest(client)
    assert "mug" not in _items(after) and after["suggestions"] and after["resting"] == []


def test_a_click_resets_fatigue(client: FlaskClient) -> None:
    for n in range(4):
        answer = _suggest(client)
        _react(client, answer, "mug", "shown")
        if n == 1:
            _react(client, answer, "mug", "clicked")
    assert "mug" in _items(_suggest(client))  # shown 4 times, but the count restarted at the click


def test_a_kind_ignored_three_times_rests_for_the_window(client: FlaskClient) -> None:
    for _ in range(3):
        answer = _suggest(client)
        for item in _items(answer)[:2]:  # two items shown per answer: the kind counts once per answer
            assert _react(client, answer, item, "shown").status_code == 201
    rested = _suggest(client)
    assert rested["suggestions"] == [] and rested["resting"][0]["kind"] == "cross_sell"
    assert datetime.fromisoformat(rested["resting"][0]["until"]) > datetime.now(timezone.utc) + timedelta(days=13)
    assert _suggest(client, kind="upsell")["suggestions"]  # other kinds still answer


def test_a_campaign_sent_by_email_counts_as_shown(client: FlaskClient) -> None:
    for _ in range(3):
        _suggest(client, channel="email")
    assert _suggest(client)["suggestions"] == []  # every item and the kind were shown 3 times
    for _ in range(3):
        _suggest(client, "c3", channel="crm")  # a CRM card refreshed does not count
    assert _suggest(client, "c3")["suggestions"]


def test_impression_and_click_events_are_recorded_as_reactions(client: FlaskClient) -> None:
    answer = _suggest(client)
    item = _items(answer)[0]
    events = [{"client_id": "c1", "item_id": item, "type": "impression", "timestamp": 1714557600,
               "recommendation_id": answer["recommendation_id"]},
              {"client_id": "c1", "item_id": item, "type": "click", "timestamp": 1714557601,
               "recommendation_id": answer["recommendation_id"]},
              {"client_id": "c1", "item_id": item, "type": "view", "timestamp": 1714557602}]
    response = client.post("/v1/events", json=events, headers=READ)
    assert response.status_code == 202 and response.get_json()["accepted"] == 3
    now = datetime.now(timezone.utc)
    stored = _rt(client).events.reactions_between("default", now - timedelta(hours=1), now + timedelta(hours=1))
    assert sorted(stored["reaction"]) == ["clicked", "shown"]


def _control_client(settings_share: float = 0.05) -> str:
    return next(f"client-{n}" for n in range(10_000)
                if in_control("default", "crm", f"client-{n}", settings_share))


def test_the_control_group_gets_the_popular_answer(make_client: Callable[..., FlaskClient]) -> None:
    client = make_client(CONTROL_SHARE="0.05")
    someone = _control_client()
    answer = _suggest(client, someone)
    assert answer["variant"] == "control" and answer["suggestions"]
    group = client.get(f"/v1/clients/{someone}/group", headers=READ).get_json()
    assert group["group"] == "control" and group["variant"] == "control"
    assert _rt(client).drain.drain_all() == 1
    assert _rt(client).events.exposure("default", answer["recommendation_id"])["variant"] == "control"
    nothing = make_client(CONTROL_SHARE="0.05", CONTROL_ANSWER="none")
    assert _suggest(nothing, someone)["suggestions"] == []
    treated = next(f"client-{n}" for n in range(100) if not in_control("default", "crm", f"client-{n}", 0.05))
    assert client.get(f"/v1/clients/{treated}/group", headers=READ).get_json()["group"] == "treatment"


def test_a_known_client_in_control_gets_what_nobody_in_particular_gets(
        make_client: Callable[..., FlaskClient]) -> None:
    """Business as usual is not personalised: c1 in control is answered like an unknown client."""
    salt = next(f"s{n}" for n in range(10_000) if in_control("default", f"s{n}", "c1", 0.05))
    personal = _items(_suggest(make_client(CONTROL_SHARE="0")))
    client = make_client(CONTROL_SHARE="0.05", ASSIGNMENT_SALT=salt)
    control = _suggest(client)
    anonymous = _items(_suggest(make_client(CONTROL_SHARE="0"), "someone-new"))
    assert control["variant"] == "control" and _items(control) == anonymous != personal


def test_erasure_removes_the_client_from_the_event_store(client: FlaskClient) -> None:
    answer = _suggest(client)
    _react(client, answer, _items(answer)[0], "rejected")
    client.post("/v1/events", json=[{"client_id": "c1", "item_id": "milk", "type": "purchase",
                                     "timestamp": 1714557600}], headers=READ)
    rt = _rt(client)
    rt.drain.drain_all()
    erased = client.delete("/v1/clients/c1", headers={"X-API-Key": ADMIN_KEY})
    assert erased.status_code == 200, erased.get_data(as_text=True)
    deleted = erased.get_json()["stored_deleted"]
    assert deleted["events"] == 1 and deleted["exposures"] == 1 and deleted["reactions"] == 1
    assert rt.events.exposure("default", answer["recommendation_id"]) is None
    assert "c1" in rt.events.erased_clients("default")
    assert rt.redis.loop.suppressions("c1").empty


def test_with_redis_down_exposures_go_straight_to_the_store(make_client: Callable[..., FlaskClient],
                                                            tmp_path: Path) -> None:
    from support.processes import free_port

    client = make_client(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_TIMEOUT_SECONDS="0.2")
    answer = _suggest(client)
    assert _rt(client).events.exposure("default", answer["recommendation_id"]) is not None
    assert _react(client, answer, _items(answer)[0], "clicked").status_code == 201
    # an answer the store does not know may still be in the (unreachable) buffer: retry, not 404
    unknown = client.post("/v1/reactions", json={"recommendation_id": "e" * 32, "item_id": "mug",
                                                 "reaction": "clicked"}, headers=READ)
    assert unknown.status_code == 503 and unknown.headers["Retry-After"]


def test_old_rows_are_purged_once_an_hour_by_one_worker(client: FlaskClient) -> None:
    rt = _rt(client)
    old = datetime.now(timezone.utc) - timedelta(days=401)
    rt.events.add_events("default", [{"event_id": "old", "type": "purchase", "client_id": "c1", "visitor_id": None,
                                      "item_id": "milk", "quantity": 1.0, "price": 1.5, "order_id": None,
                                      "occurred_at": old, "received_at": old, "source": "api"}])
    _suggest(client)
    assert rt.drain._purge_if_first()["events"] == 1
    assert rt.drain._purge_if_first() is None  # the lock: another worker within the hour does nothing
    assert rt.events.purchases("default").empty


@pytest.mark.parametrize("answers", [1, 3])
def test_entries_a_dead_writer_read_are_claimed_and_stored(client: FlaskClient, monkeypatch: pytest.MonkeyPatch,
                                                           answers: int) -> None:
    """A writer killed between its read and its commit (a worker, or the writer process): another
    claims its entries once they are idle, one entry or several, and stores them."""
    monkeypatch.setattr(exposure_buffer, "CLAIM_IDLE_MS", 1)
    rt = _rt(client)
    shown = [_suggest(client, f"c{n}")["recommendation_id"] for n in range(answers)]
    assert len(rt.drain.buffer.read("dead-writer", 500, 1, pending=False)) == answers  # read, never stored
    time.sleep(0.01)
    assert rt.drain.buffer.claim_stale(rt.drain.consumer, 500) == answers
    assert rt.drain.drain_once(pending=True) == answers
    assert all(rt.events.exposure("default", rid) for rid in shown)
