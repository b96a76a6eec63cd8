"""The event store on both backends it supports: SQLite (the embedded default) and a real
PostgreSQL server started by the fixtures. Every test runs on each; nothing is mocked."""
from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pandas as pd
import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError
from support.postgres import PostgresServer
from support.processes import ROOT, free_port

from eventstore import EventStore, StoreUnavailable
from eventstore.engine import normalise_url
from eventstore.schema import exposures

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    url = f"sqlite:///{tmp_path / 'store' / 'events.db'}" if request.param == "sqlite" \
        else request.getfixturevalue("postgres_url")
    opened = EventStore(url)
    opened.create_all()
    yield opened
    opened.close()


def purchase(event_id: str | None, client: str = "c1", item: str = "i1", when: datetime = T0, **more) -> dict:
    return {"event_id": event_id, "type": "purchase", "client_id": client, "item_id": item, "quantity": 1.0,
            "price": 2.5, "occurred_at": when, **more}


def exposure(rid: str, client: str | None = "c1", when: datetime = T0, **more) -> dict:
    return {"recommendation_id": rid, "client_id": client, "variant": "champion", "model_version": "3",
            "endpoint": "client", "kind": "cross_sell", "channel": "crm", "shown_at": when,
            "items": [{"item_id": "i1", "group": "g1", "kind": "cross_sell", "position": 1}], **more}


def test_tables_are_created_once_and_the_store_is_up(store: EventStore) -> None:
    store.create_all()  # a second worker starting
    assert store.status() == "up"


def test_a_retried_batch_is_counted_once(store: EventStore) -> None:
    batch = [purchase("e1"), purchase("e2", item="i2"), purchase("e3", item="i3")]
    assert store.add_events("shop", batch) == (3, 0)
    assert store.add_events("shop", batch) == (0, 3)
    assert store.add_events("shop", [purchase("e4"), purchase("e4")]) == (1, 1)  # twice in one batch
    assert store.add_events("other", batch) == (3, 0)  # an event id is unique per tenant
    assert sorted(store.purchases("shop")["event_id"]) == ["e1", "e2", "e3", "e4"]


def test_events_without_an_id_are_always_inserted(store: EventStore) -> None:
    assert store.add_events("shop", [purchase(None), purchase(None)]) == (2, 0)
    assert store.add_events("shop", [purchase(None)]) == (1, 0)
    assert len(store.purchases("shop")) == 3
    assert store.add_events("shop", []) == (0, 0)


def test_an_unknown_field_is_refused(store: EventStore) -> None:
    with pytest.raises(ValueError, match="unknown fields"):
        store.add_events("shop", [purchase("e1", colour="red")])


def test_exposures_are_idempotent_and_found_by_id(store: EventStore) -> None:
    assert store.add_exposures("shop", [exposure("r1"), exposure("r2", client=None, visitor_id="v9")]) == 2
    assert store.add_exposures("shop", [exposure("r1"), exposure("r3")]) == 1  # a re-delivered batch
    assert store.add_exposures("shop", [exposure("r4"), exposure("r4", client=None)]) == 1  # twice in one batch
    assert store.add_exposures("shop", []) == 0
    with pytest.raises(ValueError, match="unknown fields"):
        store.add_exposures("shop", [exposure("r5", colour="red")])
    with pytest.raises(IntegrityError):  # a mistake, not an outage: never StoreUnavailable
        store.add_exposures("shop", [exposure("r6", variant=None)])
    assert store.exposure("shop", "r6") is None and store.add_exposures("shop", [exposure("r6")]) == 1
    found = store.exposure("shop", "r2")
    assert found is not None and found["visitor_id"] == "v9" and found["client_id"] is None
    assert found["shown_at"] == T0 and found["shown_at"].tzinfo is not None
    assert found["items"] == [{"item_id": "i1", "group": "g1", "kind": "cross_sell", "position": 1}]
    assert store.exposure("shop", "nope") is None
    assert store.exposure("other", "r1") is None  # another tenant's answer is not ours


