"""What the trainer and the effect report read from the store, as pandas frames.

Why frames: both consumers compute over columns (attribution joins purchases to exposures, the
trainer concatenates purchases to a data folder). Every time column comes back as
datetime64[ns, UTC] whichever backend holds it, and the columns are there even when no row is.
Time windows are half-open, `start <= t < end`, so consecutive windows never count a row twice.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Table, select

from eventstore.schema import events, exposures, reactions
from eventstore.times import READABLE, readable, utc, utc_column

#: The columns of each reader (the table's columns without the surrogate key and the tenant).
PURCHASE_COLUMNS = tuple(c.name for c in events.columns if c.name not in ("id", "tenant", "type"))
EXPOSURE_COLUMNS = tuple(c.name for c in exposures.columns if c.name != "tenant")
REACTION_COLUMNS = tuple(c.name for c in reactions.columns if c.name not in ("id", "tenant"))


def _window(query: Any, column: Any, start: Any, end: Any) -> Any:
    """Rows in [start, end), and always inside the instants a frame can hold (`times.READABLE`)."""
    query = query.where(column >= readable(utc(start) if start is not None else READABLE[0]))
    return query.where(column < readable(utc(end) if end is not None else READABLE[1]))


def _frame(conn: Connection, table: Table, columns: tuple[str, ...], query: Any) -> pd.DataFrame:
    rows = conn.execute(query).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows], columns=list(columns))
    for col in table.columns:
        if col.name in columns and col.type.python_type is datetime:
            frame[col.name] = utc_column(frame[col.name])
    for col in ("quantity", "price"):
        if col in frame.columns:
            frame[col] = frame[col].astype("float64")
    return frame


def purchases(conn: Connection, tenant: str, start: Any = None, end: Any = None) -> pd.DataFrame:
    """Purchase events of `tenant` (posted, or imported from a folder: `source`), by occurred_at."""
    cols = [events.c[name] for name in PURCHASE_COLUMNS]
    query = select(*cols).where(events.c.tenant == tenant, events.c.type == "purchase")
    query = _window(query, events.c.occurred_at, start, end).order_by(events.c.occurred_at, events.c.id)
    return _frame(conn, events, PURCHASE_COLUMNS, query)


def exposures_between(conn: Connection, tenant: str, start: Any, end: Any) -> pd.DataFrame:
    """Answers shown to `tenant`'s clients and visitors in [start, end); `items` as a list of dicts."""
    cols = [exposures.c[name] for name in EXPOSURE_COLUMNS]
    query = select(*cols).where(exposures.c.tenant == tenant)
    query = _window(query, exposures.c.shown_at, start, end).order_by(exposures.c.shown_at,
                                                                     exposures.c.recommendation_id)
    frame = _frame(conn, exposures, EXPOSURE_COLUMNS, query)
    frame["items"] = frame["items"].map(lambda v: json.loads(v) if isinstance(v, str) else v)
    return frame


def reactions_between(conn: Connection, tenant: str, start: Any, end: Any) -> pd.DataFrame:
    """Reactions of `tenant` in [start, end), by reacted_at."""
    cols = [reactions.c[name] for name in REACTION_COLUMNS]
    query = select(*cols).where(reactions.c.tenant == tenant)
    query = _window(query, reactions.c.reacted_at, start, end).order_by(reactions.c.reacted_at, reactions.c.id)
    frame = _frame(conn, reactions, REACTION_COLUMNS, query)
    frame["snooze_days"] = frame["snooze_days"].astype("Int64")
    return frame
