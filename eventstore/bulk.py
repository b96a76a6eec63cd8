"""The exposure writer's INSERT: compiled once per store, fed tuples (SQLite's executemany, PostgreSQL's COPY).

Why not `conn.execute(insert(...), rows)`: every answer adds an exposure row, and the writer that
stores them shares the serving worker's GIL. Through SQLAlchemy each row was a dict that the
compiled statement turned into parameters column by column (about half the writer's CPU), and on
PostgreSQL "insertmanyvalues" made one statement of 500 VALUES groups whose text psycopg parsed
afresh for every batch (a query that long is not cached): twice the cost again. Here each row is
a tuple in the table's column order, and only the two columns whose values the dialect converts
are converted: items by the dialect's own converter (the JSON serializer of `eventstore.engine`),
a time on SQLite by `sqlite_time` (SQLAlchemy's text for it, tested equal), so the stored values
are the ones SQLAlchemy stored.

- SQLite: `INSERT ... ON CONFLICT (recommendation_id) DO NOTHING`, compiled once, through the
  driver's executemany (`Connection.exec_driver_sql`, so SQLAlchemy's error handling still applies).
- PostgreSQL: psycopg's executemany still spends about 8 us a row in Python (its pipeline's
  per-row bookkeeping), COPY about 1: the rows are copied into a temporary table of the session
  (`exposures_batch`, emptied at every commit), and one `INSERT ... SELECT ... ON CONFLICT DO
  NOTHING` moves them, in the caller's transaction (so the erasure lock and filter of
  `EventStore.add_exposures` cover them as before). A driver error is raised as SQLAlchemy's
  (`DBAPIError.instance`), so a lost server is still `StoreUnavailable`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from eventstore.engine import json_text
from eventstore.schema import exposures
from eventstore.times import now, utc

#: The keys an exposure row may have (every column but the tenant, which the store adds).
EXPOSURE_KEYS = frozenset(c.name for c in exposures.columns if c.name != "tenant")
#: The order of `ExposureInsert.values`' tuples (checked against the compiled statement).
_COLUMNS = ["recommendation_id", "tenant", "client_id", "visitor_id", "variant", "model_version", "endpoint", "kind",
            "channel", "items", "shown_at"]
_LIST = ", ".join(_COLUMNS)
#: PostgreSQL: the session's batch table (its rows go at every commit), the COPY into it, and the move.
_BATCH_TABLE = "CREATE TEMPORARY TABLE IF NOT EXISTS exposures_batch (LIKE exposures) ON COMMIT DELETE ROWS"
_COPY = f"COPY exposures_batch ({_LIST}) FROM STDIN"
_MOVE = (f"INSERT INTO exposures ({_LIST}) SELECT {_LIST} FROM exposures_batch "
         "ON CONFLICT (recommendation_id) DO NOTHING")


def _same(value: Any) -> Any:
    return value


def sqlite_time(value: datetime) -> str:
    """A UTC datetime as SQLAlchemy's SQLite DATETIME stores it ("2026-12-07 20:39:20.123000": local
    digits, no offset) in a fifth of its time (its processor fills a dict of the fields per value)."""
    return value.isoformat(" ", "microseconds")[:26]


class ExposureInsert:
    """Inserts exposure rows, skipping those whose `recommendation_id` is stored already."""

    def __init__(self, engine: Engine, dialect_insert: Callable[..., Any]) -> None:
        if [c.name for c in exposures.columns] != _COLUMNS:  # `values` builds its tuples in this order
            raise RuntimeError(f"exposure columns {[c.name for c in exposures.columns]} are not the writer's {_COLUMNS}")
        dialect = engine.dialect
        self._copying = dialect.name == "postgresql"
        self._driver_error = dialect.loaded_dbapi.Error
        self.sql = _MOVE if self._copying else self._compiled(dialect, dialect_insert)
        items = self._converter(engine, "items")
        probe = [{"item_id": "1", "group": None, "position": 1}]
        # SQLite's converter is SQLAlchemy's wrapper around `json_text`: called directly, a row costs
        # a microsecond less (PostgreSQL's wraps the value for psycopg instead, and is kept).
        self._items = json_text if items(probe) == json_text(probe) else items
        self._sqlite = dialect.name == "sqlite"
        self._time = sqlite_time if self._sqlite else self._converter(engine, "shown_at")

    @staticmethod
    def _compiled(dialect: Any, dialect_insert: Callable[..., Any]) -> str:
        """The INSERT with the driver's positional placeholders, parameters in `_COLUMNS` order."""
        positional = type(dialect)(paramstyle="qmark")
        statement = dialect_insert(exposures).on_conflict_do_nothing(index_elements=["recommendation_id"])
        compiled = statement.compile(dialect=positional, column_keys=_COLUMNS)
        if list(compiled.positiontup or ()) != _COLUMNS:
            raise RuntimeError(f"parameters {compiled.positiontup} are not in the writer's order {_COLUMNS}")
        return str(compiled)

    @staticmethod
    def _converter(engine: Engine, column: str) -> Callable[[Any], Any]:
        """What the dialect does to a value of `column` before the driver sees it (configured as the engine is)."""
        dialect = engine.dialect
        return exposures.c[column].type.dialect_impl(dialect).bind_processor(dialect) or _same

    def values(self, tenant: str, row: Mapping[str, Any]) -> tuple[tuple[Any, ...], datetime]:
        """The parameters of one row, and its `shown_at` in UTC (now when not given). A key that is no
        column is a caller's mistake, refused rather than dropped."""
        if not row.keys() <= EXPOSURE_KEYS:
            raise ValueError(f"unknown fields {sorted(row.keys() - EXPOSURE_KEYS)}; a row has {sorted(EXPOSURE_KEYS)}")
        get = row.get
        given = get("shown_at")
        shown_at = now() if given is None else utc(given)
        if self._sqlite and type(given) is str and len(given) == 29 and given[19] == "." and given.endswith("+00:00"):
            stored = f"{given[:10]} {given[11:23]}000"  # the buffer's own form (milliseconds, UTC): no formatting
        else:
            stored = self._time(shown_at)
        return (get("recommendation_id"), tenant, get("client_id"), get("visitor_id"), get("variant"),
                get("model_version"), get("endpoint"), get("kind"), get("channel"), self._items(get("items")),
                stored), shown_at

    def run(self, conn: Connection, values: list[tuple[Any, ...]]) -> int:
        """Insert `values` in the caller's transaction: the number of rows new."""
        if not self._copying:
            return conn.exec_driver_sql(self.sql, values).rowcount
        conn.exec_driver_sql(_BATCH_TABLE)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(_COPY) as copy:
                for row in values:
                    copy.write_row(row)
        except self._driver_error as error:
            raise DBAPIError.instance(_COPY, None, error, self._driver_error) from error
        finally:
            cursor.close()
        return conn.exec_driver_sql(self.sql).rowcount
