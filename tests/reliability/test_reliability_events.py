"""Nothing answered 2xx is lost: events flow while a worker, Redis and PostgreSQL are each killed.

One gunicorn service (two workers) stores its events in a real PostgreSQL and buffers its
exposures in a real Redis with its append-only file (`appendfsync everysec`). Posters send event
batches, each event with its own `event_id`, and ask for suggestions, while the test `kill -9`s a
worker, then redis-server (restarted on its files), then PostgreSQL (restarted on its data).

- Events: every one answered 2xx is in the database afterwards, exactly once. Answers while
  PostgreSQL is down are 503 problems (nothing stored), never a 2xx.
- Exposures (telemetry, buffered): the ones lost are at most those answered in the second before
  Redis was killed (what `everysec` had not written), and the figure is reported.
"""
from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from support.postgres import PostgresServer
from support.processes import RedisServer, wait_until
from support.reliability_harness import READ, Figures, scaled, service_env, serving_variant


@dataclass
class Traffic:
    """What the posters sent and what the service answered."""

    accepted: set[str] = field(default_factory=set)       # event ids of 2xx answers
    refused: dict[int, int] = field(default_factory=dict)  # status -> count (5xx, connection errors as 0)
    answers: list[tuple[float, str]] = field(default_factory=list)  # (time, recommendation_id) of 200 answers
    lock: threading.Lock = field(default_factory=threading.Lock)


def _post_events(base: str, traffic: Traffic, stop: threading.Event) -> None:
    session = requests.Session()
    while not stop.is_set():
        ids = [uuid.uuid4().hex for _ in range(5)]
        batch = [{"client_id": f"c{n % 3 + 1}", "item_id": "coffee", "type": "purchase", "price": 9.0,
                  "timestamp": time.time(), "event_id": event_id} for n, event_id in enumerate(ids)]
        try:
            status = session.post(f"{base}/v1/events", json=batch, headers=READ, timeout=10).status_code
        except requests.RequestException:
            status = 0
        with traffic.lock:
            if 200 <= status < 300:
                traffic.accepted.update(ids)
            else:
                traffic.refused[status] = traffic.refused.get(status, 0) + 1
                time.sleep(0.05)


def _ask(base: str, traffic: Traffic, stop: threading.Event) -> None:
    session = requests.Session()
    n = 0
    while not stop.is_set():
        n += 1
        try:
            response = session.get(f"{base}/v1/clients/c{n % 3 + 1}/suggestions", headers=READ, timeout=10,
                                   params={"kind": "cross_sell"})
        except requests.RequestException:
            continue
        if response.status_code == 200:
            with traffic.lock:
                traffic.answers.append((time.time(), response.json()["recommendation_id"]))


def _stored(url: str, sql: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {row[0] for row in connection.execute(sa.text(sql))}
    finally:
        engine.dispose()


@pytest.mark.slow
def test_no_event_answered_2xx_is_lost_when_worker_redis_and_postgres_are_killed(
        tmp_path: Path, mlflow_uri: str, postgres_server: PostgresServer, figures: Figures) -> None:
    if not postgres_server.running:
        postgres_server.start()
    database = postgres_server.create_database()
    (tmp_path / "redis").mkdir()
    redis_server = RedisServer(tmp_path / "redis", persist=True)
    redis_server.start()
    env = service_env(tmp_path, mlflow_uri, "events-faults", redis_server.url, EVENTS_DB_URL=database,
                      CONTROL_SHARE="0", REDIS_TIMEOUT_SECONDS="0.5")
    phase = scaled(2.0, 8.0)
    traffic, stop = Traffic(), threading.Event()
    try:
        with serving_variant(tmp_path, env, "events", mlflow_uri, "events-faults") as (service, _):
            threads = [threading.Thread(target=_post_events, args=(service.base, traffic, stop)) for _ in range(3)]
            threads.append(threading.Thread(target=_ask, args=(service.base, traffic, stop)))
            for thread in threads:
                thread.start()
            time.sleep(phase)
            os.kill(sorted(service.worker_pids())[0], signal.SIGKILL)  # gunicorn starts another
            time.sleep(phase)
            redis_killed = time.time()
            redis_server.kill()
            time.sleep(1.0)
            redis_server.start()  # same port, same append-only file
            time.sleep(phase)
            postgres_server.kill()
            time.sleep(1.0)
            postgres_server.start()
            time.sleep(phase)
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            answered = {rec for _, rec in traffic.answers}
            # the drainers catch up (entries of the killed worker are claimed after their idle time)
            wait_until(lambda: len(answered - _stored(database, "select recommendation_id from exposures"))
                       <= sum(1 for at, _ in traffic.answers if redis_killed - 1.5 <= at <= redis_killed) or None,
                       timeout=60, interval=1.0)
    finally:
        stop.set()
        redis_server.stop()
    stored = _stored(database, "select event_id from events")
    missing = traffic.accepted - stored
    lost = answered - _stored(database, "select recommendation_id from exposures")
    bound = sum(1 for at, _ in traffic.answers if redis_killed - 1.5 <= at <= redis_killed)
    figures.add("events answered 2xx", len(traffic.accepted))
    figures.add("of them missing from PostgreSQL", len(missing), "0")
    figures.add("refused (status: count; 0 = connection cut)", dict(sorted(traffic.refused.items())))
    figures.add("exposures lost / answered", f"{len(lost)} / {len(answered)}", f"<= {bound} (the second before the Redis kill)")
    assert len(traffic.accepted) > 100 and missing == set()
    assert set(traffic.refused) <= {0, 503}  # a refusal is a 503 problem or a cut connection, never a 4xx or 500
    assert len(lost) <= bound
