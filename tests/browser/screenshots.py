"""Screenshots of every screen, for docs/screens/ (run by hand; not a test):

    PYTHONPATH=$PWD .venv/bin/python tests/browser/screenshots.py [--out docs/screens]

Starts its own redis-server, an MLflow store with the catalogue double, the service under
gunicorn and a shop site on another origin, posts a few answers and purchases (made-up data:
the figures on the dashboard mean nothing), drives headless Chromium through each page
(signing in, reacting on a card) and saves one PNG per page.

With `--tracking-uri URI --model-name NAME` (a model trained on real data, e.g. the demo's
`var/mlflow.db` and `crm-recommender`), it also shoots the manager's task list and the card of its
first client, whose value figures, changes and tasks only a trained model has (tasks.png,
client-card-value.png), from the service with AUTH_DISABLED as `make run` serves it.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from support.browser import screens_stack, start_chromium  # noqa: E402
from support.processes import RedisServer, free_port  # noqa: E402
from support.service_process import ADMIN_KEY, READ, Service  # noqa: E402


def shoot(browser, path: Path, height: int | None = None) -> None:
    full = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(max(height or full, 600), 2000))
    time.sleep(0.3)
    browser.save_screenshot(str(path))
    print(f"saved {path}")


def shoot_trained(out: Path, tracking_uri: str, model_name: str) -> None:
    """The task list and the first task's client card, on a trained model."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp)
        redis.start()
        browser = start_chromium()
        try:
            env = {"MLFLOW_TRACKING_URI": tracking_uri, "MODEL_NAME": model_name, "REDIS_URL": redis.url,
                   "AUTH_DISABLED": "true", "MODEL_CACHE_DIR": str(tmp / "cache"), "WORKERS": "1",
                   "EVENTS_DB_URL": f"sqlite:///{tmp}/events.db", "SERVICE_STATE_DIR": str(tmp / "state")}
            with Service(tmp, env, "trained").start() as service:
                browser.get(f"{service.base}/app/tasks")
                WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#task-list tbody tr"))
                shoot(browser, out / "tasks.png", 1100)
                browser.find_element(By.CSS_SELECTOR, "#task-list tbody tr a").click()
                WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "client-value"))
                shoot(browser, out / "client-card-value.png")
        finally:
            browser.quit()
            redis.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("docs/screens"))
    parser.add_argument("--tracking-uri", help="a store with a trained model: also shoot the tasks and a card with value")
    parser.add_argument("--model-name", default="crm-recommender")
    parser.add_argument("--only-trained", action="store_true", help="only the trained model's screens")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.tracking_uri:
        shoot_trained(out, args.tracking_uri, args.model_name)
    if args.only_trained:
        return 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        shop_port = free_port()
        browser = start_chromium()
        try:
            with screens_stack(tmp, shop_port, CONTROL_SHARE="0.3") as (service, shop):
                base = service.base
                clients = ("c1", "c2", "c3", *(f"v{i}" for i in range(24)))
                for client in clients:
                    requests.get(f"{base}/v1/clients/{client}/suggestions", headers=READ, timeout=5)
                now = datetime.now(timezone.utc).isoformat()
                purchases = [{"client_id": client, "item_id": item, "type": "purchase", "timestamp": now,
                              "price": price} for n, client in enumerate(clients)
                             for item, price in (("coffee", 9.0), ("mug", 6.0), ("machine", 120.0))[: 1 + n % 3]]
                requests.post(f"{base}/v1/events", json={"events": purchases}, headers=READ, timeout=5)
                browser.get(f"{base}/app/sign-in?next=/app/clients")
                browser.find_element(By.ID, "name").send_keys("Ana Lopez")
                shoot(browser, out / "sign-in.png", 600)
                browser.find_element(By.ID, "key").send_keys(ADMIN_KEY)
                browser.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
                WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/app/clients"))
                browser.find_element(By.ID, "q").send_keys("c1")
                shoot(browser, out / "client-search.png", 600)
                browser.get(f"{base}/app/clients/c1")
                first = browser.find_elements(By.CSS_SELECTOR, "li.suggestion")[0]
                first.find_element(By.CSS_SELECTOR, "button.reject-button").click()
                WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "done"))
                shoot(browser, out / "client-card.png")
                for client_id in ("c2", "c3"):
                    browser.get(f"{base}/app/clients/{client_id}")
                    browser.find_elements(By.CSS_SELECTOR, "button.accept")[0].click()
                    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "done"))
                browser.get(f"{base}/app/demo-shop")
                WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "crm-widget")
                                                 .get_attribute("data-crm-state") == "ready")
                shoot(browser, out / "demo-shop.png")
                browser.get(shop.origin + "/")
                WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "crm-widget")
                                                 .get_attribute("data-crm-state") == "ready")
                shoot(browser, out / "widget-other-origin.png")
                time.sleep(3)  # the drainer moves the answers' exposures into the event store
                browser.get(f"{base}/app/effect")
                WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "variants"))
                shoot(browser, out / "effect-dashboard.png")
                browser.get(f"{base}/docs/interactive")
                WebDriverWait(browser, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 5)
                shoot(browser, out / "api-docs-interactive.png", 1400)
        finally:
            browser.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
