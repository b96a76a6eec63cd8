"""The service as real processes over HTTP: gunicorn with two workers following the alias, and
the demo (`python -m service.run_demo`) starting its own redis-server and stopping everything it
started. Fixtures (model name, first version, environment) are in tests/integration/conftest.py.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from support.processes import ROOT, alive, descendants, start_process, wait_until
from support.service_model_double import register_double
from support.service_process import READ, Service

from scoring.contract import MODEL_UPDATES_CHANNEL


@pytest.mark.slow
def test_gunicorn_serves_over_http_and_every_worker_follows_the_alias(
        tmp_path: Path, service_env: dict[str, str], first_version: str, mlflow_server: str,
        model_name: str, redis_url: str) -> None:
    service = Service(tmp_path, {**service_env, "WORKERS": "2"}, "gunicorn")
    base = service.base
    with service.start(ready=False, timeout=60):
        service.wait_serving(first_version, timeout=90)

        response = requests.get(f"{base}/v1/clients/c1/suggestions?kind=cross_sell", headers={**READ, "X-Request-ID": "gunicorn-1"},
                                timeout=5)
        assert response.status_code == 200 and response.headers["X-Request-ID"] == "gunicorn-1"
        assert "filters" in [s["item_id"] for s in response.json()["suggestions"]]
        purchase = [{"client_id": "c1", "item_id": "filters", "type": "purchase", "timestamp": "2024-05-02T09:00:00Z"}]
        assert requests.post(f"{base}/v1/events", json=purchase, headers=READ, timeout=5).status_code == 202
        for _ in range(6):  # whichever worker answers, the purchase counts
            answer = requests.get(f"{base}/v1/clients/c1/suggestions?kind=cross_sell", headers=READ, timeout=5).json()
            assert "filters" not in [s["item_id"] for s in answer["suggestions"]]
        problem = requests.get(f"{base}/v1/clients/c1/suggestions?limit=0", headers=READ, timeout=5)
        assert problem.status_code == 400 and problem.headers["Content-Type"] == "application/problem+json"

        second = register_double(mlflow_server, model_name, tag="second")
        with redis.Redis.from_url(redis_url) as r:
            r.publish(MODEL_UPDATES_CHANNEL, json.dumps({"name": model_name, "alias": "champion", "version": second}))
        service.wait_serving(second, timeout=60)

        metrics = requests.get(f"{base}/metrics", timeout=5).text
        assert "crm_http_requests_total" in metrics and "crm_model_version" in metrics
        assert requests.get(f"{base}/openapi.json", timeout=5).json()["openapi"] == "3.1.0"
    log = service.log_text()
    request_lines = [json.loads(line) for line in log.splitlines() if line.startswith("{") and '"request"' in line]
    assert any(entry.get("request_id") == "gunicorn-1" for entry in request_lines)


def _ready_model(base: str) -> dict[str, Any] | None:
    """The model /readyz names, or None (not ready yet, or too busy to answer in time)."""
    try:
        return requests.get(f"{base}/readyz", timeout=5).json().get("model")
    except requests.RequestException:
        return None


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_run_demo_starts_its_own_redis_and_stops_everything_it_started(
        tmp_path: Path, service_env: dict[str, str], first_version: str, stop_signal: signal.Signals) -> None:
    workdir = tmp_path / "demo"  # run_demo keeps its redis files under ./var
    workdir.mkdir()
    env = {**service_env, "WORKERS": "1", "REDIS_URL": "", "API_KEYS": "", "ADMIN_API_KEYS": "",
           "PYTHONPATH": str(ROOT)}  # this checkout's code, from another directory
    demo = Service(tmp_path, env, "demo", demo=True, cwd=workdir)
    base, port = demo.base, demo.port
    with demo.start(ready=False, timeout=90):
        ready = wait_until(lambda: _ready_model(base), timeout=90)
        assert ready["version"] == first_version
        assert requests.get(f"{base}/readyz", timeout=5).json()["redis"] == "up"
        event = [{"client_id": "c1", "item_id": "mug", "type": "view", "timestamp": "2024-05-01T10:00:00Z"}]
        assert requests.post(f"{base}/v1/events", json=event, timeout=5).status_code == 202
        assert requests.get(f"{base}/v1/clients/c1/suggestions", timeout=5).status_code == 200
        assert demo.proc is not None
        started = descendants(demo.proc.pid)
        assert "redis-server" in started.values() and sum("gunicorn" in n or "python" in n
                                                          for n in started.values()) >= 2, started
        os.kill(demo.proc.pid, stop_signal)  # the demo alone, as a terminal's Ctrl-C or `kill` reaches it
        status = demo.proc.wait(timeout=60)
    left = {pid: name for pid, name in started.items() if alive(pid)}
    assert left == {}, f"still running after the demo stopped: {left}"
    assert status == 128 + stop_signal
    output = demo.log_text()
    assert "started redis-server" in output and f"curl -s http://127.0.0.1:{port}/readyz" in output
    assert "stopping gunicorn" in output and "stopping redis-server" in output
    assert (workdir / "var" / "redis").is_dir()


@pytest.mark.slow
def test_run_demo_stops_its_redis_when_gunicorn_cannot_start(
        tmp_path: Path, service_env: dict[str, str], first_version: str) -> None:
    import socket

    workdir = tmp_path / "demo"
    workdir.mkdir()
    with socket.socket() as taken:  # the port is in use: gunicorn gives up and exits
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        demo = Service(tmp_path, {**service_env, "WORKERS": "1", "REDIS_URL": "", "PYTHONPATH": str(ROOT)},
                       "demo", demo=True, cwd=workdir)
        demo.port = taken.getsockname()[1]
        demo.env["PORT"] = str(demo.port)
        demo.proc = start_process(demo.command, demo.env, demo.log, cwd=workdir)
        try:
            redis_pids = wait_until(lambda: [pid for pid, name in descendants(demo.proc.pid).items()
                                             if name == "redis-server"], timeout=60)
            status = demo.proc.wait(timeout=60)
        finally:
            demo.stop()
    assert status != 0
    assert not [pid for pid in redis_pids if alive(pid)]
    assert "stopping redis-server" in demo.log_text()
