"""Two replicas of the service behave as one service (issue 15, part 3).

Replica A and replica B are separate gunicorn masters (two workers each) on their own ports, as
two machines behind a load balancer would run them. They share one redis-server, one event store
(our own PostgreSQL, the production shape) and one `mlflow server`; each has its own local model
copy and state folder. A test sends a client's requests to both, as a load balancer would, and
checks that:

- the rate limit is one budget per key, whichever replica counts a request;
- fatigue counts shows reported through either replica, and a rejection made on one is honoured
  by both;
- both put a client in the same group, the control group or an arm of the experiment
  (EXPERIMENT=champion:50,candidate:50), and answer it with that arm's version;
- an answer computed by one is served from the shared cache by the other, and a purchase posted
  to the other drops it;
- every event, reaction and exposure either one answered 2xx for is in the shared event store;
- an erasure through one drops the client's state for both (Redis, the store); only its durable
  local record (SERVICE_STATE_DIR/erasures.jsonl) is the erasing replica's own;
- a sign-in to the /app screens on one holds on the other (sessions live in Redis);
- an alias moved in the registry reaches both (an admin reload on one replica, or the trainer's
  notice on Redis), with no failed request and no answer mixing versions under load on both,
  while the candidate's arm keeps its own version.

The model is the reliability tests' tagged double: every suggestion says which version made it.
"""
from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from mlflow import MlflowClient
from sqlalchemy import func, select
from support.load_loop import LoadLoop
from support.postgres import PostgresServer
from support.processes import RedisServer, wait_until
from support.reliability_doubles import register_variant
from support.reliability_harness import Call, Outcome, send, service_env
from support.service_process import Service

from eventstore import EventStore
from eventstore.schema import events
from scoring.contract import MODEL_UPDATES_CHANNEL, erasures_key
from service.config import Settings
from service.loop.assignment import assign, parse_experiment

pytestmark = pytest.mark.slow

#: Requests one key may make in a minute (RATE_LIMIT_PER_MINUTE): low, so that the rate-limit test
#: reaches it in a second; every other test uses keys of its own, and the load many keys in turn.
ALLOWANCE = 40
ADMIN_KEY = "replicas-admin-key-3f9a"
#: One key per test, and a pool the load loop turns through (LOAD_KEYS x ALLOWANCE a minute).
TEST_KEYS = {name: f"replicas-{name}-key" for name in ("limit", "other", "fatigue", "group-a", "group-b", "reject",
                                                       "cache", "events", "erase", "screens")}
LOAD_KEYS = [f"replicas-load-{n:02d}" for n in range(40)]
#: The service's defaults, which neither replica changes: what a client's group is a hash of.
TENANT, SALT, CONTROL_SHARE = (Settings.model_fields[name].default
                               for name in ("tenant", "assignment_salt", "control_share"))
#: An online test between @champion and @candidate, the same on both replicas.
EXPERIMENT = "champion:50,candidate:50"
ARMS = parse_experiment(EXPERIMENT, "champion")


def _headers(name: str) -> dict[str, str]:
    return {"X-API-Key": TEST_KEYS[name]}


@dataclass
class Replicas:
    a: Service
    b: Service
    mlflow: str
    model_name: str
    redis_url: str
    events_url: str
    root: Path
    candidate: str  # the version @candidate points to

    @property
    def both(self) -> tuple[Service, Service]:
        return self.a, self.b


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str, redis_server: RedisServer,
             postgres_server: PostgresServer) -> Iterator[Replicas]:
    """A and B, serving the first version of a model of their own, on a Redis database and a
    PostgreSQL database of their own."""
    root = tmp_path_factory.mktemp("replicas")
    name = f"crm-replicas-{uuid.uuid4().hex[:8]}"
    redis_url = f"{redis_server.url.rsplit('/', 1)[0]}/6"
    with redis.Redis.from_url(redis_url) as r:
        r.flushdb()
    if not postgres_server.running:
        postgres_server.start()
    events_url = postgres_server.create_database()
    first = register_variant(mlflow_server, name)
    candidate = register_variant(mlflow_server, name, alias="candidate")
    shared = {"EVENTS_DB_URL": events_url, "API_KEYS": ",".join([*TEST_KEYS.values(), *LOAD_KEYS]),
              "ADMIN_API_KEYS": ADMIN_KEY, "RATE_LIMIT_PER_MINUTE": str(ALLOWANCE), "RATE_LIMIT_WINDOW_SECONDS": "60",
              # only a notice moves a replica within a test's time: the poll is the backstop
              "RELOAD_POLL_SECONDS": "600", "WORKERS": "2", "REDIS_TIMEOUT_SECONDS": "0.5", "EXPERIMENT": EXPERIMENT}
    services = [Service(root, service_env(root / replica, mlflow_server, name, redis_url, **shared), replica)
                for replica in ("a", "b")]
    try:
        for service in services:
            service.start(ready=False, timeout=90)
        for service in services:
            service.wait_serving(first, timeout=90)
        yield Replicas(*services, mlflow_server, name, redis_url, events_url, root, candidate)
    finally:
        stopping = [threading.Thread(target=service.stop) for service in services]  # both at once
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        postgres_server.drop_database(events_url.rsplit("/", 1)[1])


