"""The CPU an answer costs with exposure logging on against off, in one process, finely interleaved.

    python tests/bench/exposure_cpu.py --tracking-uri URI --model-name NAME --data DIR

Why beside the throughput ratio of `make bench`: on a shared 2-core box the neighbours' bursts
move one throughput run by tens of percent, while an answer's CPU time (the process's own clock)
moves far less. Two apps of the real factory serve the same model over one redis-server (with the
append-only file) and two SQLite stores, one with EXPOSURE_LOGGING on and one off; blocks of
BLOCK requests alternate between them many times, and after each block the logging app drains
what it buffered into its store (the writer thread's work, charged to the answers that made it).
The figure is the median over blocks of CPU(off) / CPU(on): the throughput a CPU-bound worker
keeps with logging on.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1]), str(HERE.parents[1] / "tests")]

from serving_requests import Endpoint, build_request, load_pools  # noqa: E402
from support.processes import RedisServer  # noqa: E402

KEY = "exposure-cpu-key-0123456789"
BLOCK = 100


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the data the model was trained on")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--model-name", default="crm-bench")
    parser.add_argument("--blocks", type=int, default=40, help="blocks per side and endpoint")
    args = parser.parse_args(argv)
    from service.app import create_app
    from service.config import Settings

    work = Path(tempfile.mkdtemp(prefix="exposure-cpu-"))
    redis_server = RedisServer(work, persist=True)
    redis_server.start()
    apps = {}
    try:
        for flag in ("true", "false"):
            settings = Settings.from_env({
                "MLFLOW_TRACKING_URI": args.tracking_uri, "MODEL_NAME": args.model_name, "REDIS_URL": redis_server.url,
                "API_KEYS": KEY, "RATE_LIMIT_PER_MINUTE": "1000000000", "MODEL_CACHE_DIR": str(work / f"copy-{flag}"),
                "SERVICE_STATE_DIR": str(work / "state"), "EVENTS_DB_URL": f"sqlite:///{work}/events-{flag}.db",
                "EXPOSURE_LOGGING": flag, "TENANT": f"logging-{flag}"})
            apps[flag] = create_app(settings, watch=False)
            apps[flag].extensions["crm"].models.refresh("bench")
        pools, rng = load_pools(args.data), random.Random(0)
        headers = {"X-API-Key": KEY}
        for group, kind in (("cold", "cross_sell"), ("warm", "cross_sell"), ("cart", "")):
            endpoint = Endpoint(group, kind, 5 if group == "cart" else 0)
            costs: dict[str, list[float]] = {"true": [], "false": []}
            for block in range(args.blocks + 1):
                for flag, app in (apps.items() if block % 2 else reversed(apps.items())):
                    client, drain = app.test_client(), app.extensions["crm"].drain
                    requests = [build_request(endpoint, pools, rng, block * BLOCK + n) for n in range(BLOCK)]
                    started = time.process_time()
                    for path, body in requests:
                        answer = (client.post(path, data=body, headers={**headers, "Content-Type": "application/json"})
                                  if body is not None else client.get(path, headers=headers))
                        assert answer.status_code == 200, answer.get_data(as_text=True)[:200]
                    if flag == "true":
                        drain.drain_all()
                    if block:  # the first block of each side warms the cache and the scripts
                        costs[flag].append((time.process_time() - started) * 1000 / BLOCK)
            ratios = [off / on for on, off in zip(costs["true"], costs["false"], strict=True)]
            print(f"{endpoint.name:<18} CPU per answer on {statistics.median(costs['true']):.3f} ms, off "
                  f"{statistics.median(costs['false']):.3f} ms; off/on median {statistics.median(ratios):.3f} "
                  f"(quartiles {statistics.quantiles(ratios, n=4)[0]:.3f}-{statistics.quantiles(ratios, n=4)[2]:.3f}, "
                  f"{len(ratios)} block pairs of {BLOCK})", flush=True)
    finally:
        for app in apps.values():
            app.extensions["crm"].events.close()
            app.extensions["crm"].redis.close()
        redis_server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
