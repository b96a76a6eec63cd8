"""`EventStore`: the durable record of what the loop must not lose, over SQLAlchemy Core.

Why every write commits before it returns: the service answers 2xx only after the store said
yes, so an answered event is on disk (SQLite `synchronous=FULL`, PostgreSQL's own fsync) whatever
is killed next. Why writes are idempotent at the database (`INSERT ... ON CONFLICT DO NOTHING` on
the unique keys of `eventstore.schema`): a client retrying a batch, or a drainer re-delivering an
exposure after a crash between commit and acknowledgement, must not count anything twice, and only
the database can decide that across workers and replicas.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Table, delete, func, insert, inspect, select, text

from eventstore import folder, readers
from eventstore.bulk import ExposureInsert
from eventstore.engine import StoreUnavailable, connection, describe, make_engine, sqlite_path
from eventstore.schema import erasures, events, exposures, metadata, reaction_actors, reactions, task_outcomes
from eventstore.times import now, utc

_EVENT_FIELDS = tuple(c.name for c in events.columns if c.name not in ("id", "tenant"))
_EXPOSURE_FIELDS = tuple(c.name for c in exposures.columns if c.name != "tenant")  # what `exposure` reads
_REACTION_FIELDS = tuple(c.name for c in reactions.columns if c.name not in ("id", "tenant"))
_TASK_FIELDS = tuple(c.name for c in task_outcomes.columns if c.name not in ("id", "tenant"))


class ClientErased(ValueError):
    """A row about a client's answer that the client's erasure covers: it was not stored."""


def _row(tenant: str, row: Mapping[str, Any], fields: tuple[str, ...], times: tuple[str, ...],
         defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A row to insert: every field present (None when not given), times in UTC; an unknown key is
    a caller's mistake, refused rather than silently dropped."""
    unknown = set(row) - set(fields)
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}; a row has {list(fields)}")
    out = {"tenant": tenant, **{name: row.get(name) for name in fields}}
    for name, value in defaults.items():
        if out[name] is None:
            out[name] = value() if callable(value) else value
    for name in times:
        if out[name] is not None:
            out[name] = utc(out[name])
    return out


def _erased_since(conn: Any, tenant: str, since: datetime) -> dict[str, datetime]:
    """Client id -> its latest erasure, for the tenant's clients erased at or after `since` (usually
    none): one small read per batch, cheaper than checking each row against `erasures` in SQL."""
    query = select(erasures.c.client_id, func.max(erasures.c.erased_at)).where(
        erasures.c.tenant == tenant, erasures.c.erased_at >= since).group_by(erasures.c.client_id)
    return {client_id: utc(at) for client_id, at in conn.execute(query).all()}


#: Nullable columns added to a table after it first shipped: a store created before gets them at start
#: (`create_all` creates missing tables only). task_outcomes gained who and which change in issue 13.
ADDED_COLUMNS = {task_outcomes: ("recorded_by", "trigger")}


def _add_new_columns(conn: Any) -> None:
    """ALTER TABLE ... ADD COLUMN for each of `ADDED_COLUMNS` an existing table lacks (SQLite and PostgreSQL)."""
    for table, names in ADDED_COLUMNS.items():
        present = {column["name"] for column in inspect(conn).get_columns(table.name)}
        for name in names:
            if name not in present:
                column = table.c[name]
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{name}" {kind}'))


