"""gunicorn under abuse: request limits over real HTTP, slow clients, a killed worker, a drain.

One service (two workers, four threads each, REQUEST_READ_TIMEOUT_SECONDS=2) for the module:

- limits: oversized bodies (413), batches and carts above their caps, limit, id length and
  characters, unknown fields: each a problem naming the field, never a 5xx;
- slow clients: many more half-sent requests than there are threads, and idle connections,
  while the shop's traffic flows: the traffic does not notice, and each slow one gets a 408;
- SIGKILL to a worker: gunicorn starts another, which loads the model before taking requests;
  only requests in flight on the killed worker's connections fail;
- SIGTERM to the master (last: it ends the service): requests in flight finish.
"""
from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from support.processes import wait_until
from support.reliability_harness import (
    ADMIN,
    READ,
    SUGGESTION_ENDPOINTS,
    Figures,
    LoadGenerator,
    percentile,
    scaled,
    service_env,
    serving_variant,
)
from support.service_process import Service

READ_TIMEOUT = 2.0
THREADS = 4
KEEPALIVE_REQUESTS = 5


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str, redis_server: object) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("gunicorn-faults")
    name = f"crm-gunicorn-faults-{uuid.uuid4().hex[:8]}"
    env = service_env(root, mlflow_server, name, f"{redis_server.url.rsplit('/', 1)[0]}/6",  # type: ignore[attr-defined]
                      REQUEST_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT), GUNICORN_THREADS=str(THREADS),
                      KEEPALIVE_REQUESTS=str(KEEPALIVE_REQUESTS),
                      MAX_BODY_BYTES="65536", MAX_EVENTS_PER_BATCH="50", MAX_CART_ITEMS="20", MAX_LIMIT="25")
    with serving_variant(root, env, "gunicorn-faults", mlflow_server, name) as (running, _):
        yield running


