"""Keys, rate limits, logs and erasure, against the service under gunicorn (two workers).

- Every /v1 path asks for a key (401), refuses unknown keys (403), and admin paths refuse read
  keys (403); unknown /v1 paths ask for a key before saying 404. The spec and the app agree on it.
- Keys are compared in constant time (the comparison is checked in the code itself).
- No key, and no personal data beyond ids, reaches the logs (the test greps them) or Redis.
- The rate limit is per key, counted in Redis across both workers: 429 with Retry-After above the
  allowance, another key unaffected, the key free again in the next window; with Redis
  unreachable it fails open and counts it.
- Erasure: DELETE /v1/clients/{id} drops the client's events and cached answers, records the
  erasure in SERVICE_STATE_DIR/erasures.jsonl, and `python -m training train` with ERASURES_FILE
  pointing there produces a model that does not know the client.
"""
from __future__ import annotations

import ast
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
import requests
from support.processes import ROOT, RedisServer, wait_until
from support.reliability_harness import Figures, TcpProxy, service_env, serving_variant
from support.service_process import Service

from service.redis.core import Keys

KEYS = {name: f"sec-{name}-{uuid.uuid4().hex[:12]}" for name in
        ("matrix-read", "logs-read", "rate-a", "rate-b", "rate-down", "erase-read")}
ADMIN_KEYS = {name: f"sec-{name}-{uuid.uuid4().hex[:12]}" for name in ("matrix-admin", "erase-admin")}
WINDOW = 2
PER_WINDOW = 20  # RATE_LIMIT_PER_MINUTE 600 over a 2 s window
EVENT = {"client_id": "c1", "item_id": "mug", "type": "view", "timestamp": "2024-05-01T10:00:00Z"}


@dataclass
class Secured:
    service: Service
    proxy: TcpProxy
    redis_url: str
    state: Path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str, redis_server: RedisServer) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("security")
    proxy = TcpProxy(redis_server.port).up()  # so Redis can be made unreachable for this service alone
    name = f"crm-security-{uuid.uuid4().hex[:8]}"
    redis_url = f"redis://127.0.0.1:{proxy.port}/8"
    env = service_env(root, mlflow_server, name, redis_url, API_KEYS=",".join(KEYS.values()),
                      ADMIN_API_KEYS=",".join(ADMIN_KEYS.values()), RATE_LIMIT_PER_MINUTE="600",
                      RATE_LIMIT_WINDOW_SECONDS=str(WINDOW), LOG_LEVEL="DEBUG")
    try:
        with serving_variant(root, env, "security", mlflow_server, name) as (service, _):
            yield Secured(service, proxy, f"{redis_server.url.rsplit('/', 1)[0]}/8", root / "state")
    finally:
        proxy.down()


def _call(base: str, method: str, path: str, headers: dict[str, str]) -> requests.Response:
    body: Any = None
    if path.endswith("/cart/suggestions"):
        body = {"items": ["coffee"], "client_id": "c2"}
    elif path.endswith("/events"):
        body = [EVENT]
    elif path.endswith("/reactions"):  # to an answer the same key got (with a wrong key, auth refuses first)
        answer = requests.get(f"{base}/v1/clients/matrix-client/suggestions", params={"kind": "cross_sell"},
                              headers=headers, timeout=20)
        shown = answer.json() if answer.status_code == 200 else {"recommendation_id": "0" * 32, "suggestions": []}
        body = {"recommendation_id": shown["recommendation_id"], "reaction": "clicked",
                "item_id": shown["suggestions"][0]["item_id"] if shown["suggestions"] else "coffee"}
    elif path.endswith("/tasks/{task_id}"):
        body = {"status": "done", "by": "matrix-manager"}
    params = {"from": "2026-11-01", "to": "2026-11-30"} if path.endswith("/reports/effect") else None
    path = path.replace("{client_id}", "matrix-client").replace("{item_id}", "coffee").replace("{task_id}", "matrix-task")
    return requests.request(method, base + path, json=body, params=params, headers=headers, timeout=20)


