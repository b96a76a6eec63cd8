"""The fast path (service/fast_path.py) answers exactly as Flask does.

The same requests (valid, bad parameters, bad keys, browser keys and origins, rate-limited, cached
and not, unknown clients and items, carts with bad bodies, HEAD and OPTIONS) go to an app with
FAST_PATH=false and to one with the fast path, each on a freshly flushed real Redis; status, body
and headers must be the same (recommendation and request ids aside), and so must the request
metrics and the access log lines they leave.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from support.apps import double_clients

from service.browser.client_token import make_client_token
from service.fast_path import FastPath

READ_KEY = "sk-read-0123456789"
ADMIN_KEY = "sk-admin-0123456789"
PK = "pk_test_0123456789"
SHOP = "https://shop.example"
SECRET = "widget-secret-0123456789"
READ = {"X-API-Key": READ_KEY}
CART = "/v1/cart/suggestions"
_ID = re.compile(r'"recommendation_id":\s*"[^"]+"')
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[^\"]*")

#: (method, path, headers, body or None): run in this order, so later requests see the cache and counts.
Call = tuple[str, str, dict[str, str], Any]
CALLS: list[Call] = [
    ("GET", "/healthz", {}, None),
    ("GET", "/healthz", {"X-Request-ID": "caller-id-1"}, None),
    ("GET", "/healthz", {"X-Request-ID": "bad id with spaces"}, None),
    ("HEAD", "/healthz", {}, None),
    ("POST", "/healthz", {}, None),
    ("GET", "/healthz/", {}, None),
    ("GET", "/v1/clients/c1/suggestions", READ, None),
    ("GET", "/v1/clients/c1/suggestions", READ, None),  # now cached
    ("GET", "/v1/clients/c1/suggestions?kind=all&limit=2", {"Authorization": f"Bearer {READ_KEY}"}, None),
    ("GET", "/v1/clients/c1/suggestions?kind=upsell&explain=true&exclude=mug,milk", READ, None),
    ("GET", "/v1/clients/c1/suggestions?limit=0", READ, None),
    ("GET", "/v1/clients/c1/suggestions?limit=abc&kind=nope", READ, None),
    ("GET", "/v1/clients/c1/suggestions?limit=%2B3", READ, None),
    ("GET", "/v1/clients/c1/suggestions?objective=margin", READ, None),
    ("GET", "/v1/clients/unknown-client/suggestions", READ, None),
    ("GET", "/v1/clients/bad%20id/suggestions", READ, None),
    ("GET", "/v1/clients/" + "x" * 300 + "/suggestions", READ, None),
    ("GET", "/v1/clients/caf%C3%A9/suggestions", READ, None),
    ("GET", "/v1/clients/c1/suggestions", {}, None),
    ("GET", "/v1/clients/c1/suggestions", {"X-API-Key": "wrong-key"}, None),
    ("GET", "/v1/clients/c1/suggestions", {"Authorization": "Basic abc"}, None),
    ("GET", "/v1/clients/c1/suggestions", {**READ, "Origin": SHOP}, None),
    ("GET", "/v1/clients/c1/suggestions", {"X-API-Key": PK, "Origin": SHOP}, None),
    ("HEAD", "/v1/clients/c1/suggestions", READ, None),
    ("OPTIONS", "/v1/clients/c1/suggestions", READ, None),
    ("OPTIONS", CART, {"Origin": SHOP, "Access-Control-Request-Method": "POST"}, None),
    ("DELETE", "/v1/clients/c1/suggestions", READ, None),
    ("GET", "/v1/items/coffee/similar", READ, None),
    ("GET", "/v1/items/coffee/similar?limit=2&visitor_id=v-1", READ, None),
    ("GET", "/v1/items/coffee/similar?limit=2&visitor_id=v-1", READ, None),
    ("GET", "/v1/items/no-such-item/similar", READ, None),
    ("GET", "/v1/items/coffee/similar?limit=-1", READ, None),
    ("GET", "/v1/items/coffee/similar", {"X-API-Key": PK, "Origin": SHOP}, None),
    ("GET", "/v1/items/coffee/similar", {"X-API-Key": PK, "Origin": "https://evil.example"}, None),
    ("POST", CART, READ, {"items": ["coffee"], "limit": 3}),
    ("POST", CART, READ, {"items": ["coffee"], "limit": 3}),
    ("POST", CART, READ, {"items": ["coffee", "milk"], "client_id": "c1"}),
    ("POST", CART, READ, {"items": ["coffee", "nope"], "visitor_id": "v-2"}),
    ("POST", CART, READ, {"items": []}),
    ("POST", CART, READ, {"items": "coffee"}),
    ("POST", CART, READ, b"{not json"),
    ("POST", CART, {**READ, "Content-Type": "text/plain"}, b'{"items": ["coffee"]}'),
    ("POST", CART, READ, b""),
    ("POST", CART, READ, b'{"items": ["' + b"a" * 70_000 + b'"]}'),
    ("POST", CART, {"X-API-Key": PK, "Origin": SHOP}, {"items": ["coffee"]}),
    ("POST", CART, {"X-API-Key": PK, "Origin": SHOP}, {"items": ["coffee"], "client_id": "c1"}),
    ("POST", CART, {"X-API-Key": PK, "Origin": SHOP, "X-Client-Token": make_client_token(SECRET, "c1")},
     {"items": ["coffee"], "client_id": "c1"}),
    ("GET", CART, READ, None),
    ("GET", "/readyz", {}, None),
    ("GET", "/v1/nowhere", READ, None),
    *[("GET", "/v1/clients/c2/suggestions", READ, None)] * 30,  # past the allowance: 429s
    ("POST", CART, READ, {"items": ["coffee"]}),
]


def _normal(text: str) -> str:
    return _TIME.sub("<time>", _ID.sub('"recommendation_id": "<id>"', text))


def _answer(client: FlaskClient, call: Call) -> dict[str, Any]:
    method, path, headers, body = call
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(body, bytes):
        kwargs["data"] = body
        kwargs["headers"] = {"Content-Type": "application/json", **headers}
    elif body is not None:
        kwargs["json"] = body
    response = client.open(path, method=method, **kwargs)
    seen = dict(response.headers)
    if "X-Request-ID" in seen and not seen["X-Request-ID"].startswith("caller-"):
        assert re.fullmatch(r"[0-9a-f]{32}", seen["X-Request-ID"])
        seen["X-Request-ID"] = "<generated>"
    text = response.get_data(as_text=True)
    if "X-RateLimit-Reset" in seen:  # seconds left in the window: may tick between the two runs
        seen["X-RateLimit-Reset"] = "<seconds>"
    if response.status_code == 429:
        seen["Retry-After"] = "<seconds>"
        text = re.sub(r"retry in \d+ s", "retry in <n> s", text)
    return {"call": f"{method} {path[:60]}", "status": response.status_code, "headers": seen,
            "body": _normal(text)}


def _requests_metric() -> dict[tuple[str, ...], float]:
    counts: dict[tuple[str, ...], float] = {}
    for metric in REGISTRY.collect():
        if metric.name == "crm_http_requests":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    counts[tuple(sorted(sample.labels.items()))] = sample.value  # type: ignore[arg-type]
    return counts


@pytest.fixture()
def make_client(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., FlaskClient]]:
    yield from double_clients({
        "API_KEYS": READ_KEY, "ADMIN_API_KEYS": ADMIN_KEY, "PUBLISHABLE_KEYS": PK, "ALLOWED_ORIGINS": SHOP,
        "WIDGET_TOKEN_SECRET": SECRET, "REDIS_URL": redis_url, "RATE_LIMIT_PER_MINUTE": "30",
        "RATE_LIMIT_WINDOW_SECONDS": "60", "MAX_BODY_BYTES": "65536",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db", "MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "SERVICE_STATE_DIR": str(tmp_path / "state"), "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db",
        "CONTROL_SHARE": "0"})


def _run(client: FlaskClient, redis_url: str, capsys: pytest.CaptureFixture[str]) -> tuple[list, dict, list]:
    redis.Redis.from_url(redis_url).flushdb()
    before = _requests_metric()
    capsys.readouterr()
    answers = [_answer(client, call) for call in CALLS]
    after = _requests_metric()
    counted = {labels: after[labels] - before.get(labels, 0.0) for labels in after
               if after[labels] != before.get(labels, 0.0)}
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("message") == "request"]
    for line in access:  # each access line carries its request's id (the one answered in X-Request-ID)
        assert re.fullmatch(r"[0-9a-f]{32}|caller-id-1", line.pop("request_id")), line
        line.pop("time"), line.pop("pid"), line.pop("duration_ms")
    return answers, counted, access


@pytest.mark.parametrize("env", [{}, {"AUTH_DISABLED": "true", "ACCESS_LOG_SAMPLE": "0"}],
                         ids=["auth-on", "auth-off-log-sampled"])
def test_the_fast_path_answers_as_flask_does(make_client: Callable[..., FlaskClient], redis_url: str,
                                             capsys: pytest.CaptureFixture[str], env: dict[str, str]) -> None:
    flask_only = make_client(FAST_PATH="false", **env)
    fast = make_client(**env)
    assert isinstance(fast.application.wsgi_app, FastPath)
    assert not isinstance(flask_only.application.wsgi_app, FastPath)
    expected, expected_metrics, expected_log = _run(flask_only, redis_url, capsys)
    seen, seen_metrics, seen_log = _run(fast, redis_url, capsys)
    for want, got in zip(expected, seen, strict=True):
        assert got == want, json.dumps({"flask": want, "fast": got}, indent=1)[:4000]
    assert seen_metrics == expected_metrics
    assert seen_log == expected_log
    refused = sum(answer["status"] >= 400 for answer in seen)
    assert len(seen_log) == (refused if env else len(CALLS))  # sampled to 0: only the refusals are written
    statuses = {answer["status"] for answer in seen}
    # the list reaches every kind of answer it is meant to compare (without auth: no 401)
    assert {200, 204, 400, 403, 404, 405, 409, 413, 415, 422, 429} | ({401} if not env else set()) <= statuses, \
        statuses
    assert any(answer["headers"].get("X-Cache") == "hit" for answer in seen)
    assert any(answer["headers"].get("Access-Control-Allow-Origin") == SHOP for answer in seen)
