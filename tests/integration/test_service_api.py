"""Handlers and validation of the HTTP API, with an in-memory model and no Redis.

The model here is a test double of the scoring contract (`CatalogueRecommender`), installed
directly in the app's model store; Redis is not configured, which is also a supported mode (no
cache, events 503). Real Redis and MLflow are exercised in test_service_integration.py.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.problems import assert_problem
from support.processes import free_port
from support.service_model_double import CatalogueRecommender

from service.app import create_app
from service.config import Settings

READ_KEY = "read-key-0123456789"
ADMIN_KEY = "admin-key-0123456789"
READ = {"X-API-Key": READ_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}


def settings_for(tmp_path: Path, **env: str) -> Settings:
    base = {"API_KEYS": READ_KEY, "ADMIN_API_KEYS": ADMIN_KEY, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db",
            "MODEL_CACHE_DIR": str(tmp_path / "model-cache"), "SERVICE_STATE_DIR": str(tmp_path / "state"),
            "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db"}
    return Settings.from_env({**base, **env})


@pytest.fixture()
def make_app(tmp_path: Path) -> Callable[..., Flask]:
    def make(recommender: Any = None, **env: str) -> Flask:
        app = create_app(settings_for(tmp_path, **env), watch=False)
        if recommender is not None:
            app.extensions["crm"].models.install(recommender, "7")
        return app

    return make


@pytest.fixture()
def client(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app(CatalogueRecommender()).test_client()


# ---- configuration ----

def test_settings_defaults_and_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    defaults = Settings.from_env({})
    assert defaults.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'var' / 'mlflow.db'}"
    assert (defaults.model_name, defaults.model_alias, defaults.tenant) == ("crm-recommender", "champion", "default")
    assert (defaults.host, defaults.port, defaults.workers, defaults.max_limit) == ("127.0.0.1", 8000, 2, 100)
    assert defaults.redis_url is None and not defaults.auth_disabled
    assert 0.05 <= defaults.redis_timeout_seconds <= 0.2
    parsed = Settings.from_env({"API_KEYS": " key-a, key-b ,", "ADMIN_API_KEYS": "key-z", "AUTH_DISABLED": "TRUE"})
    assert parsed.api_keys == ("key-a", "key-b") and parsed.read_keys == ("key-a", "key-b", "key-z")
    assert parsed.auth_disabled and "key-" not in repr(parsed)  # keys never reach a log through repr


@pytest.mark.parametrize("env", [{"PORT": "eighty"}, {"MAX_LIMIT": "0"}, {"AUTH_DISABLED": "maybe"}])
def test_settings_reject_bad_values(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(env))):
        Settings.from_env(env)


# ---- health ----

def test_healthz_answers_without_model(make_app: Callable[..., Flask]) -> None:
    response = make_app().test_client().get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_is_503_problem_without_model_and_names_the_version_with_one(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    assert_problem(app.test_client().get("/readyz"), 503)
    assert_problem(app.test_client().get("/v1/clients/c1/suggestions", headers=READ), 503)
    app.extensions["crm"].models.install(CatalogueRecommender(), "12")
    body = app.test_client().get("/readyz").get_json()
    assert body["status"] == "ready" and body["model"]["version"] == "12"
    assert body["model"]["source"] == "direct" and body["redis"] == "not-configured"


# ---- suggestions ----

def test_all_kinds_are_grouped_by_kind(client: FlaskClient) -> None:
    response = client.get("/v1/clients/c1/suggestions?kind=all&limit=2", headers=READ)
    body = response.get_json()
    assert response.status_code == 200 and response.headers["X-Cache"] == "off"
    assert body["client_id"] == "c1" and body["model_version"] == "7" and body["cold_start"] is False
    assert body["segment"]["abc"] == "A" and body["segment"]["activity"] == "active"
    assert set(body["suggestions"]) == {"cross_sell", "upsell", "service_package", "replenishment"}
    assert all(1 <= len(items) <= 2 for items in body["suggestions"].values()), body["suggestions"]
    first = body["suggestions"]["cross_sell"][0]
    assert {"item_id", "name", "kind", "score", "price", "reason"} <= set(first) and first["reason"]


def test_next_basket_answers_alone_and_stays_out_of_all(client: FlaskClient) -> None:
    response = client.get("/v1/clients/c1/suggestions?kind=next_basket&limit=10", headers=READ)
    body = response.get_json()
    assert response.status_code == 200 and body["kind"] == "next_basket"
    ids = [s["item_id"] for s in body["suggestions"]]
    assert ids[:2] == ["coffee", "milk"] and len(ids) == len(set(ids)) > 2, "due repeats, then new items"
    everything = client.get("/v1/clients/c1/suggestions?kind=all&limit=10", headers=READ).get_json()
    assert "next_basket" not in everything["suggestions"]
    spec = client.get("/openapi.json").get_json()
    kinds = next(p for p in spec["paths"]["/v1/clients/{client_id}/suggestions"]["get"]["parameters"]
                 if p["name"] == "kind")
    assert "next_basket" in json.dumps(kinds)


def test_next_basket_of_the_real_model_through_http(make_app: Callable[..., Flask]) -> None:
    """The scoring model itself (fitted on the small shop) behind the API: a client who bought two
    products asks for ten and gets ten, no service, no item twice."""
    from support.factories import SHOP_CONFIG, make_shop

    from training.context import TrainContext
    from training.fit import fit_recommender

    tx, items, packages = make_shop()
    model = fit_recommender(TrainContext.build(tx, items, packages), SHOP_CONFIG)
    app = make_app(model).test_client()
    body = app.get("/v1/clients/c47/suggestions?kind=next_basket&limit=10", headers=READ).get_json()
    ids = [s["item_id"] for s in body["suggestions"]]
    assert len(ids) == len(set(ids)) == 10 and set(ids[:2]) == {"milk", "bread"}
    assert not {"care_basic", "care_premium"} & set(ids)
    everything = app.get("/v1/clients/c47/suggestions?kind=all&limit=10", headers=READ).get_json()
    assert set(everything["suggestions"]) == {"cross_sell", "upsell", "service_package", "replenishment"}


def test_one_kind_is_a_list_honouring_category_and_exclude(client: FlaskClient) -> None:
    body = client.get("/v1/clients/c1/suggestions?kind=cross_sell&exclude=filters,mug", headers=READ).get_json()
    ids = [s["item_id"] for s in body["suggestions"]]
    assert isinstance(body["suggestions"], list) and ids and not {"filters", "mug"} & set(ids)
    home = client.get("/v1/clients/c1/suggestions?kind=cross_sell&category=home", headers=READ).get_json()
    assert {s["category"] for s in home["suggestions"]} == {"home"}


def test_unknown_client_gets_cold_start_suggestions(client: FlaskClient) -> None:
    body = client.get("/v1/clients/stranger/suggestions?kind=cross_sell", headers=READ).get_json()
    assert body["cold_start"] is True and body["suggestions"] and body["segment"]["abc"] is None


@pytest.mark.parametrize(("query", "field"), [
    ("kind=everything", "kind"), ("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"),
    ("exclude=" + "x" * 129, "exclude[0]"), ("category=" + "c" * 200, "category"),
])
def test_bad_query_parameters_are_400_problems_naming_the_field(client: FlaskClient, query: str, field: str) -> None:
    assert_problem(client.get(f"/v1/clients/c1/suggestions?{query}", headers=READ), 400, field)


def test_max_limit_comes_from_settings(make_app: Callable[..., Flask]) -> None:
    app = make_app(CatalogueRecommender(), MAX_LIMIT="3")
    assert_problem(app.test_client().get("/v1/items/coffee/similar?limit=4", headers=READ), 400, "limit")
    assert app.test_client().get("/v1/items/coffee/similar?limit=3", headers=READ).status_code == 200


@pytest.mark.parametrize("client_id", ["x" * 129, "tab%09inside"])
def test_bad_client_ids_are_400(client: FlaskClient, client_id: str) -> None:
    assert_problem(client.get(f"/v1/clients/{client_id}/suggestions", headers=READ), 400, "client_id")


def test_numpy_scores_are_json(make_app: Callable[..., Flask]) -> None:
    numpy = pytest.importorskip("numpy")

    class NumpyScores(CatalogueRecommender):
        def suggest(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            return [{**s, "score": numpy.float32(s["score"])} for s in super().suggest(*args, **kwargs)]

    response = make_app(NumpyScores()).test_client().get("/v1/clients/c1/suggestions?kind=upsell", headers=READ)
    assert response.status_code == 200 and response.get_json()["suggestions"][0]["score"] == pytest.approx(0.8)


# ---- cart and similar items ----

def test_anonymous_cart_completes_upsells_and_offers_bundles(client: FlaskClient) -> None:
    response = client.post("/v1/cart/suggestions", json={"items": ["coffee", "nonexistent"], "limit": 3}, headers=READ)
    body = response.get_json()
    assert response.status_code == 200 and body["client_id"] is None and body["model_version"] == "7"
    assert body["complete"] and "coffee" not in [s["item_id"] for s in body["complete"]]
    assert body["upsell"][0]["item_id"] == "coffee-premium"
    assert body["bundles"][0]["bundle_price"] < body["bundles"][0]["price"]
    assert body["unknown_items"] == ["nonexistent"]


def test_similar_items_and_unknown_item_404(client: FlaskClient) -> None:
    body = client.get("/v1/items/coffee/similar?limit=2", headers=READ).get_json()
    assert body["item_id"] == "coffee" and 0 < len(body["suggestions"]) <= 2
    assert_problem(client.get("/v1/items/unobtainium/similar", headers=READ), 404, "item_id")


# ---- bodies ----

@pytest.mark.parametrize(("body", "status", "field"), [
    ({"items": ["coffee"], "colour": "red"}, 422, "colour"),
    ({"items": "coffee"}, 422, "items"),
    ({"items": ["x" * 129]}, 422, "items[0]"),
    ({"items": ["coffee"], "limit": 0}, 422, "limit"),
    ({"items": [f"i{n}" for n in range(101)]}, 422, "items"),
    ([1, 2], 422, "body"),
])
def test_invalid_cart_bodies_are_422_problems(client: FlaskClient, body: Any, status: int, field: str) -> None:
    assert_problem(client.post("/v1/cart/suggestions", json=body, headers=READ), status, field)


def test_malformed_json_is_400(client: FlaskClient) -> None:
    response = client.post("/v1/cart/suggestions", data=b'{"items": [', content_type="application/json", headers=READ)
    assert_problem(response, 400, "body")


def test_wrong_content_type_is_415(client: FlaskClient) -> None:
    response = client.post("/v1/cart/suggestions", data="items=coffee", headers=READ,
                           content_type="application/x-www-form-urlencoded")
    assert_problem(response, 415, "Content-Type")


def test_body_over_max_body_bytes_is_413(make_app: Callable[..., Flask]) -> None:
    client = make_app(CatalogueRecommender(), MAX_BODY_BYTES="1024").test_client()
    response = client.post("/v1/cart/suggestions", json={"items": ["a" * 100] * 20}, headers=READ)
    assert_problem(response, 413)


def test_events_are_validated_before_the_store_is_asked(client: FlaskClient) -> None:
    ok = {"client_id": "c1", "item_id": "coffee", "type": "purchase", "timestamp": "2024-05-01T10:00:00Z"}
    assert_problem(client.post("/v1/events", json={"events": [{**ok, "type": "like"}]}, headers=READ), 422,
                   "events[0].type")
    assert_problem(client.post("/v1/events", json={"events": [{**ok, "quantity": -1}]}, headers=READ), 422,
                   "events[0].quantity")
    assert_problem(client.post("/v1/events", json={"events": [{**ok, "extra": 1}]}, headers=READ), 422,
                   "events[0].extra")
    assert_problem(client.post("/v1/events", json={"events": []}, headers=READ), 422, "events")
    assert_problem(client.post("/v1/events", json=[ok] * 501, headers=READ), 422, "events")


def test_events_without_redis_are_committed_to_the_event_store(client: FlaskClient) -> None:
    """Redis is the live view, the event store the record: with Redis down an event is still stored
    (202, live: false), and a retry with the same event_id is not counted twice."""
    event = {"client_id": "c1", "item_id": "coffee", "type": "purchase", "timestamp": 1714557600, "price": 2.5,
             "event_id": "e-1"}
    first = client.post("/v1/events", json=[event], headers=READ)
    assert first.status_code == 202, first.get_data(as_text=True)
    assert first.get_json()["accepted"] == 1 and first.get_json()["live"] is False
    again = client.post("/v1/events", json=[event], headers=READ).get_json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    stored = client.application.extensions["crm"].events.purchases("default")
    assert list(stored["item_id"]) == ["coffee"]


def test_events_with_the_event_store_down_are_503_problems(make_app: Callable[..., Flask]) -> None:
    """Nothing answered 2xx unless committed: a store that cannot be reached is a 503 to retry."""
    dead = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2"
    client = make_app(CatalogueRecommender(), EVENTS_DB_URL=dead).test_client()
    event = {"client_id": "c1", "item_id": "coffee", "type": "view", "timestamp": 1714557600}
    body = assert_problem(client.post("/v1/events", json=[event], headers=READ), 503)
    assert "event store" in body["detail"]


# ---- auth ----

def test_missing_key_is_401_with_challenge(client: FlaskClient) -> None:
    response = client.get("/v1/clients/c1/suggestions")
    assert_problem(response, 401)
    assert "Bearer" in response.headers["WWW-Authenticate"]


def test_wrong_key_is_403_and_read_key_cannot_administer(client: FlaskClient) -> None:
    assert_problem(client.get("/v1/clients/c1/suggestions", headers={"X-API-Key": "nope"}), 403)
    assert_problem(client.post("/v1/admin/reload", headers=READ), 403)
    assert_problem(client.delete("/v1/clients/c1", headers=READ), 403)


def test_bearer_and_admin_keys_read(client: FlaskClient) -> None:
    bearer = {"Authorization": f"Bearer {READ_KEY}"}
    assert client.get("/v1/clients/c1/suggestions", headers=bearer).status_code == 200
    assert client.get("/v1/clients/c1/suggestions", headers=ADMIN).status_code == 200


def test_auth_disabled_opens_v1(make_app: Callable[..., Flask]) -> None:
    app = make_app(CatalogueRecommender(), AUTH_DISABLED="true", API_KEYS="", ADMIN_API_KEYS="")
    assert app.test_client().get("/v1/clients/c1/suggestions").status_code == 200


def test_keys_are_never_logged(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        client.get("/v1/clients/c1/suggestions", headers=READ)
        client.get("/v1/clients/c1/suggestions", headers={"X-API-Key": "wrong-secret-key"})
    text = caplog.text + "".join(json.dumps(vars(record), default=str) for record in caplog.records)
    assert READ_KEY not in text and "wrong-secret-key" not in text


# ---- protocol errors ----

def test_unknown_route_is_404_and_wrong_method_405(client: FlaskClient) -> None:
    assert_problem(client.get("/v1/nowhere", headers=READ), 404)
    response = client.delete("/v1/cart/suggestions", headers=READ)
    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_model_failure_is_500_problem_without_stack_trace(make_app: Callable[..., Flask],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    class Exploding(CatalogueRecommender):
        def similar(self, item_id: str, limit: int = 10) -> list[dict[str, Any]]:
            raise RuntimeError("secret internals")

    client = make_app(Exploding()).test_client()
    with caplog.at_level(logging.ERROR, logger="service"):
        response = client.get("/v1/items/coffee/similar", headers={**READ, "X-Request-ID": "req-500"})
    body = assert_problem(response, 500)
    assert "secret internals" not in response.get_data(as_text=True) and "Traceback" not in body["detail"]
    assert any(getattr(r, "request_id", None) == "req-500" or "req-500" in r.getMessage() or r.exc_info
               for r in caplog.records)


# ---- request ids, logs, metrics ----

def test_request_id_is_honoured_or_made(client: FlaskClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"}).headers["X-Request-ID"]
    assert made and made != "bad id\twith tab"
    assert client.get("/v1/nowhere").headers["X-Request-ID"]


def test_logs_are_one_json_object_per_line_with_the_request_id(client: FlaskClient,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    client.get("/v1/clients/c1/suggestions", headers={**READ, "X-Request-ID": "log-check"})
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    request_line = next(e for e in entries if e["message"] == "request")
    assert request_line["request_id"] == "log-check" and request_line["status"] == 200
    assert request_line["path"] == "/v1/clients/c1/suggestions" and request_line["level"] == "INFO"


def test_metrics_expose_requests_latency_and_model_version(client: FlaskClient) -> None:
    client.get("/v1/clients/c1/suggestions", headers=READ)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'crm_http_requests_total{endpoint="/v1/clients/<client_id>/suggestions",method="GET",status="200"}' in text
    assert "crm_http_request_duration_seconds_bucket" in text
    assert 'crm_model_version{alias="champion",name="crm-recommender"} 7.0' in text


# ---- OpenAPI and docs ----

def test_openapi_describes_every_route_from_the_code(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    expected = {("/v1/clients/{client_id}/suggestions", "get"), ("/v1/cart/suggestions", "post"),
                ("/v1/items/{item_id}/similar", "get"), ("/v1/events", "post"), ("/v1/clients/{client_id}", "delete"),
                ("/v1/admin/reload", "post"), ("/v1/reports/effect", "get"), ("/healthz", "get"), ("/readyz", "get"),
                ("/metrics", "get"), ("/openapi.json", "get"), ("/docs", "get"), ("/v1/reactions", "post"),
                ("/v1/clients/{client_id}/group", "get"), ("/v1/tasks", "get"), ("/v1/tasks/{task_id}", "post"),
                ("/v1/clients/{client_id}/profile", "get")}
    assert {(path, method) for path, ops in spec["paths"].items() for method in ops} == expected
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if path.startswith("/v1"):
                assert op["security"] and {"401", "403"} <= set(op["responses"]), (path, method)
            for status, answer in op["responses"].items():
                if int(status) >= 400:
                    assert "application/problem+json" in answer["content"]
    suggestions = spec["paths"]["/v1/clients/{client_id}/suggestions"]["get"]
    limit = next(p for p in suggestions["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 100 and limit["schema"]["minimum"] == 1
    assert spec["paths"]["/v1/admin/reload"]["post"]["x-required-scope"] == "admin"

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in refs(v)]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    schemas = spec["components"]["schemas"]
    assert all(ref.removeprefix("#/components/schemas/") in schemas for ref in refs(spec))
    assert schemas["Event"]["additionalProperties"] is False


def test_docs_page_lists_every_endpoint_offline(client: FlaskClient) -> None:
    response = client.get("/docs")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    for path in client.get("/openapi.json").get_json()["paths"]:
        assert path in page
    assert "<script" not in page and "https://" not in page


def test_a_request_uses_one_model_version_even_when_a_swap_happens_mid_request(
        make_app: Callable[..., Flask]) -> None:
    app = make_app()
    store = app.extensions["crm"].models

    class Replacement(CatalogueRecommender):
        def suggest(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            return [{"item_id": "from-the-new-version", "kind": "cross_sell", "score": 1.0, "reason": "new"}]

    class SwapsDuringSuggest(CatalogueRecommender):
        swapped = False

        def suggest(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            if not SwapsDuringSuggest.swapped and store.current is not None and store.current.version == "7":
                SwapsDuringSuggest.swapped = True
                store.install(Replacement(), "8")
            return super().suggest(*args, **kwargs)

    store.install(SwapsDuringSuggest(), "7")
    SwapsDuringSuggest.swapped = False
    body = app.test_client().get("/v1/clients/c1/suggestions?kind=all", headers=READ).get_json()
    assert SwapsDuringSuggest.swapped and body["model_version"] == "7"
    ids = [s["item_id"] for items in body["suggestions"].values() for s in items]
    assert ids and "from-the-new-version" not in ids
    assert app.test_client().get("/readyz").get_json()["model"]["version"] == "8"


def test_erasure_is_recorded_locally_even_when_redis_is_missing(make_app: Callable[..., Flask],
                                                                tmp_path: Path) -> None:
    client = make_app(CatalogueRecommender()).test_client()
    body = assert_problem(client.delete("/v1/clients/c9", headers=ADMIN), 503)
    assert "recorded" in body["detail"]
    record = json.loads((tmp_path / "state" / "erasures.jsonl").read_text().splitlines()[-1])
    assert record["client_id"] == "c9" and record["tenant"] == "default" and record["erased_at"]
