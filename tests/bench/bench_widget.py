"""The cart widget in headless Chromium: time from its request to its first suggestions drawn.

    PYTHONPATH=$PWD .venv/bin/python tests/bench/bench_widget.py [--renders 30] [--out var/bench/widget.json]

A shop page on another origin (CORS, a publishable key) loads /widget.js from the real service
under gunicorn with real Redis and the catalogue double; the widget stamps each answer's time from
the request to the drawn block on its target (`data-crm-ms`). The first render pays the cold
connection and the preflight; the rest are CRMWidget.render() calls with the cart changing (cache
misses: a new cart each time). Reported: first, median and 95th percentile.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from support.browser import screens_stack, start_chromium  # noqa: E402
from support.processes import free_port  # noqa: E402

CARTS = [["coffee"], ["machine"], ["milk"], ["mug"], ["filters"], ["coffee", "mug"], ["machine", "coffee"],
         ["milk", "filters"], ["coffee", "milk"], ["mug", "filters"]]


def ready(browser, previous: str | None) -> str | None:
    target = browser.find_element(By.ID, "crm-widget")
    stamp = target.get_attribute("data-crm-ms")
    return stamp if target.get_attribute("data-crm-state") == "ready" and stamp and stamp != previous else None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--renders", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("var/bench/widget.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        browser = start_chromium()
        try:
            with screens_stack(Path(tmp_name), free_port(), CACHE_TTL_SECONDS="0") as (_, shop):
                browser.get(shop.origin + "/")
                first = int(WebDriverWait(browser, 20).until(lambda d: ready(d, None)))
                times: list[int] = []
                for index in range(args.renders):
                    browser.execute_script("document.getElementById('crm-widget').removeAttribute('data-crm-ms');"
                                           "window.CRMWidget.render({items: arguments[0]});", CARTS[index % len(CARTS)])
                    times.append(int(WebDriverWait(browser, 20).until(lambda d: ready(d, None))))
        finally:
            browser.quit()
    times.sort()
    result = {"first_ms": first, "median_ms": statistics.median(times),
              "p95_ms": times[min(len(times) - 1, int(0.95 * len(times)))], "renders": len(times)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
