"""The exposure writer under gunicorn (EXPOSURE_WRITER): one process beside the workers, or a thread in each.

Each test runs gunicorn (two workers) with its own redis-server and SQLite event store:

- by default the master has exactly one writer process, besides its workers; it alone reads the
  exposure stream (the stream's consumers are its pid, no worker's) and answers reach the store,
  counted in /metrics from the writer's own multiprocess file; with `thread` there is no writer
  process and the workers are the consumers;
- `kill -9` of the writer while it holds a batch it has read (the store is locked, so the batch
  cannot commit) and answers flow: the master starts another, which claims the dead writer's
  pending entries, and every exposure answered is stored;
- SIGTERM to the master: the writer exits with it, nothing it read is left unacknowledged, and
  every exposure answered is stored.
"""
from __future__ import annotations

import itertools
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
import sqlalchemy as sa
from support.load_loop import LoadLoop
from support.processes import RedisServer, children, process_table, wait_until
from support.reliability_harness import READ, Figures, service_env, serving_variant
from support.service_process import Service, is_writer

STREAM = "crm:default:exposures"


@pytest.fixture()
def redis_of_test(tmp_path: Path) -> Iterator[RedisServer]:
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


class Asker(LoadLoop["str | None"]):
    """Threads asking for suggestions (a new client each time) until stopped; keeps each answer's id."""

    def __init__(self, base: str, threads: int = 2) -> None:
        clients = itertools.count()  # shared by the threads: every request names a client of its own

        def ask(session: requests.Session, _: int) -> str | None:
            try:
                response = session.get(f"{base}/v1/clients/c{next(clients)}/suggestions", headers=READ,
                                       params={"kind": "cross_sell"}, timeout=10)
            except requests.RequestException:
                return None
            return response.json()["recommendation_id"] if response.status_code == 200 else None

        super().__init__(ask, threads=threads, pause=0.0, max_seconds=600.0, started_of=lambda _: 0.0)

    @property
    def answered(self) -> set[str]:
        with self._lock:
            return {answer for answer in self.results if answer is not None}


def stored(events_url: str) -> set[str]:
    engine = sa.create_engine(events_url)
    try:
        with engine.connect() as connection:
            return {row[0] for row in connection.execute(sa.text("select recommendation_id from exposures"))}
    finally:
        engine.dispose()


def writers(service: Service) -> set[int]:
    assert service.proc is not None
    return {pid for pid in children(service.proc.pid) if is_writer(pid)}


def consumer(pid: int) -> str:
    return f"{os.uname().nodename}-{pid}"


def _start(tmp_path: Path, mlflow_server: str, redis_server: RedisServer, label: str, **extra: str):  # noqa: ANN202
    env = service_env(tmp_path, mlflow_server, f"crm-writer-{label}", redis_server.url, CONTROL_SHARE="0", **extra)
    return serving_variant(tmp_path, env, label, mlflow_server, f"crm-writer-{label}"), env["EVENTS_DB_URL"]


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_one_writer_process_drains_for_the_workers(tmp_path: Path, mlflow_server: str, redis_of_test: RedisServer,
                                                   figures: Figures, mode: str) -> None:
    extra = {} if mode == "process" else {"EXPOSURE_WRITER": "thread"}
    variant, events_url = _start(tmp_path, mlflow_server, redis_of_test, f"one-{mode}", **extra)
    client = redis.Redis.from_url(redis_of_test.url, decode_responses=True)
    with variant as (service, _):
        with Asker(service.base) as asker:
            time.sleep(2.0)
        wait_until(lambda: asker.answered <= stored(events_url) or None, timeout=30, interval=0.5)
        found = writers(service)
        workers = service.worker_pids()
        consumers = {c["name"] for c in client.xinfo_consumers(STREAM, "writers")}
        counted = wait_until(lambda: service.metric("crm_exposures_total", fate="stored") or None, timeout=10)
        log = service.log_text()
    figures.add(f"{mode}: writer processes / workers / consumers of the stream", f"{len(found)} / {len(workers)} / "
                f"{len(consumers)}")
    figures.add(f"{mode}: answers / stored / counted stored in /metrics", f"{len(asker.answered)} / "
                f"{len(asker.answered)} / {counted:.0f}")
    assert len(asker.answered) > 20 and len(workers) == 2
    assert counted >= len(asker.answered)  # the writer process's counter reaches the aggregate too
    if mode == "process":
        assert len(found) == 1 and not found & workers
        assert consumers == {consumer(next(iter(found)))}  # no worker ever read the stream
        assert f'"writer_pid":{next(iter(found))}' in log.replace(" ", "")
    else:
        assert found == set()
        assert consumers == {consumer(pid) for pid in workers}
        assert "exposure writer started" not in log