def _variant(client_id: str) -> str:
    """The client's group as the hash of TENANT, ASSIGNMENT_SALT and the id assigns it."""
    return assign(TENANT, SALT, client_id, CONTROL_SHARE, ARMS)


def _client(prefix: str, variant: str = "champion", skip: int = 0) -> str:
    """A client id in `variant` (the control group's answer is the popular items, purchases or not)."""
    found = (f"{prefix}-{n}" for n in range(10_000) if _variant(f"{prefix}-{n}") == variant)
    return next(itertools.islice(found, skip, None))


def _suggest(service: Service, client_id: str, key: str, **params: Any) -> requests.Response:
    response = requests.get(f"{service.base}/v1/clients/{client_id}/suggestions",
                            params={"kind": "cross_sell", **params}, headers=_headers(key), timeout=10)
    assert response.status_code == 200, response.text
    return response


def _items(answer: dict[str, Any]) -> list[str]:
    return [s["item_id"] for s in answer["suggestions"]]


def _react(service: Service, answer: dict[str, Any], item_id: str, reaction: str, key: str) -> int:
    response = requests.post(f"{service.base}/v1/reactions", headers=_headers(key), timeout=10,
                             json={"recommendation_id": answer["recommendation_id"], "item_id": item_id,
                                   "reaction": reaction})
    return response.status_code


#: What the rate-limit test sends in turn: the answers count in their Redis round trip, the rest
#: before the handler (`service.rate_limit`); (method, path, body, status when allowed)
LIMITED_CALLS = (("GET", "/v1/items/coffee/similar", None, 200),
                 ("GET", "/v1/clients/limit-1/suggestions", None, 200),
                 ("POST", "/v1/events", [{"client_id": "limit-1", "item_id": "mug", "type": "view",
                                          "timestamp": "2024-05-01T10:00:00Z"}], 202))


def test_the_rate_limit_is_one_budget_across_replicas(replicas: Replicas) -> None:
    remaining = []
    for n in range(ALLOWANCE):  # half through A, half through B, three kinds of request in turn
        method, path, body, status = LIMITED_CALLS[n % len(LIMITED_CALLS)]
        response = requests.request(method, replicas.both[n % 2].base + path, json=body, headers=_headers("limit"),
                                    timeout=10)
        assert response.status_code == status, response.text
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining == list(range(ALLOWANCE - 1, -1, -1))  # one count, whichever replica answered

    for service in replicas.both:  # each has answered only half the allowance, and both refuse
        for method, path, body, _ in LIMITED_CALLS:
            refused = requests.request(method, service.base + path, json=body, headers=_headers("limit"), timeout=10)
            assert refused.status_code == 429, (path, refused.text)
            assert refused.headers["Content-Type"] == "application/problem+json"
            assert refused.json()["type"].endswith("rate-limited") and int(refused.headers["Retry-After"]) >= 1
        other = requests.get(f"{service.base}/v1/items/coffee/similar", headers=_headers("other"), timeout=10)
        assert other.status_code == 200  # the budget is the key's, not the replica's


def test_fatigue_counts_shows_reported_to_either_replica(replicas: Replicas) -> None:
    a, b = replicas.both
    client = _client("fatigue")
    # (the replica that answers, the replica the show is reported to)
    for n, (answering, reporting) in enumerate([(a, a), (b, b), (a, b)]):
        answer = _suggest(answering, client, "fatigue").json()
        assert "mug" in _items(answer), n
        assert _react(reporting, answer, "mug", "shown", "fatigue") == 201
        if n == 2:  # another item of the kind is clicked: the kind is not ignored, the mug is
            other = next(item for item in _items(answer) if item != "mug")
            assert _react(answering, answer, other, "shown", "fatigue") == 201
            assert _react(reporting, answer, other, "clicked", "fatigue") == 201
    for service in replicas.both:
        after = _suggest(service, client, "fatigue").json()
        assert "mug" not in _items(after) and after["suggestions"] and after["resting"] == []


