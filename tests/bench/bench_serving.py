"""Serving cost of the real model under gunicorn: throughput, latency, memory and a live model swap.

Everything is measured in ONE run against one server, and each endpoint is reported as a ratio to
the framework floor (GET /healthz: trivial JSON, same gunicorn config, same moment). Machines are
shared and noisy; an absolute rps figure says more about the neighbours than about us, a ratio
measured side by side does not.

How it measures, and why:

- Saturation throughput comes from `wrk` (C, one thread): it costs the 2-core box far less CPU
  than a Python client would, so the server gets the cores. Lua scripts written to the temp dir
  make every request different (client ids, `exclude=` items, cart bodies).
- Latency comes from an open-loop generator (asyncio + aiohttp, in its own process) at HALF the
  rate wrk measured for the same endpoint. Open loop means each request leaves at its scheduled
  time whether or not earlier ones came back, and latency is counted from that scheduled time: a
  stalled server shows up as queueing in p99. A closed-loop client (wrk, or any "N users in a
  loop") stops sending while the server stalls and hides exactly that (coordinated omission).
  The generator's own lag and CPU are reported; if the lag is large, the p99 is the client's.
- Cache COLD: every request has its own cache key (random known client and a random real item in
  `exclude=`), so it misses the Redis cache but still pays the Redis round trips and the write.
  WARM: 50 fixed clients asked first, then asked again. Carts: a known client (rotating) with
  1, 5 or 20 items drawn from the 200 most bought, so carts miss the cache too. The measured hit
  ratio is printed so you can check.
- The per-key rate limit is set far above any rate reached here (RATE_LIMIT_PER_MINUTE=1e9):
  requests still pay its Redis round trip, none is refused.
- Memory: RSS and PSS (/proc/<pid>/smaps_rollup) of the master and each worker, and the pages each
  worker maps from the model's files (/proc/<pid>/smaps). Workers load the model after the fork
  (the app is not preloaded) but map its arrays copy-on-write from the same local copy, so the
  page cache holds them once.
- The loop's cost (serving_loop): suggestions' throughput with exposure logging on against a
  second stack with it off (same model, Redis and event store; wrk A B B A), the exposure
  drain's backlog, and events ingested per second by POST /v1/events on SQLite and on a real
  PostgreSQL, with the rows stored counted against the 202s.
- Swap: a new version of the same model is registered, `@champion` moves to it and the notice
  goes out on Redis; we time how long until every worker's `crm_model_version` gauge shows it,
  while a fixed-rate load runs, and count the requests that failed meanwhile.

    python tests/bench/bench_serving.py                    # full Complete Journey model (~2 min training)
    python tests/bench/bench_serving.py --data data/sample --seconds 3
    python tests/bench/bench_serving.py --tracking-uri sqlite:///$PWD/var/mlflow.db --model-name crm-recommender

Nothing here is a unit test. Only 127.0.0.1 is contacted; every loop has a count and a deadline.

The modules, one per section: serving_requests (endpoints, id pools, requests in Python and Lua),
serving_stack (training, redis-server, gunicorn), serving_load (wrk and the open-loop generator),
serving_measure (endpoints, memory, swap), serving_loop (the loop's cost), serving_report (targets
and the table); this one is
the command line and the run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # the sibling modules, and the repository

from serving_loop import measure_exposure, measure_ingest  # noqa: E402
from serving_measure import bench_endpoint, measure_swap, memory  # noqa: E402
from serving_report import format_table, targets  # noqa: E402
from serving_requests import endpoints, load_pools  # noqa: E402
from serving_stack import FULL, Stack, train_model  # noqa: E402

__all__ = ["add_arguments", "format_table", "main", "run"]  # what tests/bench/run.py calls


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=FULL, help="data folder to train on (default data/full)")
    parser.add_argument("--tracking-uri", help="reuse a registered model in this MLflow store (skip training)")
    parser.add_argument("--model-name", help="name of that registered model (with --tracking-uri)")
    parser.add_argument("--seconds", type=float, default=8.0, help="per endpoint and per phase (default 8)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn WORKERS (default 2)")
    parser.add_argument("--swap-rate", type=float, default=None,
                        help="requests/s during the swap (default: half the cold cross_sell saturation)")
    parser.add_argument("--skip-swap", action="store_true",
                        help="do not register a version and move the alias (with --tracking-uri, the swap leaves "
                             "a copy version tagged crm_bench=swap-copy and moves the alias back afterwards)")
    parser.add_argument("--skip-loop", action="store_true",
                        help="do not measure the loop's cost (exposure logging on/off, the drain, events ingested)")
    parser.add_argument("--only-loop", action="store_true",
                        help="measure the floor and the loop's cost only (exposure logging on/off, the drain, events)")
    parser.add_argument("--loop-rounds", type=int, default=12,
                        help="rounds of A B B A per endpoint for the exposure ratio (default 12)")
    parser.add_argument("--loop-run-seconds", type=float, default=2.0,
                        help="seconds of each run in those rounds (default 2)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (logs, scripts, store)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if bool(args.tracking_uri) != bool(args.model_name):
        raise SystemExit("--tracking-uri and --model-name go together")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    stack: Stack | None = None
    try:
        result: dict[str, Any] = {"settings": {"seconds": args.seconds, "connections": args.connections,
                                               "workers": args.workers, "data": str(args.data)}}
        if args.tracking_uri:
            uri, name = args.tracking_uri, args.model_name
        else:
            uri, name, seconds = train_model(args.data, work)
            result["train_seconds"] = round(seconds, 1)
        pools = load_pools(args.data)
        pools_file = work / "pools.json"
        pools_file.write_text(json.dumps(asdict(pools)))
        stack = Stack(work, uri, name, args.workers)
        started = time.monotonic()
        stack.start()
        result["startup_seconds"] = round(time.monotonic() - started, 1)
        print(f"serving {name} on {stack.base} ({args.workers} workers, ready in {result['startup_seconds']} s); "
              f"{len(pools.clients)} clients, {len(pools.exclude)} items in rotation", flush=True)
        measured = [ep for ep in endpoints() if ep.group == "floor" or not args.only_loop]
        rows = [bench_endpoint(stack, ep, pools, pools_file, args, n) for n, ep in enumerate(measured)]
        result["endpoints"] = rows
        result["memory"] = memory(stack)
        result["loop"] = None if args.skip_loop else measure_exposure(stack, pools, args)
        result["swap"] = None
        if not args.skip_swap and not args.only_loop:
            cold = next(r for r in rows if r["endpoint"] == "cross_sell cold")
            rate = args.swap_rate or max(1.0, cold["saturation"]["rps"] / 2)
            result["swap"] = measure_swap(stack, pools_file, rate, restore=bool(args.tracking_uri))
        if result["loop"] is not None:  # last: its purchases change what every later answer costs
            result["loop"]["ingest"] = measure_ingest(stack, pools, args)
        result["targets"] = targets(rows, result["swap"], result["loop"])
        return result
    except BaseException:
        print(f"benchmark failed; logs in {work}", file=sys.stderr)
        args.keep_temp = True
        raise
    finally:
        with _quiet_interrupts():
            if stack is not None:
                stack.stop()
            if not args.keep_temp:
                shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _quiet_interrupts() -> Iterator[None]:
    """Clean-up is not cut short by a second Ctrl-C."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    result = run(parser.parse_args(argv))
    print(format_table(result))
    return result


if __name__ == "__main__":
    main()