def test_exposures_are_stored_as_sqlalchemy_core_stored_them(store: EventStore) -> None:
    """The writer's executemany path (`eventstore.bulk`) against a plain Core insert of the same row:
    the database holds the same text for every column, whatever form `shown_at` came in."""
    items = [{"item_id": "i1", "group": "g1", "kind": "cross_sell", "position": 1},
             {"item_id": "b7", "group": None, "kind": "service_package", "position": 2, "note": "é ✓"}]
    full = {"client_id": "c1", "visitor_id": "v1", "variant": "candidate", "model_version": "12",
            "endpoint": "cart", "kind": "upsell", "channel": "email", "items": items}
    shown = datetime(2026, 3, 1, 14, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2)))
    as_sent = {"by-datetime": shown, "by-text": shown.isoformat(timespec="milliseconds"),
               "by-naive-utc": datetime(2026, 3, 1, 12, 0, 0, 250000),
               # as the exposure writer reads a row from Redis (`parse_row`): UTC text to the
               # millisecond, the items as the JSON text they were buffered as
               "by-buffer": shown.astimezone(timezone.utc).isoformat(timespec="milliseconds")}
    buffered_items = {"by-buffer": orjson.Fragment(orjson.dumps(items))}
    assert store.add_exposures("shop", [{"recommendation_id": rid, **full, "items": buffered_items.get(rid, items),
                                         "shown_at": at} for rid, at in as_sent.items()]) == 4
    with store.engine.begin() as conn:
        conn.execute(insert(exposures).values(recommendation_id="by-core", tenant="shop", **full,
                                              shown_at=datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)))
        stored = {row[0]: row[1:] for row in conn.execute(text(
            "SELECT recommendation_id, tenant, client_id, visitor_id, variant, model_version, endpoint, kind, "
            "channel, CAST(items AS TEXT), CAST(shown_at AS TEXT) FROM exposures"))}
    assert stored["by-core"][-2].startswith('[{"item_id":"i1"')  # the engine's orjson text, not json.dumps'
    assert {rid: stored[rid] for rid in as_sent} == {rid: stored["by-core"] for rid in as_sent}
    assert store.exposure("shop", "by-text") == {"recommendation_id": "by-text", **full,
                                                 "shown_at": datetime(2026, 3, 1, 12, 0, 0, 250000, timezone.utc)}


def test_the_same_reaction_is_stored_once(store: EventStore) -> None:
    row = {"recommendation_id": "r1", "item_id": "i1", "reaction": "rejected", "reason": "already_have",
           "channel": "crm", "client_id": "c1"}
    assert store.add_reaction("shop", row) is True
    assert store.add_reaction("shop", row) is False
    assert store.add_reaction("shop", {**row, "reaction": "clicked"}) is True
    assert store.add_reaction("other", row) is True
    assert len(store.reactions_between("shop", T0 - timedelta(days=1), datetime.now(timezone.utc)
                                       + timedelta(minutes=1))) == 2


def test_erasure_removes_the_client_everywhere_and_is_recorded(store: EventStore) -> None:
    store.add_events("shop", [purchase("e1"), purchase("e2", client="c2")])
    store.add_events("other", [purchase("e1")])
    store.add_exposures("shop", [exposure("r1"), exposure("r2", client="c2")])
    store.add_reaction("shop", {"recommendation_id": "r1", "item_id": "i1", "reaction": "shown"})  # no client id
    store.add_reaction("shop", {"recommendation_id": "r1", "item_id": "i1", "reaction": "clicked", "client_id": "c1"})
    store.add_reaction("shop", {"recommendation_id": "r2", "item_id": "i1", "reaction": "shown", "client_id": "c2"})
    store.add_task_outcome("shop", {"task_id": "t1", "client_id": "c1", "outcome": "called"})
    store.add_reaction_actor("shop", "r1", "i1", "clicked", "Ana (key:0123abcd)")
    store.add_reaction_actor("shop", "r2", "i1", "shown", "Ana (key:0123abcd)")

    counts = store.erase_client("shop", "c1", request_id="req-1")

    assert counts == {"events": 1, "exposures": 1, "reactions": 2, "reaction_actors": 1, "task_outcomes": 1}
    assert store.reaction_actor("shop", "r1", "i1", "clicked") is None
    assert store.reaction_actor("shop", "r2", "i1", "shown") == "Ana (key:0123abcd)"
    assert list(store.purchases("shop")["client_id"]) == ["c2"]
    assert list(store.purchases("other")["client_id"]) == ["c1"]  # another shop's client c1 stays
    assert store.exposure("shop", "r1") is None and store.exposure("shop", "r2") is not None
    left = store.reactions_between("shop", T0 - timedelta(days=1), datetime.now(timezone.utc) + timedelta(minutes=1))
    assert list(left["recommendation_id"]) == ["r2"]
    assert store.erased_clients("shop") == {"c1"}
    assert store.erased_clients("other") == set()
    assert store.erase_client("shop", "c1")["events"] == 0  # erasing again is harmless