def test_every_v1_path_needs_a_key_and_admin_paths_an_admin_key(secured: Secured, figures: Figures) -> None:
    base = secured.service.base
    spec = requests.get(f"{base}/openapi.json", timeout=5).json()
    read, admin = KEYS["matrix-read"], ADMIN_KEYS["matrix-admin"]
    near_miss = read[:-1] + ("x" if read[-1] != "x" else "y")  # same length, last character wrong
    checked = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if not path.startswith("/v1"):
                assert operation["security"] == [] and operation.get("x-required-scope") is None, path
                continue
            scope = operation["x-required-scope"]
            assert scope in ("read", "admin") and {"401", "403", "429"} <= set(operation["responses"])
            missing = _call(base, method.upper(), path, {})
            assert missing.status_code == 401 and "Bearer" in missing.headers["WWW-Authenticate"], (path, missing.text)
            for wrong in ("nope", near_miss, read + "x", read[:-1], read.upper(), ""):
                assert _call(base, method.upper(), path, {"X-API-Key": wrong}).status_code in (401, 403), (path, wrong)
            own = read if scope == "read" else admin
            assert _call(base, method.upper(), path, {"Authorization": f"Bearer {own}"}).status_code < 300, path
            assert _call(base, method.upper(), path, {"X-API-Key": admin}).status_code < 300, path
            as_read = _call(base, method.upper(), path, {"X-API-Key": read})
            assert as_read.status_code == (403 if scope == "admin" else as_read.status_code) and as_read.status_code != 401
            checked += 1
    unknown = requests.get(f"{base}/v1/nowhere/at/all", timeout=5)
    wrong_method = requests.put(f"{base}/v1/events", timeout=5)
    assert unknown.status_code == 401 and wrong_method.status_code == 401  # no key: nothing about the paths
    assert requests.get(f"{base}/v1/nowhere/at/all", headers={"X-API-Key": read}, timeout=5).status_code == 404
    assert checked >= 6, f"only {checked} /v1 operations in the spec"  # suggestions, cart, similar, events, erase, reload
    figures.add("/v1 operations checked (no key, 6 wrong keys, read, admin, bearer)", checked, "all in the spec")

    from service.app import create_app
    from service.config import Settings
    from service.openapi import endpoint_of

    app = create_app(Settings.from_env({"MLFLOW_TRACKING_URI": "sqlite:///:memory:"}), watch=False)
    routes = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/v1")]
    unprotected = [rule.rule for rule in routes if getattr(endpoint_of(app.view_functions[rule.endpoint]), "auth",
                                                           "none") not in ("read", "admin")]
    assert routes and not unprotected
    assert len(routes) == checked  # the spec lists every /v1 route the app serves


