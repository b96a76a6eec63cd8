"""The event store's shortcuts for times agree with the slower conversions they replace."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from eventstore.bulk import sqlite_time
from eventstore.schema import exposures
from eventstore.times import utc

INSTANTS = [datetime(2026, 12, 7, 20, 39, 20, 123000, timezone.utc), datetime(2026, 1, 1, tzinfo=timezone.utc),
            datetime(999, 1, 2, 3, 4, 5, 6, timezone.utc), datetime(9999, 12, 31, 23, 59, 59, 999999, timezone.utc)]


@pytest.mark.parametrize("instant", INSTANTS, ids=str)
def test_sqlite_time_is_the_text_sqlalchemy_stores(instant: datetime) -> None:
    dialect = SQLiteDialect_pysqlite()
    stored_by_sqlalchemy = exposures.c.shown_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert sqlite_time(instant) == stored_by_sqlalchemy(instant)


@pytest.mark.parametrize("text", ["2026-12-07T20:39:20.123+00:00", "2026-12-07T22:39:20.123+02:00",
                                  "2026-12-07T20:39:20", "2026-12-07 20:39:20.123456", "2026-12-07",
                                  "2026-12-07T20:39:20Z", "2026-12-07T20:39:20.123-05:30"])
def test_iso_text_is_read_as_pandas_reads_it(text: str) -> None:
    read, stamp = utc(text), pd.Timestamp(text)
    by_pandas = (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()
    assert read.utcoffset() == timedelta(0) and read == by_pandas


def test_text_that_is_not_iso_still_goes_through_pandas() -> None:
    assert utc("7 Dec 2026 20:39") == datetime(2026, 12, 7, 20, 39, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        utc("not a time")