def test_purge_drops_what_is_older_than_the_retention(store: EventStore) -> None:
    old, new = T0 - timedelta(days=500), T0
    store.add_events("shop", [purchase("old", when=old), purchase("new", when=new)])
    store.add_events("other", [purchase("old", when=old)])
    store.add_exposures("shop", [exposure("r-old", when=old), exposure("r-new", when=new)])
    store.add_reaction("shop", {"recommendation_id": "r-old", "item_id": "i1", "reaction": "shown", "reacted_at": old})
    store.erase_client("shop", "gone")

    counts = store.purge("shop", T0 - timedelta(days=400))

    assert counts == {"events": 1, "exposures": 1, "reactions": 1, "reaction_actors": 0, "task_outcomes": 0}
    assert list(store.purchases("shop")["event_id"]) == ["new"]
    assert len(store.purchases("other")) == 1  # one tenant's retention run leaves the others alone
    assert store.erased_clients("shop") == {"gone"}  # the record of an erasure is kept
    assert store.purge(None, T0 - timedelta(days=400))["events"] == 1


def test_readers_answer_in_utc_with_their_columns(store: EventStore) -> None:
    empty = store.purchases("shop")
    assert list(empty.columns) == ["event_id", "client_id", "visitor_id", "item_id", "quantity", "price",
                                   "order_id", "occurred_at", "received_at", "source"]
    assert str(empty["occurred_at"].dtype) == "datetime64[ns, UTC]"
    store.add_events("shop", [purchase("paris", when="2026-03-01T10:00:00+02:00"),  # 08:00 UTC
                              purchase("naive", when=datetime(2026, 3, 2, 8, 0)),  # naive counts as UTC
                              {"event_id": "v", "type": "view", "client_id": "c1", "item_id": "i1",
                               "occurred_at": T0}])
    got = store.purchases("shop")
    assert list(got["event_id"]) == ["paris", "naive"]  # views are not purchases
    assert list(got["occurred_at"]) == [pd.Timestamp("2026-03-01 08:00", tz="UTC"),
                                        pd.Timestamp("2026-03-02 08:00", tz="UTC")]
    assert str(got["received_at"].dtype) == "datetime64[ns, UTC]" and got["source"].eq("api").all()
    window = store.purchases("shop", start="2026-03-01T08:00:00Z", end="2026-03-02T08:00:00Z")
    assert list(window["event_id"]) == ["paris"]  # half-open: start counted, end not

    store.add_exposures("shop", [exposure("r1", when=T0), exposure("r2", when=T0 + timedelta(days=2))])
    shown = store.exposures_between("shop", T0, T0 + timedelta(days=1))
    assert list(shown["recommendation_id"]) == ["r1"] and shown["items"].iloc[0][0]["position"] == 1
    assert str(shown["shown_at"].dtype) == "datetime64[ns, UTC]"
    reacted = store.reactions_between("shop", T0, T0 + timedelta(days=1))
    assert reacted.empty and "reacted_at" in reacted.columns and str(reacted["reacted_at"].dtype) == \
        "datetime64[ns, UTC]"


def test_a_write_that_returned_is_seen_by_a_fresh_store(store: EventStore) -> None:
    store.add_events("shop", [purchase("e1")])
    again = EventStore(store.url)
    try:
        assert list(again.purchases("shop")["event_id"]) == ["e1"]
    finally:
        again.close()