def _pending(client: redis.Redis) -> dict[str, int]:
    return {c["name"]: c["pending"] for c in client.xinfo_consumers(STREAM, "writers")}


def test_a_killed_writer_is_replaced_and_its_pending_entries_are_stored(
        tmp_path: Path, mlflow_server: str, redis_of_test: RedisServer, figures: Figures) -> None:
    variant, events_url = _start(tmp_path, mlflow_server, redis_of_test, "killed")
    client = redis.Redis.from_url(redis_of_test.url, decode_responses=True)
    database = events_url[len("sqlite:///"):]
    with variant as (service, _):
        (victim,) = writers(service)
        lock = sqlite3.connect(database, isolation_level=None, timeout=30)
        with Asker(service.base) as asker:
            lock.execute("BEGIN EXCLUSIVE")  # the writer reads a batch and cannot commit it
            held = wait_until(lambda: _pending(client).get(consumer(victim)) or None, timeout=30, interval=0.2)
            os.kill(victim, signal.SIGKILL)
            lock.execute("ROLLBACK")
            lock.close()
            (successor,) = wait_until(lambda: writers(service) - {victim} or None, timeout=30, interval=0.2)
            time.sleep(1.0)
        missing = wait_until(lambda: asker.answered <= stored(events_url) or None, timeout=60, interval=0.5)
        left = _pending(client)
        log = service.log_text()
    figures.add("entries pending on the killed writer", held)
    figures.add("writer killed / its successor", f"{victim} / {successor}")
    figures.add("answers / stored", f"{len(asker.answered)} / {len(asker.answered & stored(events_url))}", "all")
    assert missing and victim not in process_table()
    assert sum(left.values()) == 0, left  # the successor claimed the dead writer's entries and stored them
    assert f"exposure writer (pid {victim}) exited" in log and f"exposure writer started (pid {successor})" in log


def test_sigterm_to_the_master_stops_the_writer_after_it_stores(
        tmp_path: Path, mlflow_server: str, redis_of_test: RedisServer, figures: Figures) -> None:
    variant, events_url = _start(tmp_path, mlflow_server, redis_of_test, "term")
    client = redis.Redis.from_url(redis_of_test.url, decode_responses=True)
    with variant as (service, _):
        (writer,) = writers(service)
        with Asker(service.base) as asker:
            time.sleep(2.0)
            assert service.proc is not None
            os.kill(service.proc.pid, signal.SIGTERM)  # the master only, as a supervisor would
        service.proc.wait(timeout=60)
        gone = wait_until(lambda: writer not in process_table() or None, timeout=5, interval=0.1)
        log = service.log_text()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", service.port), timeout=2)
    left = _pending(client)
    missing = asker.answered - stored(events_url)
    figures.add("answers / stored after the master's exit", f"{len(asker.answered)} / "
                f"{len(asker.answered) - len(missing)}", "all")
    assert gone and len(asker.answered) > 20
    assert sum(left.values()) == 0, left  # nothing read and left unacknowledged
    assert missing == set()  # it stored the batch in hand and what the workers' last answers left
    assert '"reason": "SIGTERM"' in log or '"reason":"SIGTERM"' in log
