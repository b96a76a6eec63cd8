"""Where a suggestion request's CPU goes: cProfile over many requests in one process, by package.

    python tests/bench/profile_request.py --tracking-uri URI --model-name NAME   # a registered model
    python tests/bench/profile_request.py --data data/sample                     # trains one first (--no-tune)

The service is built in-process (the app factory, as gunicorn's workers build it) with auth on, the
rate limit on, metrics, the access log and exposure logging on, over our own redis-server (with the
append-only file production uses) and a SQLite event store; requests go through Flask's test
client, so the figures leave out the HTTP server and count everything of ours. Cold requests each
have their own cache key (a known client and a real item excluded, as in the serving benchmark);
warm ones ask 50 clients again. The CPU clock is used, so the neighbours' load does not count.
The summary (ms of CPU per request by package, the top functions) is what docs/benchmarks.md
quotes.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(ROOT), str(ROOT / "tests")]

from in_process import add_model_arguments, in_process_apps  # noqa: E402
from serving_requests import Endpoint, build_request, load_pools  # noqa: E402

KEY = "profile-key-0123456789"
GROUPS = ("flask", "werkzeug", "pydantic", "pydantic_core", "logging", "prometheus_client", "redis", "json",
          "scoring", "service", "eventstore", "numpy", "uuid", "hashlib")


def group_of(filename: str) -> str:
    """The package a profiled function belongs to (ours by folder, third parties by site-packages)."""
    path = filename.replace("\\", "/")
    if "site-packages/" in path:
        top = path.split("site-packages/", 1)[1].split("/", 1)[0]
        return top if top in GROUPS else "other third-party"
    for ours in ("scoring", "service", "eventstore"):
        if f"/{ours}/" in path and str(ROOT) in path:
            return ours
    stem = Path(path).parts[-2] if len(Path(path).parts) > 1 else path
    name = Path(path).stem
    for library in ("json", "logging"):
        if f"/{library}/" in path or stem == library:
            return library
    if name in ("uuid", "hashlib"):
        return name
    return "python (stdlib, builtins)"


def profile(client: Any, paths: list[str]) -> tuple[float, dict[str, float], pstats.Stats]:
    """Send `paths` in order under cProfile (CPU clock): (ms per request, ms per request by group, stats)."""
    profiler = cProfile.Profile(time.process_time)
    started = time.process_time()
    profiler.enable()
    for path in paths:
        response = client.get(path, headers={"X-API-Key": KEY})
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
    profiler.disable()
    total_ms = (time.process_time() - started) * 1000 / len(paths)
    stats = pstats.Stats(profiler)
    by_group: dict[str, float] = defaultdict(float)
    for (filename, _, _), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        by_group[group_of(filename)] += own * 1000 / len(paths)
    return total_ms, dict(by_group), stats


def top_functions(stats: pstats.Stats, requests: int, count: int = 12) -> list[str]:
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:count]  # type: ignore[attr-defined]
    return [f"  {own * 1e6 / requests:8.1f} us  {Path(filename).name}:{line} {name}"
            for (filename, line, name), (_, _, own, _, _) in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_arguments(parser, ROOT / "data" / "sample")
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--kind", default="cross_sell")
    parser.add_argument("--no-fast-path", action="store_true", help="FAST_PATH=false: Flask alone in front")
    args = parser.parse_args(argv)

    fast_path = "false" if args.no_fast_path else "true"
    with in_process_apps(args, "profile-request-", KEY, {"profile": {"FAST_PATH": fast_path}}) as (apps, _):
        pools, rng = load_pools(args.data), random.Random(0)
        cold = [build_request(Endpoint("cold", args.kind), pools, rng, n)[0] for n in range(args.requests + 20)]
        warm = [build_request(Endpoint("warm", args.kind), pools, rng, n)[0] for n in range(args.requests)]
        client = apps["profile"].test_client()
        for path in warm[:50] + cold[:20]:  # fill the warm answers; first calls load scripts
            client.get(path, headers={"X-API-Key": KEY})
        floor_ms, floor_groups, _ = profile(client, ["/healthz"] * args.requests)
        for label, paths in (("cold", cold[20:]), ("warm", warm)):
            total, groups, stats = profile(client, paths)
            print(f"== {label} {args.kind}: {total:.3f} ms of CPU per request ({len(paths)} requests; "
                  f"/healthz: {floor_ms:.3f} ms) ==")
            for group, ms in sorted(groups.items(), key=lambda item: -item[1]):
                if ms >= 0.005:
                    print(f"  {group:<28} {ms:7.3f} ms")
            print(" top functions by own time:")
            print("\n".join(top_functions(stats, len(paths))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
