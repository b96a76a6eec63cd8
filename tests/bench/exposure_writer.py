"""The exposure writer's CPU per row: one drain batch (read, rows, insert, acknowledge), repeated.

    python tests/bench/exposure_writer.py [--backends sqlite,postgresql] [--batches 40] [--items 8] [--profile]

Why beside `exposure_cpu.py`: that one charges the writer to the answers that made the rows, among
the noise of the requests; this one isolates the writer (`service.loop.drain.ExposureDrain.drain_once`)
over a real redis-server (with its append-only file) and a real SQLite file or PostgreSQL server of
our own, so a change to the read, the rows or the insert shows in microseconds of this process's CPU
(`time.process_time`: the servers' own CPU is not counted, SQLite's is). Each batch is BATCH entries
buffered the way answers buffer them (`ExposureBuffer.add`), half of them for clients, half for
visitors, and one client erased before the batch (so the erased-clients filter runs as in production).
The figure is the median over batches.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parents[1] / "tests")]

from support.postgres import PostgresServer  # noqa: E402
from support.processes import RedisServer  # noqa: E402


def _rows(count: int, items: int, start: int) -> list[dict]:
    from service.loop.exposures import Audience, exposure_row, new_recommendation_id

    shown = [{"item_id": str(1_000_000 + 7 * n), "group": f"GROUP {n % 5}", "kind": "cross_sell", "position": n + 1}
             for n in range(items)]
    rows = []
    for n in range(start, start + count):
        audience = Audience(client_id=str(n % 2000)) if n % 2 else Audience(visitor_id=f"v-{n}")
        rows.append(exposure_row(new_recommendation_id(), audience, variant="champion", model_version="7",
                                 endpoint="cross_sell", kind="cross_sell", channel="crm", items=shown))
    return rows


def measure(backend: str, url: str, redis_url: str, batches: int, items: int, profile: bool) -> None:
    from eventstore import EventStore
    from service.config import Settings
    from service.loop.drain import BATCH, ExposureDrain
    from service.loop.writer import settle_heap

    settings = Settings.from_env({"REDIS_URL": redis_url, "EVENTS_DB_URL": url, "TENANT": f"bench-{backend}"})
    store = EventStore(url)
    store.create_all()
    drain = ExposureDrain(settings, store)
    store.erase_client(settings.tenant, "1")  # an erasure the filter must look at (no row of it yet)
    settle_heap()  # as the writer process does once it has started
    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, as the figure
    costs = []
    for batch in range(batches + 1):
        for row in _rows(BATCH, items, batch * BATCH):
            drain.buffer.add(row)
        started = time.process_time()
        if profiler:
            profiler.enable()
        written = drain.drain_once(block_ms=1)
        if profiler:
            profiler.disable()
        assert written == BATCH, written
        if batch:  # the first batch creates the group and warms the statements
            costs.append((time.process_time() - started) * 1e6 / BATCH)
    stored = store.exposures_between(settings.tenant, datetime(2000, 1, 1, tzinfo=timezone.utc),
                                     datetime(2100, 1, 1, tzinfo=timezone.utc))
    assert len(stored) == (batches + 1) * BATCH, len(stored)
    print(f"{backend:<10} CPU per row {statistics.median(costs):6.1f} us (quartiles "
          f"{statistics.quantiles(costs, n=4)[0]:.1f}-{statistics.quantiles(costs, n=4)[2]:.1f}; "
          f"{batches} batches of {BATCH}, {items} items a row)", flush=True)
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    drain.connection.client.close()
    store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--items", type=int, default=8, help="suggestions per answer")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions too")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="exposure-writer-"))
    redis_server = RedisServer(work, persist=True)
    redis_server.start()
    postgres = None
    try:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                url = f"sqlite:///{work}/events.db"
            else:
                postgres = PostgresServer()
                postgres.start()
                url = postgres.create_database()
            measure(backend, url, redis_server.url, args.batches, args.items, args.profile)
    finally:
        redis_server.stop()
        if postgres is not None:
            postgres.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
