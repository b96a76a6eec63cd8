"""Which HTTP server: gunicorn's threaded worker (ours), gunicorn's sync worker, and granian (WSGI).

    python tests/bench/bench_servers.py --tracking-uri URI --model-name NAME --data DIR   # a registered model
    python tests/bench/bench_servers.py --data data/sample --seconds 4                  # trains one first

Each server serves the same app (`service:create_app()`), the same model, with 2 worker
processes, over one redis-server (append-only, as in production) and one SQLite event store, with
the rate limit, metrics, the access log and exposure logging on (auth off: wrk sends no key). For
each server, one after the other: the floor (`/healthz`), cross_sell cold and warm, a 5-item cart,
each at saturation (wrk) and at half that rate (open loop, p99), with the server's own floor
measured again just before each endpoint, as in `make bench`. Every ratio is to that server's own
floor; servers are compared on the same endpoints in one run.

What a server must keep to count (README, docs/reliability.md): slow clients cannot hold its
workers, SIGTERM drains gracefully, a killed worker is replaced, and Prometheus multi-process
metrics work. gunicorn's sync worker fails the first by design (a slow client holds a whole
worker); granian keeps the first three by its own settings but has no hook to mark a dead worker's
metrics, and does not run gunicorn.conf.py's hooks (the exposure writer starts in gunicorn's
post_worker_init). Those are stated beside the figures, not measured here.

`gunicorn gthread, FAST_PATH=false` is ours with Flask alone in front (no `service.fast_path`):
the fast path's gain, each stack against its own floor (the fast path answers `/healthz` too).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1]), str(HERE.parents[1] / "tests")]

from serving_measure import bench_endpoint  # noqa: E402
from serving_requests import Endpoint, load_pools  # noqa: E402
from serving_stack import RATE_LIMIT_PER_MINUTE, ROOT, start_logged, stop_group, train_model, wait_until  # noqa: E402
from support.processes import RedisServer, free_port  # noqa: E402

ENDPOINTS = (Endpoint("floor"), Endpoint("cold", "cross_sell"), Endpoint("warm", "cross_sell"),
             Endpoint("cart", cart_items=5))


#: Environment laid over a server's: the same gthread stack with Flask alone in front, for the fast path's gain.
FLASK_ONLY = "gunicorn gthread, FAST_PATH=false"
SETTINGS = {FLASK_ONLY: {"FAST_PATH": "false"}}


def servers(port: int, threads: int) -> dict[str, list[str]]:
    """The commands, each serving `service:create_app()` on `port` with 2 worker processes."""
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", "service/gunicorn.conf.py"]
    granian = shutil.which("granian", path=str(Path(sys.executable).parent)) or "granian"
    return {
        "gunicorn gthread (ours)": gunicorn,
        FLASK_ONLY: gunicorn,
        "gunicorn sync": [*gunicorn, "--worker-class", "sync", "--threads", "1"],
        "granian wsgi": [granian, "--interface", "wsgi", "--factory", "--workers", "2", "--blocking-threads",
                         str(threads), "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                         "service:create_app"],
    }


@dataclass
class Running:
    """What `serving_measure.bench_endpoint` needs of a stack: where it answers, where to write."""

    base: str
    work: Path


def _ready(base: str) -> bool:
    import requests

    try:
        return requests.get(base + "/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def measure(name: str, command: list[str], env: dict[str, str], work: Path, pools: Any, pools_file: Path,
            args: argparse.Namespace) -> dict[str, Any]:
    folder = work / re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    folder.mkdir(parents=True, exist_ok=True)
    metrics = folder / "prometheus"
    metrics.mkdir()
    proc = start_logged(command, folder / "server.log",
                        env={**env, **SETTINGS.get(name, {}), "PROMETHEUS_MULTIPROC_DIR": str(metrics)})
    try:
        base = f"http://127.0.0.1:{env['PORT']}"
        wait_until(lambda: proc.poll() is None and _ready(base), 300, f"{name} ready", interval=0.5)
        running = Running(base, folder)
        print(f"== {name} ==", flush=True)
        rows = [bench_endpoint(running, ep, pools, pools_file, args, n) for n, ep in enumerate(ENDPOINTS)]  # type: ignore[arg-type]
    finally:
        stop_group(proc)
    return {"server": name, "command": " ".join(command[1:] if command[0] == sys.executable else command),
            "rows": rows}


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| server | endpoint | rps | × own floor | p99 ms at half rate | errors |", "|---|---|---|---|---|---|"]
    for result in results:
        for row in result["rows"]:
            floor = row["floor_rps"]
            ratio = f"{row['saturation']['rps'] / floor:.2f}" if floor else "1.00"
            lines.append(f"| {result['server']} | {row['endpoint']} | {row['saturation']['rps']:.0f} | {ratio} | "
                         f"{row['half_rate']['p99_ms']} | {row['saturation']['errors'] + row['half_rate']['errors']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "full")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--model-name", default="crm-bench")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (gthread, granian)")
    parser.add_argument("--only", action="append", help="measure only the servers whose name contains this "
                        "(repeatable), e.g. --only gthread: ours with and without the fast path")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "servers.json")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="crm-servers-"))
    uri, name = args.tracking_uri, args.model_name
    if uri is None:
        uri, name, _ = train_model(args.data, work)
    pools = load_pools(args.data)
    pools_file = work / "pools.json"
    pools_file.write_text(json.dumps(asdict(pools)))
    redis = RedisServer(work, persist=True)
    redis.start()
    results = []
    try:
        port = free_port()
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MODEL_NAME": name, "REDIS_URL": redis.url,
               "AUTH_DISABLED": "true", "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": "2",
               "GUNICORN_THREADS": str(args.threads), "MODEL_CACHE_DIR": str(work / "model-cache"),
               "EVENTS_DB_URL": f"sqlite:///{work}/events.db", "SERVICE_STATE_DIR": str(work / "state"),
               "RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT_PER_MINUTE)}
        env.pop("MLFLOW_REGISTRY_URI", None)
        for server, command in servers(port, args.threads).items():
            if args.only and not any(part in server for part in args.only):
                continue
            results.append(measure(server, command, env, work, pools, pools_file, args))
    finally:
        redis.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": {"tracking_uri": uri, "name": name}, "seconds": args.seconds,
                                    "load_average": os.getloadavg(), "results": results}, indent=2, default=str))
    print(table(results))
    print(f"all figures: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
