"""Redis breaks under steady traffic: killed and restarted, then slow. The shop keeps selling.

One gunicorn service (two workers) talks to its own redis-server through a `TcpProxy`, while a
`LoadGenerator` sends the shop's traffic throughout. Killing redis-server (SIGKILL) must cost
no failed suggestion; events are still stored (202: the event store, not Redis, keeps them), and
exposures go straight to the store; once Redis is back the cache answers again
within seconds, without restarting anything. A slow Redis (every chunk delayed well past
REDIS_TIMEOUT_SECONDS) must cost each request at most that timeout, served without the cache.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.processes import RedisServer, wait_until
from support.reliability_harness import (
    SUGGESTION_ENDPOINTS,
    Figures,
    LoadGenerator,
    TcpProxy,
    percentile,
    scaled,
    service_env,
    serving_variant,
)
from support.service_process import Service

REDIS_TIMEOUT = 0.1
REDIS_RETRY = 1.0


@dataclass
class Shop:
    redis: RedisServer
    proxy: TcpProxy
    service: Service
    version: str


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> Iterator[Shop]:
    root = tmp_path_factory.mktemp("redis-faults")
    server = RedisServer(root)
    server.start()
    proxy = TcpProxy(server.port).up()
    name = f"crm-redis-faults-{uuid.uuid4().hex[:8]}"
    env = service_env(root, mlflow_server, name, f"redis://127.0.0.1:{proxy.port}/0",
                      REDIS_TIMEOUT_SECONDS=str(REDIS_TIMEOUT), REDIS_RETRY_SECONDS=str(REDIS_RETRY))
    try:
        with serving_variant(root, env, "redis-faults", mlflow_server, name) as (service, version):
            yield Shop(server, proxy, service, version)
    finally:
        proxy.down()
        server.stop()


def _first_hit_after(load: LoadGenerator, moment: float, timeout: float) -> float:
    """Seconds from `moment` to the first answer served from the cache that was sent after it."""

    def hit() -> float | None:
        hits = [o.started for o in load.snapshot() if o.started >= moment and o.cache == "hit"]
        return min(hits) - moment if hits else None

    return wait_until(hit, timeout=timeout, interval=0.1)


def _suggestions(outcomes: list) -> list:
    return [o for o in outcomes if o.name in SUGGESTION_ENDPOINTS]


def test_redis_killed_under_load_then_restarted(shop: Shop, figures: Figures) -> None:
    down_for = scaled(3.0, 15.0)
    pids = shop.service.worker_pids()
    redis_failures_before = shop.service.metric("crm_redis_failures_total")
    with LoadGenerator(shop.service.base) as load:
        _first_hit_after(load, time.monotonic(), timeout=10)  # warm: the cache answers
        shop.redis.proc.kill()  # SIGKILL: no goodbye to anyone
        shop.redis.proc.wait(timeout=10)
        killed = time.monotonic()
        time.sleep(down_for)
        restarting = time.monotonic()
        shop.redis.start()  # same port, empty: a restarted cache
        back_after = _first_hit_after(load, restarting, timeout=15)
        wait_until(lambda: any(o.name == "events" and o.status == 202 for o in load.between(restarting, 1e12)), timeout=10)
    during = load.between(killed, restarting)
    suggestions = _suggestions(during)
    events = [o for o in during if o.name == "events"]
    failed = [o for o in suggestions if o.status != 200]
    latency = [o.seconds for o in suggestions]
    figures.add("requests while Redis was down", len(during), f"{down_for:.0f} s of traffic")
    figures.add("suggestions not 200 while down", len(failed), "0")
    figures.add("suggestion p99 / max latency while down (s)", f"{percentile(latency, 0.99):.3f} / {max(latency):.3f}")
    figures.add("events stored (202) while down", f"{sum(o.status == 202 for o in events)} of {len(events)}", "all")
    figures.add("first cache hit after restart (s)", back_after, f"<= {REDIS_RETRY + 5:.0f}")

    assert suggestions and not failed, failed[:5]
    assert {o.cache for o in suggestions[len(suggestions) // 10:]} == {"off"}  # served without the cache
    assert events and all(o.status == 202 for o in events), [o for o in events if o.status != 202][:5]
    assert back_after <= REDIS_RETRY + 5
    assert shop.service.worker_pids() == pids  # nothing was restarted
    assert shop.service.metric("crm_redis_failures_total") > redis_failures_before
    assert shop.service.metric("crm_rate_limit_fail_open_total") > 0  # the rate limit failed open, counted


def test_redis_slow_costs_at_most_the_timeout_and_skips_the_cache(shop: Shop, figures: Figures) -> None:
    slow_for = scaled(3.0, 12.0)
    margin = 0.5
    with LoadGenerator(shop.service.base) as load:
        _first_hit_after(load, time.monotonic(), timeout=15)
        calm = time.monotonic()
        time.sleep(1.0)
        shop.proxy.delay = 1.0  # ten times REDIS_TIMEOUT_SECONDS on every chunk, each way
        slow = time.monotonic()
        time.sleep(slow_for)
        shop.proxy.delay = 0.0
        fast = time.monotonic()
        back_after = _first_hit_after(load, fast + 0.1, timeout=15)
    before = [o.seconds for o in _suggestions(load.between(calm, slow))]
    during = _suggestions(load.between(slow + 0.05, fast))
    latency = [o.seconds for o in during]
    figures.add("suggestion p50 / max before (s)", f"{percentile(before, 0.5):.3f} / {max(before):.3f}")
    figures.add("suggestion p50 / p99 / max while slow (s)",
                f"{percentile(latency, 0.5):.3f} / {percentile(latency, 0.99):.3f} / {max(latency):.3f}",
                f"<= {REDIS_TIMEOUT} + {margin}")
    figures.add("suggestions while slow: not 200 / from cache", f"{sum(o.status != 200 for o in during)} / "
                f"{sum(o.cache == 'hit' for o in during)}", "0 / 0")
    figures.add("first cache hit once fast again (s)", back_after, f"<= {REDIS_RETRY + 5:.0f}")

    assert during and all(o.status == 200 for o in during), [o for o in during if o.status != 200][:5]
    assert max(latency) <= REDIS_TIMEOUT + margin
    assert not [o for o in during if o.cache == "hit"]
    assert back_after <= REDIS_RETRY + 5


def test_breaker_keeps_a_dead_redis_to_one_timeout_per_retry_period(tmp_path: Path) -> None:
    """In-process: with Redis unreachable, 50 lookups cost about one connect timeout, not 50."""
    from support.processes import free_port

    from service.config import Settings
    from service.redis.core import RedisUnavailable
    from service.redis.store import RedisStore

    store = RedisStore(Settings.from_env({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
                                          "REDIS_TIMEOUT_SECONDS": "0.2", "REDIS_RETRY_SECONDS": "5"}))
    started = time.monotonic()
    for _ in range(50):
        with pytest.raises(RedisUnavailable):
            store.loop.suppressions("c1")
    assert time.monotonic() - started < 1.0
