"""Browser tests' helpers: Debian's headless Chromium through the system chromedriver (nothing is
downloaded at run time), shop sites on origins of their own, and the reactions a service stored."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService

from eventstore import EventStore
from support.processes import RedisServer, free_port
from support.service_model_double import register_double
from support.service_process import ADMIN_KEY, READ_KEY, Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--window-size=1280,1000")
PUBLISHABLE_KEY = "pk_browser_0123456789"
WIDGET_SECRET = "browser-widget-secret-0123"


def start_chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    return driver


class ShopSite:
    """A shop's page on an origin of its own (127.0.0.1:<port>) that embeds the widget from `service`."""

    def __init__(self, service_base: str, key: str = PUBLISHABLE_KEY, port: int | None = None) -> None:
        self.port = port or free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title></head><body>'
                f'<h1 id="shop-title">A shop on {self.origin}</h1>'
                f'<div id="crm-widget" data-cart-items="coffee"></div>'
                f'<script src="{service_base}/widget.js" data-key="{key}" data-currency="EUR" defer></script>'
                f'</body></html>').encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Security-Policy", f"script-src {service_base}; connect-src {service_base}")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ShopSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def stored_reactions(events_url: str) -> pd.DataFrame:
    """The reactions the service committed to its event store (read from the database itself)."""
    store = EventStore(events_url)
    try:
        now = datetime.now(timezone.utc)
        return store.reactions_between("default", now - timedelta(hours=1), now + timedelta(hours=1))
    finally:
        store.close()



@contextmanager
def screens_stack(tmp: Path, shop_port: int, **env: str) -> Iterator[tuple[Service, ShopSite]]:
    """Redis, an MLflow store with the catalogue double, the service under gunicorn (one worker)
    allowing a shop site on `shop_port`, and that site: for scripts (screenshots, the widget bench)."""
    (tmp / "redis").mkdir(exist_ok=True)
    redis = RedisServer(tmp / "redis")
    redis.start()
    try:
        tracking = f"sqlite:///{tmp}/mlflow.db"
        register_double(tracking, "crm-screens", tag="screens")
        service_env = {"MLFLOW_TRACKING_URI": tracking, "MODEL_NAME": "crm-screens", "REDIS_URL": redis.url,
                       "API_KEYS": READ_KEY, "ADMIN_API_KEYS": ADMIN_KEY, "PUBLISHABLE_KEYS": PUBLISHABLE_KEY,
                       "ALLOWED_ORIGINS": f"http://127.0.0.1:{shop_port}", "MODEL_CACHE_DIR": str(tmp / "cache"),
                       "EVENTS_DB_URL": f"sqlite:///{tmp}/events.db", "SERVICE_STATE_DIR": str(tmp / "state"),
                       "WORKERS": "1", **env}
        with Service(tmp, service_env, "screens").start() as service, \
                ShopSite(service.base, port=shop_port) as shop:
            yield service, shop
    finally:
        redis.stop()
