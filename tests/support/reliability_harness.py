"""What the fault, fuzz and security tests share: real processes to start and break, steady
traffic, and the summary table of their figures.

- `service_env` is the environment of a service under test (support/service_process.py runs it).
- `TcpProxy` sits between the service and Redis or the MLflow server: it can delay every chunk
  (a slow neighbour) or stop listening and cut its connections (an unreachable one).
- `LoadGenerator` sends steady traffic from a few threads for a bounded time and keeps every
  outcome: status, latency, cache header, model version, and whether an answer mixed versions.
- `figures` records a measured figure on the test's report; `make reliability` prints them all
  in one table at the end (and writes RELIABILITY_SUMMARY as JSON when that is set).

Short by default; RELIABILITY_FULL=1 (set by `make reliability`) runs longer phases and more
cases. The fixtures (`figures`, `services`) live in tests/reliability/conftest.py; the proxy and
the load generator are checked in tests/integration/test_reliability_harness.py.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from support.processes import free_port
from support.reliability_doubles import register_variant
from support.service_process import Service

FULL = os.environ.get("RELIABILITY_FULL", "").strip().lower() in {"1", "true", "yes"}
READ_KEY = "reliability-read-key-5b0c1f"
ADMIN_KEY = "reliability-admin-key-9e2d47"
READ = {"X-API-Key": READ_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}
SUGGESTION_ENDPOINTS = ("client_suggestions", "cart_suggestions", "similar_items")


def scaled(short: float, full: float) -> float:
    """A duration or count: `short` in `make test`, `full` in `make reliability`."""
    return full if FULL else short


# ---- the summary table ----

class ReliabilityReport:
    """Prints every reliability test with its outcome and figures after the run."""

    name = "crm-reliability-report"

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        rows = collect_rows(terminalreporter.stats)
        if not rows:
            return
        terminalreporter.section("reliability summary" + (" (full)" if FULL else " (short: RELIABILITY_FULL=1 for all)"))
        cells = [tuple(str(cell)[:60] for cell in row) for row in [HEADER, *rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER))]
        for row in [cells[0], tuple("-" * w for w in widths), *cells[1:]]:
            terminalreporter.write_line("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        target = os.environ.get("RELIABILITY_SUMMARY")
        if target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(target).write_text(json.dumps([dict(zip(HEADER, row, strict=True)) for row in rows], indent=1) + "\n")


HEADER = ("test", "outcome", "figure", "value", "bound")


def collect_rows(stats: dict[str, list[Any]]) -> list[tuple[str, str, str, str, str]]:
    outcomes: dict[str, tuple[str, list[Any]]] = {}
    for outcome, reports in stats.items():
        if outcome not in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"):
            continue  # "deselected" holds items, "warnings" messages
        for report in reports:
            if not hasattr(report, "nodeid") or "reliability" not in getattr(report, "keywords", {}):
                continue
            when = getattr(report, "when", "call")
            if when == "call" or (outcome in ("failed", "error", "skipped") and report.nodeid not in outcomes):
                outcomes[report.nodeid] = (outcome, list(getattr(report, "user_properties", [])))
    rows = []
    for nodeid, (outcome, properties) in outcomes.items():
        name = nodeid.split("::", 1)[-1]
        if "[" in name:  # a parametrized test: keep its case visible
            function, case = name.split("[", 1)
            name = f"{function[:58 - len(case)]}…[{case}" if len(name) > 60 else name
        measured = [value for key, value in properties if key == "figure"]
        if not measured:
            rows.append((name, outcome, "", "", ""))
        for index, figure in enumerate(measured):
            rows.append((name if index == 0 else "", outcome if index == 0 else "", figure["label"],
                         figure["value"], figure["bound"]))
    return rows


class Figures:
    """Record measured figures on the running test's report."""

    def __init__(self, node: pytest.Item) -> None:
        self.node = node

    def add(self, label: str, value: Any, bound: str = "") -> None:
        if isinstance(value, float):
            value = f"{value:.3f}"
        self.node.user_properties.append(("figure", {"label": label, "value": str(value)[:200], "bound": bound}))


# ---- a proxy that can be slow or down ----