def _problem(response: requests.Response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        assert field in [error["field"] for error in body.get("errors", [])], body
    return body


EVENT = {"client_id": "c1", "item_id": "mug", "type": "view", "timestamp": "2024-05-01T10:00:00Z"}
LIMIT_CASES = [
    ("body over MAX_BODY_BYTES", "POST", "/v1/events", {"events": [{**EVENT, "item_id": "m" * 100}] * 600}, 413, None),
    ("events over MAX_EVENTS_PER_BATCH", "POST", "/v1/events", {"events": [EVENT] * 51}, 422, "events"),
    ("cart over MAX_CART_ITEMS", "POST", "/v1/cart/suggestions", {"items": [f"i{n}" for n in range(21)]}, 422, "items"),
    ("limit over MAX_LIMIT", "GET", "/v1/clients/c1/suggestions?limit=26", None, 400, "limit"),
    ("limit not a number", "GET", "/v1/items/coffee/similar?limit=1e9", None, 400, "limit"),
    ("id of 129 characters", "GET", "/v1/clients/" + "x" * 129 + "/suggestions", None, 400, "client_id"),
    ("id with a control character", "GET", "/v1/clients/a%00b/suggestions", None, 400, "client_id"),
    ("id with a newline", "GET", "/v1/items/a%0Ab/similar", None, 400, "item_id"),
    ("item id in a cart too long", "POST", "/v1/cart/suggestions", {"items": ["y" * 129]}, 422, "items[0]"),
    ("unknown body field", "POST", "/v1/cart/suggestions", {"items": ["coffee"], "coupon": "FREE"}, 422, "coupon"),
    ("unknown event field", "POST", "/v1/events", {"events": [{**EVENT, "email": "a@b.c"}]}, 422, "events[0].email"),
    ("event quantity negative", "POST", "/v1/events", {"events": [{**EVENT, "quantity": -2}]}, 422, "events[0].quantity"),
    ("event timestamp garbage", "POST", "/v1/events", {"events": [{**EVENT, "timestamp": "soon"}]}, 422,
     "events[0].timestamp"),
]


def test_limits_answer_problems_naming_the_field(service: Service, figures: Figures) -> None:
    for label, method, path, body, status, field in LIMIT_CASES:
        response = requests.request(method, service.base + path, json=body, headers=READ, timeout=10)
        try:
            _problem(response, status, field)
        except AssertionError as error:
            raise AssertionError(f"{label}: {error}") from None
    chunked = requests.post(f"{service.base}/v1/events", headers={**READ, "Content-Type": "application/json"},
                            data=iter([b'{"events": [' + b" " * 70_000, b"]}"]), timeout=10)
    _problem(chunked, 413)  # a chunked body cannot dodge the limit
    ignored = requests.get(f"{service.base}/v1/clients/c1/suggestions?kind=cross_sell&utm_source=mail", headers=READ,
                           timeout=10)
    assert ignored.status_code == 200  # unknown query parameters are ignored, as caches and trackers add them
    figures.add("limit cases answered with the documented problem", len(LIMIT_CASES) + 1, "all")


def _answers_on_one_connection(port: int, count: int) -> tuple[list[bytes], bytes]:
    """The heads of `count` /healthz answers sent one after another on one connection, and what the
    connection gives after the last (b"" once the server closed it)."""
    heads = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        for _ in range(count):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += reader.readline()
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            reader.read(length)
            heads.append(head.lower())
        sock.settimeout(2)
        try:
            after = reader.read(1)
        except OSError as error:
            after = repr(error).encode()
    return heads, after


def test_a_kept_alive_connection_is_closed_after_its_requests_so_workers_share_the_load(
        service: Service, figures: Figures) -> None:
    heads, after = _answers_on_one_connection(service.port, KEEPALIVE_REQUESTS)
    assert all(b"connection: close" not in head for head in heads[:-1])
    assert b"connection: close" in heads[-1]
    assert after == b""  # the server closed it: the client reconnects, to whichever worker is free

    start = len(service.log_text())
    def client() -> list[int]:  # one client reconnecting as told, at the same time as the other
        with requests.Session() as session:
            return [session.get(f"{service.base}/healthz", timeout=5).status_code
                    for _ in range(20 * KEEPALIVE_REQUESTS)]

    with ThreadPoolExecutor(2) as pool:
        statuses = [status for answers in pool.map(lambda _: client(), range(2)) for status in answers]
    assert statuses == [200] * 40 * KEEPALIVE_REQUESTS
    wait_until(lambda: service.log_text()[start:].count('"path":"/healthz"') >= 40 * KEEPALIVE_REQUESTS, timeout=10)
    pids = {line.split('"pid":')[1].split(",")[0] for line in service.log_text()[start:].splitlines()
            if '"path":"/healthz"' in line}
    figures.add(f"kept-alive connection closed after its requests (KEEPALIVE_REQUESTS={KEEPALIVE_REQUESTS})",
                "yes", "yes")
    figures.add("workers that answered two reconnecting clients", len(pids), "2")
    assert len(pids) == 2


def _half_requests(port: int, count: int) -> list[socket.socket]:
    opened = []
    for index in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if index % 3 == 0:
            sock.sendall(b"GET /v1/clients/c1/suggestions HTTP/1.1\r\nHost: x\r\nX-API-Key: ")  # headers never end
        elif index % 3 == 1:
            sock.sendall(b"POST /v1/cart/suggestions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 400\r\n\r\n{\"items\": [")  # the body never ends
        opened.append(sock)  # and a third never says anything
    return opened


def _answer_of(sock: socket.socket) -> bytes:
    sock.settimeout(READ_TIMEOUT + 3)
    try:
        return sock.recv(64)
    except OSError as error:
        return repr(error).encode()
    finally:
        sock.close()


def test_slow_clients_do_not_tie_up_the_workers(service: Service, figures: Figures) -> None:
    slow_count = int(scaled(60, 300))  # far more than the 2 x 4 threads
    dropped_before = service.metric("crm_slow_clients_dropped_total")
    with LoadGenerator(service.base) as load:
        time.sleep(0.5)
        started = time.monotonic()
        slow = _half_requests(service.port, slow_count)
        time.sleep(READ_TIMEOUT * 0.75)  # every slow connection is open and stuck now
        during = [o for o in load.between(started, time.monotonic()) if o.name in SUGGESTION_ENDPOINTS]
        drip = socket.create_connection(("127.0.0.1", service.port), timeout=5)
        drip.sendall(b"POST /v1/cart/suggestions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"X-API-Key: " + READ["X-API-Key"].encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"2\r\n{\"\r\n")  # a chunked body, read by a thread under the same deadline
        answers = [_answer_of(sock) for sock in slow]
        drip_answer = _answer_of(drip)
    latency = [o.seconds for o in during]
    timed_out = sum(answer.startswith(b"HTTP/1.1 408") for answer in answers)
    figures.add("slow connections opened (threads: 2 x 4)", slow_count)
    figures.add("shop requests meanwhile: count / not 200", f"{len(during)} / {sum(o.status != 200 for o in during)}",
                "/ 0")
    figures.add("their p99 / max latency (s)", f"{percentile(latency, 0.99):.3f} / {max(latency):.3f}", "< 1")
    figures.add("slow connections answered 408 and closed", f"{timed_out} of {slow_count}",
                f"all, after {READ_TIMEOUT:.0f} s")

    assert during and all(o.status == 200 for o in during)
    assert max(latency) < 1.0
    assert timed_out == slow_count, {answer[:20] for answer in answers}
    assert drip_answer.startswith(b"HTTP/1.1 408") or drip_answer.startswith(b"HTTP/1.1 400"), drip_answer
    wait_until(lambda: service.metric("crm_slow_clients_dropped_total") >= dropped_before + slow_count, timeout=10)


def test_a_worker_killed_with_sigkill_is_replaced(service: Service, figures: Figures) -> None:
    before = service.worker_pids()
    assert len(before) == 2
    version = next(iter(service.serving().values()))
    with LoadGenerator(service.base, threads=4) as load:
        time.sleep(1.0)
        victim = min(before)
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        replaced = wait_until(lambda: (service.worker_pids() - before) or None, timeout=30, interval=0.05)
        service.wait_serving(version, timeout=60)
        serving_again = time.monotonic() - killed
        time.sleep(1.0)
    after = load.between(killed, 1e12)
    failed = [o for o in after if o.status is None or o.status >= 500]
    figures.add("worker killed / replacement pid", f"{victim} / {', '.join(map(str, replaced))}")
    figures.add("replacement serving the model after (s)", serving_again, "< 60")
    figures.add("requests failed (in flight on the killed worker)", f"{len(failed)} of {len(after)}",
                f"<= {load.threads} connections")

    assert victim not in service.worker_pids() and len(service.worker_pids()) == 2
    assert all(o.status is None for o in failed)  # cut connections, never a 5xx answer
    assert len(failed) <= load.threads
    settled = [o for o in after if o.started > killed + serving_again]
    assert settled and all(o.status in (200, 202) for o in settled)


def test_sigterm_to_the_master_lets_in_flight_requests_finish(service: Service, figures: Figures) -> None:
    seconds = 2.0
    answers: list[requests.Response | Exception] = []

    def slow_request(client: str) -> None:
        try:
            answers.append(requests.get(f"{service.base}/v1/clients/{client}/suggestions?kind=cross_sell",
                                        headers=ADMIN, timeout=30))
        except requests.RequestException as error:
            answers.append(error)

    clients = ["slow-2", "slow-2.0", "slow-02", "slow-2.00"]  # distinct ids: none is answered from the cache
    threads = [threading.Thread(target=slow_request, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # all four are inside the model now
    term = time.monotonic()
    os.kill(service.proc.pid, signal.SIGTERM)
    for thread in threads:
        thread.join(30)
    service.proc.wait(timeout=30)
    drained = time.monotonic() - term
    refused = None
    try:
        requests.get(f"{service.base}/healthz", timeout=2)
    except requests.RequestException as error:
        refused = type(error).__name__
    statuses = [a.status_code if isinstance(a, requests.Response) else type(a).__name__ for a in answers]
    figures.add("in-flight requests at SIGTERM / answered 200", f"{len(clients)} / {statuses.count(200)}", "all")
    figures.add("master exited after (s)", drained, f"~{seconds} s of work left, < graceful_timeout 20")
    assert statuses == [200] * len(clients), statuses
    assert drained < 20 and refused is not None
    log = Path(service.log).read_text()
    assert "Handling signal: term" in log or "Shutting down" in log
