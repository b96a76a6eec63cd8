"""Times as the store keeps them: timezone-aware UTC.

Why one helper: SQLite has no time zone type (SQLAlchemy writes the wall-clock digits and drops the
offset), PostgreSQL's `timestamptz` answers in the session's zone. Every time is converted to an aware
UTC datetime before it is written or compared (SQLite then keeps UTC digits, PostgreSQL the right
instant whatever its zone), so both backends hold, order and answer the same instants; a naive time
is taken to be UTC already (the data contract's timestamps are naive UTC).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd


def utc(value: Any) -> datetime:
    """`value` (datetime, pandas Timestamp, ISO text or epoch seconds) as an aware UTC datetime."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if type(value) is datetime:  # the common case (every exposure drained), without pandas' parsing
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if type(value) is str:  # ISO text (exposures read from the Redis buffer), else pandas' wider parsing below
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:  # "+00:00" parses to timezone.utc itself: the buffer's every row, without a second pass
            return parsed if parsed.tzinfo is timezone.utc else utc(parsed)
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        raise ValueError(f"not a time: {value!r}")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


#: The instants a frame can hold (pandas' nanosecond range, a day inside it): readers never return
#: a row outside them (an event dated in year 1138 is stored as sent, but no period can analyse it).
READABLE = (datetime(1677, 9, 23, tzinfo=timezone.utc), datetime(2262, 4, 10, tzinfo=timezone.utc))


def readable(value: datetime) -> datetime:
    """`value` moved into READABLE, so a window may be asked for any dates."""
    return min(max(value, READABLE[0]), READABLE[1])


def now() -> datetime:
    return datetime.now(timezone.utc)


def utc_column(values: pd.Series) -> pd.Series:
    """A column read back from either backend as datetime64[ns, UTC]."""
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")