def test_both_replicas_put_a_client_in_the_same_group(replicas: Replicas) -> None:
    for variant in ("control", "champion", "candidate"):
        for client in (_client("group", variant, skip=n) for n in range(2)):
            groups = [requests.get(f"{service.base}/v1/clients/{client}/group", headers=_headers(f"group-{label}"),
                                   timeout=10).json() for service, label in zip(replicas.both, "ab", strict=True)]
            assert groups[0] == groups[1] and groups[0]["variant"] == variant, (client, groups)
            answers = [_suggest(service, client, f"group-{label}").json()
                       for service, label in zip(replicas.both, "ab", strict=True)]
            served = [(answer["variant"], answer["model_version"]) for answer in answers]
            assert served[0] == served[1] and served[0][0] == variant, (client, served)
            assert (served[0][1] == replicas.candidate) == (variant == "candidate"), (client, served)


def test_a_rejection_on_one_replica_is_honoured_by_both(replicas: Replicas) -> None:
    a, b = replicas.both
    client, someone_else = _client("reject"), _client("reject", skip=1)
    answer = _suggest(b, client, "reject").json()
    top = _items(answer)[0]
    assert _suggest(a, client, "reject").headers["X-Cache"] == "hit"  # both now hold the answer with it
    assert _react(a, answer, top, "rejected", "reject") == 201  # to B's answer, through A
    for service in replicas.both:
        assert top not in _items(_suggest(service, client, "reject").json())
    assert top in _items(_suggest(b, someone_else, "reject").json())  # another client still gets it


def test_an_answer_cached_by_one_replica_is_served_by_the_other_until_a_purchase(replicas: Replicas) -> None:
    a, b = replicas.both
    client = _client("cache")
    first = _suggest(a, client, "cache")
    second = _suggest(b, client, "cache")
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("miss", "hit")
    assert second.json()["suggestions"] == first.json()["suggestions"]
    assert second.json()["recommendation_id"] != first.json()["recommendation_id"]  # each answer traced on its own
    bought = _items(first.json())[0]
    purchase = [{"client_id": client, "item_id": bought, "type": "purchase", "timestamp": "2024-05-02T09:00:00Z"}]
    assert requests.post(f"{b.base}/v1/events", json=purchase, headers=_headers("cache"), timeout=10).status_code == 202
    after = _suggest(a, client, "cache")
    assert after.headers["X-Cache"] == "miss" and bought not in _items(after.json())
    assert _suggest(b, client, "cache").headers["X-Cache"] == "hit"  # A's new answer, served by B

    similar = [requests.get(f"{service.base}/v1/items/machine/similar", headers=_headers("cache"), timeout=10)
               for service in (b, a)]  # an answer that belongs to no one is shared too
    assert [r.headers["X-Cache"] for r in similar] == ["miss", "hit"]


def test_what_either_replica_accepted_is_in_the_shared_event_store(replicas: Replicas) -> None:
    a, b = replicas.both
    batches = {service: [{"client_id": "events-1", "item_id": "milk", "type": "purchase", "event_id": f"replica-{label}",
                         "timestamp": "2024-05-03T09:00:00Z"}] for service, label in zip((a, b), "ab", strict=True)}
    for service, batch in batches.items():
        posted = requests.post(f"{service.base}/v1/events", json=batch, headers=_headers("events"), timeout=10)
        assert posted.status_code == 202 and posted.json()["accepted"] == 1
    retried = requests.post(f"{b.base}/v1/events", json=batches[a], headers=_headers("events"), timeout=10)
    assert retried.status_code == 202 and retried.json()["duplicates"] == 1  # A's batch, retried through B
    answers = {label: _suggest(service, f"events-{label}", "events").json()
               for service, label in zip((a, b), "ab", strict=True)}
    for label, other in (("a", b), ("b", a)):  # each answer's click reported to the other replica
        assert _react(other, answers[label], _items(answers[label])[0], "clicked", "events") == 201

    store = EventStore(replicas.events_url)
    try:
        stored = store.purchases(TENANT)
        assert sorted(stored.loc[stored["client_id"] == "events-1", "event_id"]) == ["replica-a", "replica-b"]
        now = datetime.now(timezone.utc)
        reactions = store.reactions_between(TENANT, now - timedelta(hours=1), now + timedelta(hours=1))
        assert {a["recommendation_id"] for a in answers.values()} <= set(reactions["recommendation_id"])
        for answer in answers.values():  # exposures reach the store through the shared buffer's writers
            stored_exposure = wait_until(lambda rid=answer["recommendation_id"]: store.exposure(TENANT, rid), timeout=20)
            assert stored_exposure["client_id"] == answer["client_id"]
    finally:
        store.close()


