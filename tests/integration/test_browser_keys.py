"""Browsers and keys: CORS preflights, publishable keys, client tokens, secret keys refused from pages.

The real app (every request hook and handler) on real Redis, with the catalogue double installed
in its model store; the widget's and the demo shop's side in a real browser is tests/browser/.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from support.apps import double_clients
from support.problems import assert_problem

from service.browser.client_token import InvalidClientToken, make_client_token, verify_client_token

SHOP = "https://shop.example"
OTHER = "https://evil.example"
PK = "pk_test_0123456789"
READ_KEY = "sk-read-0123456789"
ADMIN_KEY = "sk-admin-0123456789"
SECRET = "widget-secret-0123456789"


@pytest.fixture()
def make_client(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., FlaskClient]]:
    yield from double_clients({"API_KEYS": READ_KEY, "ADMIN_API_KEYS": ADMIN_KEY, "PUBLISHABLE_KEYS": PK, "ALLOWED_ORIGINS": SHOP,
                "WIDGET_TOKEN_SECRET": SECRET, "REDIS_URL": redis_url,
                "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db", "MODEL_CACHE_DIR": str(tmp_path / "cache"),
                "SERVICE_STATE_DIR": str(tmp_path / "state"), "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db",
                "CONTROL_SHARE": "0"})


@pytest.fixture()
def client(make_client: Callable[..., FlaskClient]) -> FlaskClient:
    return make_client()


def widget(origin: str = SHOP, **extra: str) -> dict[str, str]:
    return {"X-API-Key": PK, "Origin": origin, **extra}


def test_preflight_is_answered_before_auth_for_an_allowed_origin(client: FlaskClient) -> None:
    response = client.options("/v1/cart/suggestions", headers={
        "Origin": SHOP, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-api-key"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    assert "Origin" in response.headers["Vary"]
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "x-api-key" in allowed and "content-type" in allowed and "x-client-token" in allowed


def test_preflight_from_another_origin_is_a_problem_without_cors_headers(client: FlaskClient) -> None:
    response = client.options("/v1/cart/suggestions", headers={"Origin": OTHER, "Access-Control-Request-Method": "POST"})
    assert_problem(response, 403, "Origin")
    assert "Access-Control-Allow-Origin" not in response.headers


def test_publishable_key_answers_a_cart_from_an_allowed_origin(client: FlaskClient) -> None:
    response = client.post("/v1/cart/suggestions", json={"items": ["coffee"], "visitor_id": "v-1"}, headers=widget())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Access-Control-Allow-Origin"] == SHOP and "Origin" in response.headers["Vary"]
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]
    assert response.get_json()["complete"]
    similar = client.get("/v1/items/coffee/similar?visitor_id=v-1", headers=widget())
    assert similar.status_code == 200 and similar.get_json()["suggestions"]


def test_publishable_key_is_refused_from_other_origins_and_without_one(client: FlaskClient) -> None:
    refused = client.post("/v1/cart/suggestions", json={"items": ["coffee"]}, headers=widget(OTHER))
    assert_problem(refused, 403, "Origin")
    assert "Access-Control-Allow-Origin" not in refused.headers
    no_origin = client.post("/v1/cart/suggestions", json={"items": ["coffee"]}, headers={"X-API-Key": PK})
    assert_problem(no_origin, 403, "Origin")


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/clients/c1/suggestions"), ("POST", "/v1/events"),
                                              ("GET", "/v1/reports/effect"), ("GET", "/v1/clients/c1/group")])
def test_publishable_key_opens_nothing_else(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method, json={"events": []} if method == "POST" else None, headers=widget())
    assert assert_problem(response, 403)["type"].endswith("publishable-key-scope")


@pytest.mark.parametrize("key", [READ_KEY, ADMIN_KEY])
def test_secret_keys_are_refused_from_a_browser(client: FlaskClient, key: str) -> None:
    from_page = client.post("/v1/cart/suggestions", json={"items": ["coffee"]}, headers={"X-API-Key": key, "Origin": SHOP})
    assert assert_problem(from_page, 403, "X-API-Key")["type"].endswith("secret-key-in-browser")
    from_server = client.post("/v1/cart/suggestions", json={"items": ["coffee"]}, headers={"X-API-Key": key})
    assert from_server.status_code == 200
    # the service's own pages (the interactive docs) may send a key a person typed in
    own = client.post("/v1/cart/suggestions", json={"items": ["coffee"]},
                      headers={"X-API-Key": key, "Origin": "http://localhost"})
    assert own.status_code == 200


def test_a_cart_names_a_client_only_with_a_valid_client_token(client: FlaskClient) -> None:
    cart = {"items": ["coffee"], "client_id": "c1"}
    assert_problem(client.post("/v1/cart/suggestions", json=cart, headers=widget()), 403, "client_id")
    for token in (make_client_token(SECRET, "c2"), make_client_token("another-secret", "c1"),
                  make_client_token(SECRET, "c1", ttl_seconds=-5), make_client_token(SECRET, "c1", ttl_seconds=3600),
                  "v1.garbage"):
        refused = client.post("/v1/cart/suggestions", json=cart, headers=widget(**{"X-Client-Token": token}))
        assert_problem(refused, 403, "X-Client-Token")
    good = client.post("/v1/cart/suggestions", json=cart,
                       headers=widget(**{"X-Client-Token": make_client_token(SECRET, "c1", ttl_seconds=300)}))
    assert good.status_code == 200 and good.get_json()["client_id"] == "c1"


def test_without_a_token_secret_publishable_keys_answer_anonymous_carts_only(make_client) -> None:
    client = make_client(WIDGET_TOKEN_SECRET="")
    token = make_client_token(SECRET, "c1")
    refused = client.post("/v1/cart/suggestions", json={"items": ["coffee"], "client_id": "c1"},
                          headers=widget(**{"X-Client-Token": token}))
    assert_problem(refused, 403, "client_id")


def test_publishable_key_posts_shown_and_clicked_reactions_only(client: FlaskClient) -> None:
    answer = client.post("/v1/cart/suggestions", json={"items": ["coffee"], "visitor_id": "v-2"}, headers=widget())
    rec_id, item = answer.get_json()["recommendation_id"], answer.get_json()["complete"][0]["item_id"]
    for reaction in ("shown", "clicked"):
        posted = client.post("/v1/reactions", json={"recommendation_id": rec_id, "item_id": item, "reaction": reaction},
                             headers=widget())
        assert posted.status_code == 201, posted.get_data(as_text=True)
        assert posted.headers["Access-Control-Allow-Origin"] == SHOP
    for reaction in ("accepted", "rejected", "snoozed"):
        refused = client.post("/v1/reactions", json={"recommendation_id": rec_id, "item_id": item,
                                                     "reaction": reaction}, headers=widget())
        assert_problem(refused, 403, "reaction")


def test_publishable_key_is_limited_per_visitor(make_client) -> None:
    client = make_client(VISITOR_RATE_LIMIT_PER_MINUTE="3")
    statuses = [client.post("/v1/cart/suggestions", json={"items": ["coffee"]}, headers=widget()).status_code
                for _ in range(3)]
    assert statuses == [200, 200, 200]
    limited = client.post("/v1/cart/suggestions", json={"items": ["coffee"]}, headers=widget())
    assert_problem(limited, 429)
    assert int(limited.headers["Retry-After"]) >= 1
    # the limit is the visitor's: another address with the same key still gets answers
    other = client.post("/v1/cart/suggestions", json={"items": ["coffee"]}, headers=widget(),
                        environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 200


def test_client_token_reference_implementation() -> None:
    now = time.time()
    token = make_client_token(SECRET, "client/ü 42", ttl_seconds=60, now=now)
    verify_client_token(SECRET, token, "client/ü 42", 900, now=now)
    version, _, expiry, _ = token.split(".")
    assert version == "v1" and int(expiry) == int(now + 60)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(InvalidClientToken):
        verify_client_token(SECRET, tampered, "client/ü 42", 900, now=now)
    with pytest.raises(InvalidClientToken):
        verify_client_token(SECRET, token, "client/ü 42", 900, now=now + 61)