def test_folder_purchases_after_the_first_exposure_are_copied_once(store: EventStore) -> None:
    folder = pd.DataFrame({
        "client_id": ["c1", "c1", "c2", "c3", "c4"], "item_id": ["i1", "i2", "i1", "i1", "i5"],
        "timestamp": pd.to_datetime(["2026-02-01 10:00", "2026-03-02 10:00", "2026-03-03 09:00",
                                     "2026-03-04 09:00", "2026-03-04 09:30"]),
        "order_id": ["o1", "o2", "o3", "c3|2026-03-04", "o5"], "quantity": [1.0, 2.0, 1.0, 1.0, -1.0],
        "price": [1.0, 2.0, 3.0, float("nan"), 5.0]})
    assert store.import_folder_purchases("shop", folder) == 0  # nothing shown yet: nothing to attribute
    store.add_exposures("shop", [exposure("r1", when=T0)])
    # c2's purchase was posted through the API too (same order, item, day); c3's without an order
    store.add_events("shop", [purchase("api-1", client="c2", item="i1", when="2026-03-03T15:00:00Z", order_id="o3"),
                              purchase("api-2", client="c3", item="i1", when="2026-03-04T20:00:00Z")])

    assert store.import_folder_purchases("shop", folder) == 1  # c1's o2 only: before T0, return, posted twice
    assert store.import_folder_purchases("shop", folder) == 0  # a second training copies nothing again
    copied = store.purchases("shop").query("source == 'folder'")
    assert list(copied[["client_id", "item_id", "order_id"]].itertuples(index=False, name=None)) == [("c1", "i2", "o2")]
    assert copied["quantity"].iloc[0] == 2.0


def test_an_unreachable_server_is_an_error_not_a_hang() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    dead = EventStore(url)
    try:
        started = time.monotonic()
        assert dead.status() == "down"
        with pytest.raises(StoreUnavailable, match="unavailable"):
            dead.add_events("shop", [purchase("e1")])
        with pytest.raises(StoreUnavailable):
            dead.purchases("shop")
        assert time.monotonic() - started < 15
    finally:
        dead.close()


def test_a_server_that_stops_makes_the_store_unavailable_until_it_is_back() -> None:
    own = PostgresServer()
    try:
        own.start()
        store = EventStore(own.create_database())
        try:
            store.create_all()
            assert store.add_events("shop", [purchase("e1")]) == (1, 0)
            assert store.add_exposures("shop", [exposure("r1")]) == 1
            own.stop_server()
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                store.add_events("shop", [purchase("e2")])
            with pytest.raises(StoreUnavailable):  # the writer's executemany path too: its entries stay pending
                store.add_exposures("shop", [exposure("r2")])
            assert store.status() == "down" and time.monotonic() - started < 15
            own.start()
            assert store.status() == "up"  # pool_pre_ping: the pooled connection is replaced
            assert store.add_events("shop", [purchase("e1"), purchase("e2")]) == (1, 1)  # e1 survived
            assert store.add_exposures("shop", [exposure("r1"), exposure("r2")]) == 1
        finally:
            store.close()
    except RuntimeError as exc:
        pytest.fail(f"could not run PostgreSQL: {exc}")
    finally:
        own.remove()


def test_urls_are_normalised() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///var/events.db") == f"sqlite:///{Path('var/events.db').resolve()}"
    assert normalise_url("sqlite:////abs/e.db") == "sqlite:////abs/e.db"


def test_sqlite_commits_to_disk_and_waits_for_other_writers(tmp_path: Path) -> None:
    """WAL and synchronous=FULL on every connection; two processes writing at once both succeed
    (busy_timeout) and every row is there."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = EventStore(url)
    try:
        store.create_all()
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
        writer = ("import sys; from eventstore import EventStore; s = EventStore(sys.argv[1]); "
                  "[s.add_events('shop', [{'event_id': f'{sys.argv[2]}-{b}-{i}', 'type': 'purchase', "
                  "'client_id': 'c', 'item_id': 'i', 'occurred_at': '2026-01-01'} for i in range(10)]) "
                  "for b in range(30)]; s.close()")
        procs = [subprocess.Popen([sys.executable, "-c", writer, url, name], cwd=ROOT) for name in ("a", "b")]
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
        assert len(store.purchases("shop")) == 600
    finally:
        store.close()


def test_rows_outside_what_a_frame_holds_are_stored_but_never_read(store: EventStore) -> None:
    """An event dated 1138 (the fuzzer sent one) is kept as sent, but a reader asked for any
    window, however wide, answers without it instead of overflowing pandas' nanoseconds."""
    ancient = datetime(1138, 11, 9, tzinfo=timezone.utc)
    store.add_events("t", [purchase("old", when=ancient), purchase("new")])
    wide = store.purchases("t", datetime(1, 1, 1, tzinfo=timezone.utc), datetime(9999, 1, 1, tzinfo=timezone.utc))
    assert list(wide["event_id"]) == ["new"] and list(store.purchases("t")["event_id"]) == ["new"]
