"""Task outcomes in the event store, on SQLite and PostgreSQL: a store created before issue 13 gains the new
columns at start, and the latest outcome of a task is its state."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import create_engine, text

from eventstore import EventStore

OLD_TABLE = ("CREATE TABLE task_outcomes (id INTEGER PRIMARY KEY, tenant VARCHAR(64) NOT NULL, task_id VARCHAR(128) "
             "NOT NULL, client_id VARCHAR(128), outcome VARCHAR(32) NOT NULL, note TEXT, recorded_at TIMESTAMP "
             "WITH TIME ZONE NOT NULL)")



def test_an_old_store_gains_the_columns_and_keeps_the_latest_outcome(events_url: str) -> None:
    engine = create_engine(events_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text(OLD_TABLE.replace("INTEGER PRIMARY KEY", "SERIAL PRIMARY KEY")
                          if engine.dialect.name == "postgresql" else OLD_TABLE))
    engine.dispose()
    with EventStore(events_url) as store:
        store.create_all()
        store.create_all()  # twice: nothing to add the second time
        at = datetime(2026, 12, 1, tzinfo=timezone.utc)
        store.add_task_outcome("shop", {"task_id": "t1", "client_id": "c1", "outcome": "dismissed",
                                        "recorded_by": "m1", "trigger": "lapsing", "recorded_at": at})
        store.add_task_outcome("shop", {"task_id": "t1", "client_id": "c1", "outcome": "done",
                                        "recorded_by": "m2", "recorded_at": at + timedelta(hours=1)})
        latest = store.task_outcomes("shop")["t1"]
    assert (latest["outcome"], latest["recorded_by"], latest["recorded_at"]) == ("done", "m2", at + timedelta(hours=1))