def test_an_erasure_through_one_replica_reaches_what_both_share(replicas: Replicas) -> None:
    a, b = replicas.both
    client = _client("erased")
    answer = _suggest(a, client, "erase").json()
    top = _items(answer)[0]
    assert _react(a, answer, top, "rejected", "erase") == 201
    purchase = [{"client_id": client, "item_id": "mug", "type": "purchase", "timestamp": "2024-05-02T09:00:00Z"}]
    assert requests.post(f"{a.base}/v1/events", json=purchase, headers=_headers("erase"), timeout=10).status_code == 202
    last = _suggest(a, client, "erase")  # cached on A, to be erased through B
    assert last.headers["X-Cache"] == "miss"
    shown = [answer["recommendation_id"], last.json()["recommendation_id"]]
    store = EventStore(replicas.events_url)
    try:
        wait_until(lambda: all(store.exposure(TENANT, rid) for rid in shown), timeout=20)  # drained, stored
        erased = requests.delete(f"{b.base}/v1/clients/{client}", headers={"X-API-Key": ADMIN_KEY}, timeout=10)
        assert erased.status_code == 200, erased.text
        body = erased.json()
        assert body["cached_answers_deleted"] == 1
        assert body["stored_deleted"]["events"] == 1 and body["stored_deleted"]["exposures"] == 2
        assert client in store.erased_clients(TENANT)
        assert not [rid for rid in shown if store.exposure(TENANT, rid)]
    finally:
        store.close()
    after = _suggest(a, client, "erase")  # A answers as for someone it never saw
    assert after.headers["X-Cache"] == "miss" and top in _items(after.json()) and "mug" in _items(after.json())
    with redis.Redis.from_url(replicas.redis_url) as r:
        assert r.sismember(erasures_key(TENANT), client)  # the trainer's mirror of erasures
    # the durable local record is the replica's own: B's state folder has the line, A's none
    lines = (replicas.root / "b" / "state" / "erasures.jsonl").read_text().splitlines()
    assert [json.loads(line)["client_id"] for line in lines] == [client]
    assert not (replicas.root / "a" / "state" / "erasures.jsonl").exists()


