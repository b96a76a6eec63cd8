"""Erasure against what is still on its way: answers buffered in Redis, reactions to them, answers
being computed. What predates an erasure must not survive it, however late it arrives; what comes
after it is new data. Each test runs the real app (or the real store) on real Redis and on SQLite
and PostgreSQL; the last one holds a writer in the middle of its transaction on PostgreSQL."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, text
from support.apps import app_maker
from support.service_model_double import CatalogueRecommender

from eventstore import EventStore
from eventstore.schema import exposures
from service.redis.trips import Slot

pytestmark = pytest.mark.integration

READ = {"X-API-Key": "read-key-0123456789"}
ADMIN = {"X-API-Key": "admin-key-0123456789"}


@pytest.fixture()
def make_app(tmp_path: Path, redis_url: str, events_url: str) -> Iterator[Callable[..., Flask]]:
    env = {"API_KEYS": READ["X-API-Key"], "ADMIN_API_KEYS": ADMIN["X-API-Key"], "REDIS_URL": redis_url,
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db", "MODEL_CACHE_DIR": str(tmp_path / "cache"),
           "SERVICE_STATE_DIR": str(tmp_path / "state"), "EVENTS_DB_URL": events_url, "CONTROL_SHARE": "0",
           "REDIS_TIMEOUT_SECONDS": "1"}
    yield from app_maker(env, lambda app: app.extensions["crm"].models.install(CatalogueRecommender(), "7"))


def _suggest(client: FlaskClient, client_id: str = "c1") -> dict[str, Any]:
    response = client.get(f"/v1/clients/{client_id}/suggestions", query_string={"kind": "cross_sell"}, headers=READ)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _erase(client: FlaskClient, client_id: str = "c1") -> None:
    response = client.delete(f"/v1/clients/{client_id}", headers=ADMIN)
    assert response.status_code == 200, response.get_data(as_text=True)


def _exposure(recommendation_id: str, client_id: str | None, shown_at: datetime) -> dict[str, Any]:
    return {"recommendation_id": recommendation_id, "client_id": client_id, "visitor_id": None,
            "variant": "champion", "model_version": "7", "endpoint": "client", "kind": "cross_sell",
            "channel": None, "items": [{"item_id": "i1", "group": None, "kind": "cross_sell", "position": 1}],
            "shown_at": shown_at}


def test_an_answer_still_buffered_when_its_client_is_erased_never_reaches_the_store(
        make_app: Callable[..., Flask]) -> None:
    app = make_app()
    client, rt = app.test_client(), app.extensions["crm"]
    before = _suggest(client)  # its exposure waits in the Redis stream for the writer
    _erase(client)
    after = _suggest(client)  # asked for after the erasure: new data
    rt.drain.drain_all()
    assert rt.events.exposure("default", before["recommendation_id"]) is None
    assert rt.events.exposure("default", after["recommendation_id"])["client_id"] == "c1"


def test_the_store_drops_rows_shown_at_or_before_the_clients_erasure(events_url: str) -> None:
    with EventStore(events_url) as store:
        store.create_all()
        erased_at = datetime.now(timezone.utc)
        store.erase_client("default", "c1")
        later = datetime.now(timezone.utc) + timedelta(seconds=1)
        rows = [_exposure("a" * 32, "c1", erased_at - timedelta(seconds=1)), _exposure("b" * 32, "c1", later),
                _exposure("c" * 32, "c2", erased_at - timedelta(seconds=1))]
        assert store.add_exposures("default", rows) == 2
        assert store.exposure("default", "a" * 32) is None
        assert store.exposure("default", "b" * 32) is not None and store.exposure("default", "c" * 32) is not None
        assert store.add_exposures("shop-b", [_exposure("d" * 32, "c1", erased_at)]) == 1  # another shop's c1


def test_a_reaction_to_an_answer_shown_before_the_erasure_is_refused(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    client, rt = app.test_client(), app.extensions["crm"]
    answer = _suggest(client)
    item = answer["suggestions"][0]["item_id"]
    _erase(client)  # the answer's hot copy in Redis still names it
    reacted = client.post("/v1/reactions", json={"recommendation_id": answer["recommendation_id"], "item_id": item,
                                                 "reaction": "rejected"}, headers=READ)
    assert reacted.status_code == 410, reacted.get_data(as_text=True)
    assert reacted.get_json()["type"].endswith("recommendation-erased")
    assert rt.events.reactions_between("default", datetime(2000, 1, 1), datetime(2100, 1, 1)).empty
    assert rt.redis.connection.run("check", lambda r: r.exists(rt.redis.keys.loop("c1"))) == 0  # no state again
    fresh = _suggest(client)  # an answer after the erasure takes reactions as before
    kept = client.post("/v1/reactions", json={"recommendation_id": fresh["recommendation_id"],
                                              "item_id": fresh["suggestions"][0]["item_id"], "reaction": "clicked"},
                       headers=READ)
    assert kept.status_code == 201, kept.get_data(as_text=True)


def test_an_answer_computed_while_its_client_is_erased_is_not_cached(make_app: Callable[..., Flask]) -> None:
    """A client with no purchase or reaction yet has no generation key: the read says '0'."""
    app = make_app()
    client, rt = app.test_client(), app.extensions["crm"]
    trips, keys = rt.redis.trips, rt.redis.keys
    slot = Slot(keys.answers("c1"), "computed-before")
    read = trips.read(rate=None, subject="c1", slot=slot, exposure=None, shared=False)
    assert read.status == "miss" and read.generation == "0"
    _erase(client)  # while the answer is being computed
    assert not trips.finish(slot=slot, generation=read.generation, body='{"suggestions": []}', items_json="[]",
                            exposure=None, subject="c1")
    assert rt.redis.connection.run("check", lambda r: r.hlen(keys.answers("c1"))) == 0
    ttl = rt.redis.connection.run("check", lambda r: r.ttl(keys.generation("c1")))
    assert 0 < ttl <= rt.settings.recent_purchases_ttl_seconds  # it does not live forever


def _waiting_on_locks(store: EventStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                     "AND datname = current_database()")).scalar())


def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a state of the other sessions (a guard against hanging, not a timed assertion)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.05)


def test_a_batch_read_before_the_erasure_and_committed_after_it_is_dropped(postgres_url: str) -> None:
    """The writer has inserted c1's answer and checked it against the erasures, but not committed,
    when c1's erasure comes: neither may miss the other. To hold the writer there, its check waits on
    a row another session locks (c2's answer, which c2's erasure covers and which is already stored)."""
    shown = datetime.now(timezone.utc) - timedelta(seconds=1)
    with EventStore(postgres_url) as store, EventStore(postgres_url) as other:
        store.create_all()
        store.erase_client("default", "c2")
        with other.engine.begin() as conn:  # stored before c2's erasure could drop it: an older service's row
            conn.execute(insert(exposures).values(tenant="default", **_exposure("b" * 32, "c2", shown)))
        blocker = other.engine.connect()
        held = blocker.begin()
        blocker.execute(text("SELECT 1 FROM exposures WHERE recommendation_id = :r FOR UPDATE"), {"r": "b" * 32})
        done: dict[str, Any] = {}
        writer = threading.Thread(target=lambda: done.update(written=store.add_exposures(
            "default", [_exposure("a" * 32, "c1", shown), _exposure("b" * 32, "c2", shown)])))
        writer.start()
        _until(lambda: _waiting_on_locks(store) == 1, "the writer waiting in its transaction")
        eraser = threading.Thread(target=lambda: done.update(erased=store.erase_client("default", "c1")))
        eraser.start()
        _until(lambda: not eraser.is_alive() or _waiting_on_locks(store) == 2, "the erasure done or waiting")
        held.rollback()
        blocker.close()
        writer.join(30)
        eraser.join(30)
        assert "written" in done and "erased" in done
        assert store.exposure("default", "a" * 32) is None
        assert store.exposure("default", "b" * 32) is None
