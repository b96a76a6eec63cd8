"""Engines for the event store: SQLite as the embedded default, PostgreSQL in production.

Why these settings: a posted event answered 2xx must survive a killed worker or machine, so
SQLite runs in WAL mode with `synchronous=FULL` (every commit reaches the disk) and waits up to
`busy_timeout` for a writer of another process instead of failing at once (several gunicorn
workers share the file). PostgreSQL is reached through psycopg 3 with a connect timeout, so a
server that is down is an error within seconds, never a hang; `pool_pre_ping` replaces a pooled
connection the server closed (a restarted database). Every connection or commit failure becomes
`StoreUnavailable`, which the service answers as a 503 and the trainer reports.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)


def json_text(value: Any) -> str:
    """A JSON column's value as stored (the exposure writer calls it directly, `eventstore.bulk`)."""
    return orjson.dumps(value).decode()


#: JSON columns (an exposure's items) written and read by orjson: the exposure writer stores every
#: answer's row, and the standard library's encoder was a fifth of its cost per row.
_JSON = {"json_serializer": json_text, "json_deserializer": orjson.loads}

#: How long SQLite waits for another writer's lock, and PostgreSQL for a connection.
BUSY_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_S = 5


#: Database errors that are mistakes of the caller (a constraint, a type, bad SQL), never an outage.
_MISTAKES = (IntegrityError, ProgrammingError, DataError)


class StoreUnavailable(RuntimeError):
    """The event store cannot be reached or did not commit: nothing was written."""


def normalise_url(url: str) -> str:
    """The URL the engine is built from: a relative SQLite path made absolute from the working
    directory (every worker and child process then means the same file), and a bare
    `postgresql://` (or `postgres://`) driven by psycopg 3, the driver installed."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path and not path.startswith("/") and not path.startswith(":memory:"):
            return "sqlite:///" + str(Path(path).resolve())
        return url
    for bare in ("postgres://", "postgresql://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare):]
    return url


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for another backend or an in-memory database)."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url` with the durability settings above (the SQLite file's folder is created)."""
    url = normalise_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
                               **_JSON)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}, **_JSON)
    return create_engine(url, pool_pre_ping=True, **_JSON)


def describe(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(normalise_url(url)).render_as_string(hide_password=True)


@contextmanager
def connection(engine: Engine, what: str) -> Iterator[Connection]:
    """A connection in a transaction committed on leaving the block; a failure to connect,
    execute or commit raises `StoreUnavailable` naming `what` was being done and where."""
    try:
        with engine.begin() as conn:
            yield conn
    except _MISTAKES:
        raise  # a bug or bad data, not an outage: the caller must see it as it is
    except (OperationalError, InterfaceError, DBAPIError) as exc:
        raise StoreUnavailable(f"event store {engine.url.render_as_string(hide_password=True)} is unavailable "
                               f"({what}): {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