def test_a_sign_in_to_the_screens_on_one_replica_holds_on_the_other(replicas: Replicas) -> None:
    a, b = replicas.both
    form = requests.get(f"{a.base}/app/sign-in", timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    signed_in = requests.post(f"{a.base}/app/sign-in", cookies=form.cookies, allow_redirects=False, timeout=10,
                              data={"csrf": csrf, "key": TEST_KEYS["screens"], "name": "Ana"})
    assert signed_in.status_code == 303, signed_in.text
    session = {"crm_app_session": signed_in.cookies["crm_app_session"]}  # the session lives in Redis
    card = requests.get(f"{b.base}/app/clients/c1", cookies=session, allow_redirects=False, timeout=10)
    assert card.status_code == 200, card.headers.get("Location")
    signed_out = requests.post(f"{b.base}/app/sign-out", cookies=session, allow_redirects=False, timeout=10,
                               data={"csrf": re.search(r'name="csrf" value="([^"]+)"', card.text).group(1)})
    assert signed_out.status_code == 303
    assert requests.get(f"{a.base}/app/clients/c1", cookies=session, allow_redirects=False,
                        timeout=10).status_code == 302  # signed out through B, out on A too


#: The shop's traffic (as support/reliability_harness.SHOP_TRAFFIC), its clients on the champion's
#: arm but one on the candidate's, whose answers the champion's moves must leave alone.
ON_CHAMPION = [_client("load", skip=n) for n in range(2)]
ON_CANDIDATE = _client("load", "candidate")
LOAD_EVENT_CLIENT = "load-events"
LOAD_TRAFFIC = (
    Call("client_suggestions", "GET", f"/v1/clients/{ON_CHAMPION[0]}/suggestions?kind=all&limit=3"),
    Call("client_suggestions", "GET", f"/v1/clients/{ON_CHAMPION[1]}/suggestions?kind=cross_sell&limit=5"),
    Call("cart_suggestions", "POST", "/v1/cart/suggestions", {"items": ["coffee"], "limit": 3}),
    Call("cart_suggestions", "POST", "/v1/cart/suggestions", {"client_id": ON_CHAMPION[0], "items": ["machine"],
                                                              "limit": 3}),
    Call("similar_items", "GET", "/v1/items/coffee/similar?limit=3"),
    Call("candidate_suggestions", "GET", f"/v1/clients/{ON_CANDIDATE}/suggestions?kind=cross_sell&limit=5"),
    Call("events", "POST", "/v1/events", {"events": [{"client_id": LOAD_EVENT_CLIENT, "item_id": "mug", "type": "view",
                                                      "timestamp": "2024-05-01T10:00:00Z"}]}),
)


class Load(LoadLoop[tuple[str, Outcome]]):
    """`threads` clients sending LOAD_TRAFFIC to A and B in turn, each request with the next
    key of LOAD_KEYS, until stopped: a load balancer's round robin in front of the replicas.
    `results` holds (replica label, outcome)."""

    def __init__(self, replicas: Replicas, threads: int = 4) -> None:
        self._keys = itertools.cycle(LOAD_KEYS)
        self._key_lock = threading.Lock()
        self.replicas = replicas
        super().__init__(self._one, threads=threads, pause=0.02, started_of=lambda result: result[1].started)

    def _one(self, session: requests.Session, turn: int) -> tuple[str, Outcome]:
        label, service = ("a", "b")[turn % 2], self.replicas.both[turn % 2]
        with self._key_lock:
            key = next(self._keys)
        return label, send(session, service.base, LOAD_TRAFFIC[(turn // 2) % len(LOAD_TRAFFIC)],
                           {"X-API-Key": key}, timeout=10)


def _move_champion(replicas: Replicas) -> str:
    """A new version, and @champion moved to it with the registry client as a person would."""
    version = register_variant(replicas.mlflow, replicas.model_name, alias=None)
    client = MlflowClient(tracking_uri=replicas.mlflow, registry_uri=replicas.mlflow)
    client.set_registered_model_alias(replicas.model_name, "champion", version)
    return version


def test_an_alias_move_reaches_both_replicas_under_load_without_failures_or_mixed_answers(
        replicas: Replicas) -> None:
    a, b = replicas.both
    before = a.wait_serving(None)
    served = [next(iter(set(before.values())))]
    switched_at: list[float] = []
    with Load(replicas) as load:
        wait_until(lambda: load.count_since(0) >= 20, timeout=30)
        # 1. an admin reload on A: A's worker loads it, and its notice moves A's other worker and B
        served.append(_move_champion(replicas))
        reload = requests.post(f"{a.base}/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY}, timeout=60)
        assert reload.status_code == 200 and reload.json()["model_version"] == served[-1], reload.text
        for service in (b, a):
            service.wait_serving(served[-1], timeout=30)
        switched_at.append(time.monotonic())
        wait_until(lambda: load.count_since(switched_at[-1]) >= 20, timeout=30)
        windows = [(switched_at[-1], time.monotonic())]
        # 2. the trainer's way: the alias moved, and the notice published on Redis
        served.append(_move_champion(replicas))
        with redis.Redis.from_url(replicas.redis_url) as r:
            r.publish(MODEL_UPDATES_CHANNEL, json.dumps({"name": replicas.model_name, "alias": "champion",
                                                         "version": served[-1]}))
        for service in replicas.both:
            service.wait_serving(served[-1], timeout=30)
        switched_at.append(time.monotonic())
        wait_until(lambda: load.count_since(switched_at[-1]) >= 20, timeout=30)
        windows.append((switched_at[-1], time.monotonic()))

    expected = {"events": 202}
    failed = [(label, o) for label, o in load.results if o.status != expected.get(o.name, 200)]
    answers = [(label, o) for label, o in load.results if o.name not in ("events", "candidate_suggestions")]
    mixed = [(label, o) for label, o in answers if o.mixed or o.version not in served]
    assert not failed, failed[:5]
    assert not mixed, mixed[:5]
    candidate = [o for _, o in load.results if o.name == "candidate_suggestions"]
    assert candidate and all(o.version == replicas.candidate and not o.mixed for o in candidate)  # the other arm
    for label in "ab":  # each replica answered with each version
        assert {o.version for name, o in answers if name == label} == set(served), label
    for version, (start, end) in zip(served[1:], windows, strict=True):  # once both serve it, only it answers
        during = {o.version for _, o in answers if start < o.started < end}
        assert during == {version}, (version, sorted(during))
    accepted = sum(1 for _, o in load.results if o.name == "events")  # all 202: none failed
    assert accepted and _stored_events(replicas, LOAD_EVENT_CLIENT) == accepted  # every one, whichever replica


def _stored_events(replicas: Replicas, client_id: str) -> int:
    """The client's rows in the shared store's events table."""
    with EventStore(replicas.events_url) as store, store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(events).where(
            events.c.tenant == TENANT, events.c.client_id == client_id)).scalar_one()