class TcpProxy:
    """127.0.0.1:`port` forwarded to 127.0.0.1:`target_port`; `delay` seconds added to every chunk
    in each direction; `down()` refuses connections and cuts the open ones until `up()`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.delay = 0.0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def up(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(0.1)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="proxy-accept").start()
        return self

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _shut(sock)

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _shut(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True, name="proxy-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if self.delay:
                time.sleep(self.delay)
            try:
                dst.sendall(data)
            except OSError:
                break
        for sock in (src, dst):
            _shut(sock)
            with self._lock:
                self._sockets.discard(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


# ---- steady traffic ----

@dataclass(frozen=True)
class Call:
    """One kind of request the load generator sends."""

    name: str
    method: str
    path: str
    body: Any = None


#: The traffic of a shop: client suggestions (two clients, so the cache is hit), carts, similar
#: items and events, in that rough mix.
SHOP_TRAFFIC = (
    Call("client_suggestions", "GET", "/v1/clients/c1/suggestions?kind=all&limit=3"),
    Call("client_suggestions", "GET", "/v1/clients/c2/suggestions?kind=cross_sell&limit=5"),
    Call("cart_suggestions", "POST", "/v1/cart/suggestions", {"items": ["coffee"], "limit": 3}),
    Call("cart_suggestions", "POST", "/v1/cart/suggestions", {"client_id": "c3", "items": ["machine"], "limit": 3}),
    Call("similar_items", "GET", "/v1/items/coffee/similar?limit=3"),
    Call("events", "POST", "/v1/events", {"events": [{"client_id": "c9", "item_id": "mug", "type": "view",
                                                      "timestamp": "2024-05-01T10:00:00Z"}]}),
)


@dataclass(frozen=True)
class Outcome:
    name: str
    started: float  # time.monotonic() when sent
    seconds: float
    status: int | None  # None: no HTTP answer (connection error, timeout)
    error: str | None = None
    cache: str | None = None
    version: str | None = None
    versions_in_body: frozenset[str] = frozenset()
    problem: bool = False  # an application/problem+json body with type, title, status, detail

    @property
    def mixed(self) -> bool:
        """The answer holds suggestions of another version than the one it names."""
        return bool(self.versions_in_body - {self.version})


def version_tags(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {str(node["version_tag"])} if "version_tag" in node else set()
        return found.union(*(version_tags(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(version_tags(value) for value in node)) if node else set()
    return set()


def send(session: requests.Session, base: str, call: Call, headers: dict[str, str], timeout: float) -> Outcome:
    started = time.monotonic()
    try:
        response = session.request(call.method, base + call.path, json=call.body, headers=headers, timeout=timeout)
    except requests.RequestException as error:
        return Outcome(call.name, started, time.monotonic() - started, None, type(error).__name__)
    seconds = time.monotonic() - started
    body: Any = None
    if response.headers.get("Content-Type", "").split(";")[0].endswith("json"):
        try:
            body = response.json()
        except ValueError:
            body = None
    problem = (response.headers.get("Content-Type", "").startswith("application/problem+json")
               and isinstance(body, dict) and {"type", "title", "status", "detail"} <= set(body))
    version = body.get("model_version") if isinstance(body, dict) else None
    return Outcome(call.name, started, seconds, response.status_code, cache=response.headers.get("X-Cache"),
                   version=version, versions_in_body=frozenset(version_tags(body)), problem=problem)


@dataclass
class LoadGenerator:
    """`threads` clients sending `calls` in turn, each pausing `pause` s between requests, until
    stopped or `max_seconds` pass (every loop is bounded)."""

    base: str
    calls: tuple[Call, ...] = SHOP_TRAFFIC
    headers: dict[str, str] = field(default_factory=lambda: dict(READ))
    threads: int = 3
    pause: float = 0.01
    max_seconds: float = 120.0
    timeout: float = 10.0
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> LoadGenerator:
        deadline = time.monotonic() + self.max_seconds
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index, deadline), daemon=True, name=f"load-{index}")
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout + 5)
        return self.outcomes

    def _run(self, index: int, deadline: float) -> None:
        with requests.Session() as session:
            turn = index
            while not self._stop.is_set() and time.monotonic() < deadline:
                outcome = send(session, self.base, self.calls[turn % len(self.calls)], self.headers, self.timeout)
                turn += 1
                with self._lock:
                    self.outcomes.append(outcome)
                self._stop.wait(self.pause)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def between(self, start: float, end: float) -> list[Outcome]:
        return [o for o in self.snapshot() if start <= o.started < end]


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# ---- the environment of a service under test ----

def service_env(tmp_path: Path, mlflow_uri: str, model_name: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    """The environment of a service under test; `extra` overrides any key."""
    env = {"MLFLOW_TRACKING_URI": mlflow_uri, "MODEL_NAME": model_name, "REDIS_URL": redis_url or "",
           "API_KEYS": READ_KEY, "ADMIN_API_KEYS": ADMIN_KEY, "MODEL_CACHE_DIR": str(tmp_path / "model-cache"),
           "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db",
           "SERVICE_STATE_DIR": str(tmp_path / "state"), "REDIS_TIMEOUT_SECONDS": "0.1",
           "REDIS_RETRY_SECONDS": "1", "RELOAD_POLL_SECONDS": "30", "WORKERS": "2", "GUNICORN_THREADS": "4",
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
           "RATE_LIMIT_PER_MINUTE": "10000000"}  # the load generator is one key; rate limits have their own tests
    env.update(extra)
    return env


@contextmanager
def serving_variant(root: Path, env: dict[str, str], label: str, mlflow_uri: str,
                    model_name: str) -> Iterator[tuple[Service, str]]:
    """(the service, the version) with a freshly registered tagged variant as @champion, the
    service started on it and stopped when the block ends (also when it fails to start)."""
    service = Service(root, env, label)
    try:
        version = register_variant(mlflow_uri, model_name)
        service.start()
        yield service, version
    finally:
        service.stop()