class EventStore:
    """Events, exposures, reactions, erasures and task outcomes of every tenant, in one database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._insert = self._dialect_insert()
        self._exposures = ExposureInsert(self.engine, self._insert)

    def _dialect_insert(self) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert
            return pg_insert
        if self.engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert
            return sqlite_insert
        raise ValueError(f"{describe(self.url)}: the event store runs on SQLite or PostgreSQL")

    def __repr__(self) -> str:
        return f"EventStore({describe(self.url)!r})"

    def close(self) -> None:
        """Close every pooled connection (tests and shutdown: SQLite files are left cleanly)."""
        self.engine.dispose()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def file(self) -> Path | None:
        """The SQLite database file (None on PostgreSQL)."""
        return sqlite_path(self.url)

    def create_all(self) -> None:
        """Create the tables that are missing (idempotent; run at service start and by the trainer).
        Two processes starting at once may race to create a table: the loser tries again once."""
        for attempt in (1, 2, 3):
            try:
                with connection(self.engine, "creating tables") as conn:
                    metadata.create_all(conn)
                    _add_new_columns(conn)
                return
            except Exception as error:  # noqa: BLE001 - "already exists" from a concurrent creator
                if attempt == 3 or (isinstance(error, StoreUnavailable) and "already exists" not in str(error)):
                    raise
                time.sleep(0.1 * attempt)  # the other creator's transaction commits meanwhile

    def status(self) -> str:
        """"up" when a query answers, else "down" (for /health: never raises)."""
        try:
            with connection(self.engine, "status") as conn:
                conn.execute(text("SELECT 1"))
            return "up"
        except StoreUnavailable:
            return "down"

    def _insert_ignoring(self, table: Table, rows: list[dict[str, Any]], keys: list[str], what: str) -> int:
        """Insert `rows`, skipping those whose `keys` already exist; the number inserted."""
        with connection(self.engine, what) as conn:
            return self._insert_new(conn, table, rows, keys)

    def _insert_new(self, conn: Any, table: Table, rows: list[dict[str, Any]], keys: list[str]) -> int:
        """`_insert_ignoring` inside the caller's transaction."""
        # One statement executed over all rows: SQLAlchemy batches them ("insertmanyvalues") and
        # compiles the statement once, where a VALUES list per chunk was compiled per row count.
        statement = self._insert(table).on_conflict_do_nothing(index_elements=keys).returning(table.c[keys[-1]])
        return len(conn.execute(statement, rows).all())  # rowcount is -1 under psycopg

    def _hold_erasures(self, conn: Any) -> None:
        """Make an erasure wait for this transaction, or this transaction for an erasure under way.

        Why: a row about a client that predates the client's erasure (an exposure read from the
        Redis buffer before the erasure, a reaction checked before it) may be committed after the
        erasure deleted the client's rows. The writer therefore inserts, then drops what an erasure
        covers (`_erased_since`), in one transaction; that check must see every erasure committed
        before this transaction commits. SQLite serialises writers (the INSERT takes the write lock,
        so nothing commits in between). PostgreSQL reads each statement at its own start and an
        uncommitted row is invisible to an erasure's DELETE, so the writer takes a SHARE lock on
        `erasures`: `erase_client` inserts its erasure row first (its ROW EXCLUSIVE lock waits for
        the writers under way, and new writers wait for it), then deletes with a fresh view."""
        if self.engine.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE erasures IN SHARE MODE"))

    # -- writes ------------------------------------------------------------------------------

    def add_events(self, tenant: str, rows: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
        """Store client events in one transaction: (inserted, duplicates). A row whose `event_id`
        the tenant already stored (or sent earlier in the same batch) is a duplicate; a row without
        an `event_id` is always inserted."""
        prepared = [_row(tenant, r, _EVENT_FIELDS, ("occurred_at", "received_at"),
                         {"received_at": now, "source": "api"}) for r in rows]
        if not prepared:
            return 0, 0
        inserted = self._insert_ignoring(events, prepared, ["tenant", "event_id"], "adding events")
        return inserted, len(prepared) - inserted

    def add_exposures(self, tenant: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Store answers shown (idempotent on `recommendation_id`): the number new. `shown_at` may be a
        datetime or ISO text (the writer passes rows as the Redis buffer holds them). An answer shown
        to a client at or before the client's erasure is not kept, even when it reaches the store
        after the erasure (the writer buffers answers in Redis): see `_hold_erasures`."""
        values, shown = [], []
        for row in rows:
            row_values, shown_at = self._exposures.values(tenant, row)
            values.append(row_values)
            shown.append(shown_at)
        if not values:
            return 0
        clients = [row[2] for row in values]
        with connection(self.engine, "adding exposures") as conn:
            if all(client is None for client in clients):
                return self._exposures.run(conn, values)
            self._hold_erasures(conn)
            inserted = self._exposures.run(conn, values)
            erased = _erased_since(conn, tenant, min(shown))
            gone = [row[0] for row, client, at in zip(values, clients, shown, strict=True)
                    if client in erased and erased[client] >= at] if erased else []
            dropped = conn.execute(delete(exposures).where(
                exposures.c.tenant == tenant, exposures.c.recommendation_id.in_(gone))).rowcount if gone else 0
        return max(0, inserted - dropped)

    def add_reaction(self, tenant: str, row: Mapping[str, Any], shown_at: datetime | None = None) -> bool:
        """Store a reaction; False when the same (recommendation, item, reaction) is there already.

        `shown_at`, when its answer's time is known: raises `ClientErased` (nothing stored) when the
        reaction's client was erased at or after the answer was shown, however late the reaction
        comes (its answer went with the client; see `_hold_erasures` for a reaction racing the erasure)."""
        prepared = _row(tenant, row, _REACTION_FIELDS, ("reacted_at",), {"reacted_at": now})
        keys = ["tenant", "recommendation_id", "item_id", "reaction"]
        if shown_at is None or prepared["client_id"] is None:
            return self._insert_ignoring(reactions, [prepared], keys, "adding a reaction") == 1
        with connection(self.engine, "adding a reaction") as conn:
            self._hold_erasures(conn)
            stored = self._insert_new(conn, reactions, [prepared], keys) == 1
            erased = _erased_since(conn, tenant, utc(shown_at)).get(prepared["client_id"])
            if erased is not None:
                raise ClientErased(f"client {prepared['client_id']!r} was erased at {erased.isoformat()}, "
                                   f"after answer {prepared['recommendation_id']} was shown")  # rolls back
        return stored

    def add_reaction_actor(self, tenant: str, recommendation_id: str, item_id: str, reaction: str,
                           actor: str) -> None:
        """Record who made a reaction from the /app screens (once per reaction, as the reaction)."""
        row = {"tenant": tenant, "recommendation_id": recommendation_id, "item_id": item_id, "reaction": reaction,
               "actor": actor[:128], "recorded_at": now()}
        self._insert_ignoring(reaction_actors, [row], ["tenant", "recommendation_id", "item_id", "reaction"],
                              "recording who reacted")

    def reaction_actor(self, tenant: str, recommendation_id: str, item_id: str, reaction: str) -> str | None:
        """Who made this reaction from the screens (None: it came through the API)."""
        query = select(reaction_actors.c.actor).where(
            reaction_actors.c.tenant == tenant, reaction_actors.c.recommendation_id == recommendation_id,
            reaction_actors.c.item_id == item_id, reaction_actors.c.reaction == reaction)
        with connection(self.engine, "reading who reacted") as conn:
            return conn.execute(query).scalar()

    def add_task_outcome(self, tenant: str, row: Mapping[str, Any]) -> None:
        """Store what a manager did with a task (task_id, outcome; client_id, note, recorded_at)."""
        prepared = _row(tenant, row, _TASK_FIELDS, ("recorded_at",), {"recorded_at": now})
        with connection(self.engine, "adding a task outcome") as conn:
            conn.execute(insert(task_outcomes).values(prepared))

    def erase_client(self, tenant: str, client_id: str, request_id: str | None = None) -> dict[str, int]:
        """Delete everything the store holds about a client and record the erasure, in one
        transaction: rows deleted per table. Reactions go by client and by the client's exposures
        (a reaction row may lack the client id its exposure had), and with them who made them (`reaction_actors`)."""
        mine = select(exposures.c.recommendation_id).where(exposures.c.tenant == tenant,
                                                           exposures.c.client_id == client_id)
        with connection(self.engine, "erasing a client") as conn:
            # The erasure row first: it waits for the writers under way (`_hold_erasures`), whose rows
            # the deletes below then see, and every later writer sees it.
            conn.execute(insert(erasures).values(tenant=tenant, client_id=client_id, erased_at=now(),
                                                 request_id=request_id))
            counts = {
                "reactions": conn.execute(delete(reactions).where(
                    reactions.c.tenant == tenant,
                    (reactions.c.client_id == client_id) | reactions.c.recommendation_id.in_(mine))).rowcount,
                "reaction_actors": conn.execute(delete(reaction_actors).where(
                    reaction_actors.c.tenant == tenant, reaction_actors.c.recommendation_id.in_(mine))).rowcount,
                "exposures": conn.execute(delete(exposures).where(
                    exposures.c.tenant == tenant, exposures.c.client_id == client_id)).rowcount,
                "events": conn.execute(delete(events).where(
                    events.c.tenant == tenant, events.c.client_id == client_id)).rowcount,
                "task_outcomes": conn.execute(delete(task_outcomes).where(
                    task_outcomes.c.tenant == tenant, task_outcomes.c.client_id == client_id)).rowcount,
            }
        return counts

    def purge(self, tenant: str | None, older_than: datetime) -> dict[str, int]:
        """Retention: delete events, exposures, reactions and task outcomes older than `older_than`
        (of every tenant when `tenant` is None); rows deleted per table. Erasures are kept: they
        are the record that a client must stay out of training."""
        cutoff = utc(older_than)
        plan = {"events": (events, events.c.occurred_at), "exposures": (exposures, exposures.c.shown_at),
                "reactions": (reactions, reactions.c.reacted_at),
                "reaction_actors": (reaction_actors, reaction_actors.c.recorded_at),
                "task_outcomes": (task_outcomes, task_outcomes.c.recorded_at)}
        counts: dict[str, int] = {}
        with connection(self.engine, "purging") as conn:
            for name, (table, column) in plan.items():
                statement = delete(table).where(column < cutoff)
                if tenant is not None:
                    statement = statement.where(table.c.tenant == tenant)
                counts[name] = conn.execute(statement).rowcount
        return counts

    def import_folder_purchases(self, tenant: str, rows: pd.DataFrame) -> int:
        """Copy a retraining folder's purchases newer than the tenant's earliest exposure into
        `events` (`source = "folder"`), so attribution sees purchases that never came through the
        API; lines already stored (same order, client, item and day) are skipped. The number copied."""
        return folder.import_purchases(self, tenant, rows)

    # -- reads -------------------------------------------------------------------------------

    def exposure(self, tenant: str, recommendation_id: str) -> dict[str, Any] | None:
        """One answer as recorded (shown_at in UTC), or None."""
        query = select(*[exposures.c[n] for n in _EXPOSURE_FIELDS]).where(
            exposures.c.tenant == tenant, exposures.c.recommendation_id == recommendation_id)
        with connection(self.engine, "reading an exposure") as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        found = dict(row)
        found["shown_at"] = utc(found["shown_at"])
        return found

    def task_outcomes(self, tenant: str) -> dict[str, dict[str, Any]]:
        """task_id -> its latest outcome {"outcome", "recorded_by", "recorded_at", "note", "client_id"}."""
        columns = [task_outcomes.c[n] for n in ("task_id", "client_id", "outcome", "note", "recorded_by",
                                                "recorded_at")]
        query = select(*columns).where(task_outcomes.c.tenant == tenant).order_by(task_outcomes.c.id)
        with connection(self.engine, "reading task outcomes") as conn:
            rows = conn.execute(query).mappings().all()
        return {row["task_id"]: {**dict(row), "recorded_at": utc(row["recorded_at"])} for row in rows}

    def erased_clients(self, tenant: str) -> set[str]:
        with connection(self.engine, "reading erasures") as conn:
            return set(conn.execute(select(erasures.c.client_id).where(erasures.c.tenant == tenant)).scalars())

    def earliest_exposure(self, tenant: str) -> datetime | None:
        """When the tenant's first stored answer was shown (None before any)."""
        with connection(self.engine, "reading exposures") as conn:
            first = conn.execute(select(func.min(exposures.c.shown_at)).where(exposures.c.tenant == tenant)).scalar()
        return None if first is None else utc(first)

    def purchases(self, tenant: str, start: Any = None, end: Any = None) -> pd.DataFrame:
        with connection(self.engine, "reading purchases") as conn:
            return readers.purchases(conn, tenant, start, end)

    def exposures_between(self, tenant: str, start: Any, end: Any) -> pd.DataFrame:
        with connection(self.engine, "reading exposures") as conn:
            return readers.exposures_between(conn, tenant, start, end)

    def reactions_between(self, tenant: str, start: Any, end: Any) -> pd.DataFrame:
        with connection(self.engine, "reading reactions") as conn:
            return readers.reactions_between(conn, tenant, start, end)