def test_keys_are_compared_in_constant_time() -> None:
    """Checked in the code: every configured key goes through hmac.compare_digest, always all of
    them (no early exit), and no key is compared with == or `in` anywhere in service/auth.py."""
    tree = ast.parse((ROOT / "service" / "auth.py").read_text())
    matches = next(node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == "_matches")
    loop = next(node for node in ast.walk(matches) if isinstance(node, ast.For))
    calls = [ast.unparse(node.func) for node in ast.walk(loop) if isinstance(node, ast.Call)]
    assert "hmac.compare_digest" in calls
    assert not [node for node in ast.walk(loop) if isinstance(node, ast.Return | ast.Break)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            text = ast.unparse(node)
            assert "key" not in text.lower() or "None" in text, f"non-constant-time comparison: {text}"


def test_every_key_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check at run time: a key matching the first configured key, the last, or none
    makes exactly as many `hmac.compare_digest` calls, each over the full presented key."""
    import hmac

    from service import auth

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    keys = ("first-key-0123456789", "second-key-0123456789", "third-key-0123456789")
    for presented, expected in ((keys[0], True), (keys[2], True), ("nobody-0123456789", False), ("", False)):
        calls.clear()
        assert auth._matches(presented, keys) is expected
        assert len(calls) == len(keys)
        assert all(a == presented.encode() for a, _ in calls)


def test_keys_and_personal_data_never_reach_logs_or_redis(secured: Secured, figures: Figures) -> None:
    base = secured.service.base
    key, admin = KEYS["logs-read"], ADMIN_KEYS["matrix-admin"]
    wrong = f"wrong-secret-{uuid.uuid4().hex}"
    email, name = f"jane.{uuid.uuid4().hex[:6]}@example.com", f"Jane Doe {uuid.uuid4().hex[:6]}"
    requests.get(f"{base}/v1/clients/log-client/suggestions", headers={"X-API-Key": key, "X-Customer-Name": name},
                 timeout=5)
    requests.get(f"{base}/v1/clients/log-client/suggestions?api_key={key}&email={email}", timeout=5)
    requests.get(f"{base}/v1/clients/log-client/suggestions", headers={"Authorization": f"Bearer {wrong}"}, timeout=5)
    requests.post(f"{base}/v1/events", headers={"X-API-Key": key},
                  json=[{**EVENT, "client_id": "log-client", "email": email, "name": name}], timeout=5)
    requests.post(f"{base}/v1/events", headers={"X-API-Key": key, "User-Agent": name},
                  json=[{**EVENT, "client_id": "log-client", "type": "purchase", "price": 12.5}], timeout=5)
    requests.post(f"{base}/v1/cart/suggestions", headers={"X-API-Key": admin}, data=f'{{"items": ["{email}"', timeout=5)
    requests.delete(f"{base}/v1/clients/log-client", headers={"X-API-Key": admin}, timeout=5)
    with socket.create_connection(("127.0.0.1", secured.service.port), timeout=5) as sock:  # gunicorn refuses it
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\x00: " + key.encode() + b"\r\n\r\n")
        refused = sock.recv(200)
    time.sleep(0.5)
    log = secured.service.log_text()
    secrets = [*KEYS.values(), *ADMIN_KEYS.values(), wrong, email, name]
    leaked = [secret for secret in secrets if secret in log]
    with redis.Redis.from_url(secured.redis_url, decode_responses=True) as r:
        names = list(r.scan_iter(count=1000))
        stream = json.dumps(r.xrange(Keys("default").events))
    in_redis = [secret for secret in secrets if any(secret in n for n in names) or secret in stream]
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    fields = sorted({field for entry in lines for field in entry})
    figures.add("log lines / fields seen", f"{len(lines)} / {len(fields)}", "every field an id, status or timing")
    figures.add("keys, e-mail, name found in logs / Redis", f"{len(leaked)} / {len(in_redis)}", "0 / 0")

    assert lines and not leaked and not in_redis, (leaked, in_redis)
    assert refused.startswith(b"HTTP/1.1 400") and "ip=<redacted>" in log and "from ip=127" not in log
    assert set(fields) <= {"time", "level", "logger", "message", "pid", "request_id", "method", "path", "status",
                           "duration_ms", "cache", "erased", "model_version", "trigger", "previous", "operation",
                           "error", "stage", "timeout_seconds", "retry_in_seconds", "reason", "serving",
                           "stored_deleted", "older_than", "purged",
                           "writer_pid", "parent_pid", "consumer", "flushed", "batch_finished"}, fields


def _limited(base: str, key: str, count: int, threads: int = 8) -> list[requests.Response]:
    def one(n: int) -> requests.Response:
        return requests.get(f"{base}/v1/clients/rate-{n}/suggestions?kind=upsell", headers={"X-API-Key": key},
                            timeout=10)  # a new connection each: both workers answer

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


def test_rate_limit_per_key_across_workers_with_retry_after(secured: Secured, figures: Figures) -> None:
    base = secured.service.base
    started = time.monotonic()
    answers = _limited(base, KEYS["rate-a"], PER_WINDOW + 10)
    other = _limited(base, KEYS["rate-b"], 5, threads=2)
    burst = time.monotonic() - started
    refused = [a for a in answers if a.status_code == 429]
    allowed = [a for a in answers if a.status_code == 200]
    retry_after = max(int(a.headers["Retry-After"]) for a in refused) if refused else None
    if retry_after is not None:
        time.sleep(retry_after + 0.2)
    again = _limited(base, KEYS["rate-a"], 1)[0]
    log = [json.loads(line) for line in secured.service.log_text().splitlines() if line.startswith("{")]
    pids = {entry["pid"] for entry in log if entry.get("message") == "request" and "/rate-" in entry.get("path", "")}
    figures.add("one key: allowed / refused 429 in one window", f"{len(allowed)} / {len(refused)}",
                f"{PER_WINDOW} / 10 (burst took {burst:.2f} s)")
    figures.add("workers that answered the burst", len(pids), "2: the count is shared in Redis")
    figures.add("another key meanwhile / the key after Retry-After", f"{[o.status_code for o in other]} / "
                f"{again.status_code}", "200s / 200")

    assert burst < WINDOW - 0.3, "the burst must fit in one window for the count to be exact"
    assert len(allowed) == PER_WINDOW and len(refused) == 10
    assert len(pids) == 2
    for answer in refused:
        body = answer.json()
        assert answer.headers["Content-Type"] == "application/problem+json" and body["type"].endswith("rate-limited")
        assert 1 <= int(answer.headers["Retry-After"]) <= WINDOW
    assert all(a.headers["X-RateLimit-Limit"] == str(PER_WINDOW) for a in allowed)
    assert [o.status_code for o in other] == [200] * 5
    assert again.status_code == 200


def test_rate_limit_fails_open_and_counts_it_when_redis_is_unreachable(secured: Secured, figures: Figures) -> None:
    base = secured.service.base
    before = secured.service.metric("crm_rate_limit_fail_open_total")
    secured.proxy.down()
    try:
        answers = _limited(base, KEYS["rate-down"], PER_WINDOW + 10)
    finally:
        secured.proxy.up()
    counted = secured.service.metric("crm_rate_limit_fail_open_total") - before
    figures.add("Redis unreachable: answered 200 / counted fail-open", f"{sum(a.status_code == 200 for a in answers)}"
                f" of {len(answers)} / {int(counted)}", f"{len(answers)} / {len(answers)}")
    assert [a.status_code for a in answers] == [200] * len(answers)
    assert counted == len(answers)
    wait_until(lambda: requests.post(f"{base}/v1/events", json=[EVENT], headers={"X-API-Key": KEYS["rate-down"]},
                                     timeout=5).status_code == 202, timeout=10)  # Redis is back for what follows


def test_erased_client_is_gone_from_redis_and_from_the_retrained_model(
        secured: Secured, slice_dir: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch, figures: Figures) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    base = secured.service.base
    read, admin = {"X-API-Key": KEYS["erase-read"]}, {"X-API-Key": ADMIN_KEYS["erase-admin"]}
    # Redis back from the tests before (the breaker closed): the events must reach it, not only the store
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=5).json()["redis"] == "up", timeout=15)
    busiest = pd.read_parquet(slice_dir / "transactions.parquet")["client_id"].value_counts().index[:2]
    gone, stays = str(busiest[0]), str(busiest[1])
    events = [{**EVENT, "client_id": client, "type": kind} for client in (gone, stays) for kind in ("view", "purchase")]
    posted = requests.post(f"{base}/v1/events", json=events, headers=read, timeout=5)
    assert posted.status_code == 202 and posted.json()["live"], posted.text
    assert requests.get(f"{base}/v1/clients/{gone}/suggestions", headers=read, timeout=5).status_code == 200
    assert requests.post(f"{base}/v1/cart/suggestions", json={"client_id": gone, "items": ["coffee"]}, headers=read,
                         timeout=5).status_code == 200
    assert requests.delete(f"{base}/v1/clients/{gone}", timeout=5).status_code == 401
    assert requests.delete(f"{base}/v1/clients/{gone}", headers=read, timeout=5).status_code == 403
    erased = requests.delete(f"{base}/v1/clients/{gone}", headers=admin, timeout=5)
    assert erased.status_code == 200, erased.text
    counts = erased.json()
    keys = Keys("default")
    with redis.Redis.from_url(secured.redis_url, decode_responses=True) as r:
        left = [fields["client_id"] for _, fields in r.xrange(keys.events) if fields["client_id"] in (gone, stays)]
        remains = r.exists(keys.answers(gone), keys.recent(gone))
        # the generation is bumped, not deleted: an answer computed before the erasure is then not cached
        generation = r.get(keys.generation(gone)), r.ttl(keys.generation(gone))
        in_set = r.sismember("erasures", gone)
    record = [json.loads(line) for line in (secured.state / "erasures.jsonl").read_text().splitlines()]
    assert counts["events_deleted"] == 2 and counts["cached_answers_deleted"] >= 2 and counts["recent_purchases_deleted"] == 1
    assert left == [stays, stays] and remains == 0 and in_set
    assert int(generation[0]) >= 2 and generation[1] > 0  # the purchase's bump, then the erasure's; it expires
    assert gone in {entry["client_id"] for entry in record}

    name = f"crm-erasure-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "MODEL_NAME": name, "MLFLOW_EXPERIMENT": name,
           "ERASURES_FILE": str(secured.state / "erasures.jsonl"), "TRAIN_THREADS": "1", "REDIS_URL": "",
           "EVENTS_DB_URL": f"sqlite:///{secured.state / 'events.db'}"}
    started = time.monotonic()
    trained = subprocess.run([sys.executable, "-m", "training", "train", "--data", str(slice_dir), "--no-tune",
                              "--promote", "--max-baskets", "300"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=900)
    seconds = time.monotonic() - started
    assert trained.returncode == 0, (trained.stdout + trained.stderr)[-3000:]
    import mlflow.pyfunc

    mlflow.set_tracking_uri(mlflow_server)
    recommender = mlflow.pyfunc.load_model(f"models:/{name}@champion").unwrap_python_model().recommender
    figures.add("erasure: events / cached answers / recent purchases dropped",
                f"{counts['events_deleted']} / {counts['cached_answers_deleted']} / {counts['recent_purchases_deleted']}")
    figures.add("retrained model knows the erased / another client",
                f"{recommender.knows_client(gone)} / {recommender.knows_client(stays)}", f"False / True ({seconds:.0f} s)")
    assert re.search(r"excluding \d+ erased clients", trained.stdout + trained.stderr)
    assert recommender.knows_client(gone) is False
    assert recommender.knows_client(stays) is True
