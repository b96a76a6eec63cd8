"""CPU per request of the hot endpoints, with the fast path (service/fast_path.py) and without.

    python tests/bench/bench_fast_path.py --tracking-uri URI --model-name NAME --data data/full
    python tests/bench/bench_fast_path.py --data data/sample          # trains one first (--no-tune)

Two apps in one process, built by the app factory as gunicorn's workers build them, one with
FAST_PATH=false, over our own redis-server (append-only) and SQLite event stores, with auth, the
rate limit, metrics, the access log and exposure logging on. Each request's WSGI environ is built
beforehand and the app is called directly (no HTTP server, no test client), timed by the CPU clock
of this process: the neighbours' load does not count, so the ratios hold on a shared machine where
wrk's do not. The order is A B B A per endpoint. The HTTP server's own cost (gunicorn parses the
request and writes the answer, the same for every endpoint) is left out: `bench_servers.py`
measures it with the rest.
"""
from __future__ import annotations

import argparse
import io
import random
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(ROOT), str(ROOT / "tests")]

from in_process import add_model_arguments, in_process_apps  # noqa: E402
from serving_requests import Endpoint, build_request, load_pools  # noqa: E402

KEY = "bench-key-0123456789"
ENDPOINTS = (Endpoint("floor"), Endpoint("cold", "cross_sell"), Endpoint("warm", "cross_sell"),
             Endpoint("cart", cart_items=5))


def environ(path: str, body: bytes | None) -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    headers = {"X-API-Key": KEY}
    built = EnvironBuilder(path=path.partition("?")[0], query_string=path.partition("?")[2], headers=headers,
                           method="POST" if body is not None else "GET", data=body,
                           content_type="application/json" if body is not None else None).get_environ()
    built["REMOTE_ADDR"] = "127.0.0.1"
    return built


def cpu_ms(app: Any, environs: list[dict[str, Any]]) -> float:
    """CPU ms per request, every answer checked to be a 200."""
    statuses: list[str] = []

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        statuses.append(status)

    started = time.process_time()
    for built in environs:
        env = dict(built)
        if built.get("_body") is not None:
            env["wsgi.input"] = io.BytesIO(built["_body"])
        b"".join(app(env, start_response))
    spent = time.process_time() - started
    assert all(status.startswith("200") for status in statuses), {s for s in statuses if not s.startswith("200")}
    return spent * 1000 / len(environs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arguments(parser, ROOT / "data" / "sample")
    parser.add_argument("--requests", type=int, default=2000, help="per endpoint, mode and pass")
    args = parser.parse_args(argv)

    modes = {"true": {"FAST_PATH": "true"}, "false": {"FAST_PATH": "false"}}
    with in_process_apps(args, "bench-fast-path-", KEY, modes) as (apps, _):
        pools, rng = load_pools(args.data), random.Random(0)
        results: dict[str, dict[str, list[float]]] = {}
        for ep in ENDPOINTS:
            batches = []
            for _ in range(5):  # a warm-up, then A B B A, each pass its own requests (cold ones must miss)
                batch = []
                for n in range(args.requests):
                    path, body = build_request(ep, pools, rng, n)
                    built = environ(path, body)
                    built["_body"] = body
                    batch.append(built)
                batches.append(batch)
            for app in apps.values():  # warm answers cached, scripts loaded
                cpu_ms(app, batches[0][:60])
            for mode, batch in zip(("true", "false", "false", "true"), batches[1:], strict=True):
                results.setdefault(ep.name, {}).setdefault(mode, []).append(cpu_ms(apps[mode], batch))
        floor = {mode: sum(results[ENDPOINTS[0].name][mode]) / 2 for mode in apps}
        print("| endpoint | fast path: CPU ms | × its floor | Flask only: CPU ms | × its floor | saved |")
        print("|---|---|---|---|---|---|")
        for ep in ENDPOINTS:
            fast, slow = (sum(results[ep.name][mode]) / 2 for mode in ("true", "false"))
            print(f"| {ep.name} | {fast:.3f} | {floor['true'] / fast:.2f} | {slow:.3f} | {floor['false'] / slow:.2f} "
                  f"| {1 - fast / slow:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
