"""Fixtures of the browser tests: headless Chromium (support/browser.py) and the real service under
gunicorn on real Redis with the registered catalogue double, allowing one shop origin.

A machine where Chromium cannot start FAILS these tests (`make test` installs chromium and
chromium-driver with apt when missing).
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from selenium import webdriver
from support.browser import CHROMEDRIVER, CHROMIUM, PUBLISHABLE_KEY, WIDGET_SECRET, start_chromium
from support.processes import RedisServer, free_port
from support.service_model_double import register_double
from support.service_process import ADMIN_KEY, READ_KEY, Service


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    try:
        driver = start_chromium()
    except Exception as exc:  # noqa: BLE001 - any reason the browser cannot start is a failure
        pytest.fail(f"headless Chromium could not start ({CHROMIUM}, {CHROMEDRIVER}): {exc}")
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def live_service(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> Iterator[Service]:
    """The real service under gunicorn (one worker: quick to start), allowing one shop origin.

    It has a redis-server of its own: it lives for the whole session, and its exposure writer would
    otherwise drain the exposures other tests buffer in the shared server (same tenant, same stream)
    into its own event store."""
    tmp = tmp_path_factory.mktemp("browser-service")
    redis_server = RedisServer(tmp_path_factory.mktemp("browser-redis"))
    redis_server.start()
    name = f"crm-browser-{uuid.uuid4().hex[:8]}"
    register_double(mlflow_server, name, tag="browser")
    allowed = free_port()
    env = {"MLFLOW_TRACKING_URI": mlflow_server, "MODEL_NAME": name, "REDIS_URL": redis_server.url,
           "API_KEYS": READ_KEY, "ADMIN_API_KEYS": ADMIN_KEY, "PUBLISHABLE_KEYS": PUBLISHABLE_KEY,
           "ALLOWED_ORIGINS": f"http://127.0.0.1:{allowed}", "WIDGET_TOKEN_SECRET": WIDGET_SECRET,
           "MODEL_CACHE_DIR": str(tmp / "model-cache"), "EVENTS_DB_URL": f"sqlite:///{tmp}/events.db",
           "SERVICE_STATE_DIR": str(tmp / "state"), "WORKERS": "1", "CONTROL_SHARE": "0",
           "RELOAD_POLL_SECONDS": "60"}
    service = Service(tmp, env, "browser-service")
    service.allowed_port = allowed  # type: ignore[attr-defined]
    service.events_url = env["EVENTS_DB_URL"]  # type: ignore[attr-defined]
    try:
        with service.start():
            yield service
    finally:
        redis_server.stop()


