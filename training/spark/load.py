"""Read and validate the data contract with Spark: the same rules, reasons and counts as `features.loader`.

Any path Spark reads works as the folder: a local one, `s3a://bucket/shop/`, `abfss://...`
(the Hadoop connector and credentials are the cluster's; docs/spark.md). The transactions, the
one table that grows with the business, are validated on the executors: each rule of
`features.loader.clean_transactions` is a column expression here, every rejection reason is
counted in one aggregation, and duplicates keep the first line of the file as the loader does.
The small tables (items, clients, packages) are read by Spark and validated by the loader's own
functions on the driver, so their counts cannot drift. What differs: messages name the file and
the column but not the line (a rejected row is counted, not located), and a CSV that is not
UTF-8 is found by the replacement characters Spark decodes it with, without the byte's position.

The validated lines are then collected to the driver (Arrow), in file order, because the rest of
the fit reads them in pandas (`training.spark` says which steps).
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pandas as pd

from features import schema as s
from features.loader import (
    MAX_ID_LENGTH,
    MAX_QUANTITY,
    DataError,
    Dataset,
    LoadReport,
    assemble,
    clean_clients,
    clean_items,
    clean_packages,
)

log = logging.getLogger(__name__)

ROW = "_row"  # each line's position in the file (monotonic within and across partitions)
LINE_COLUMNS = (s.CLIENT, s.ITEM, s.TIMESTAMP, s.ORDER, s.QUANTITY, s.PRICE)


def _fs_path(spark: Any, path: str) -> tuple[Any, Any]:
    """(Hadoop FileSystem, Path) of `path`: how a folder on any store is listed."""
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    try:
        return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath
    except Exception as exc:  # py4j's error: the JVM names the missing connector
        text = str(exc)
        if "No FileSystem for scheme" in text or ("ClassNotFoundException" in text and "FileSystem" in text):
            raise DataError(f"{path}: this Spark has no connector for the path's scheme (s3a needs "
                            "hadoop-aws, abfss hadoop-azure: docs/spark.md)") from exc
        raise


def find_table(spark: Any, folder: str, table: str) -> str | None:
    """`folder/table.parquet` or `.csv` (a file, or a folder Spark wrote), Parquet first."""
    for ext in (".parquet", ".csv"):
        path = f"{folder.rstrip('/')}/{table}{ext}"
        fs, hpath = _fs_path(spark, path)
        if fs.exists(hpath):
            if fs.getFileStatus(hpath).isFile() and fs.getFileStatus(hpath).getLen() == 0:
                raise DataError(f"{path}: the file is empty")
            return path
    return None


def read_table(spark: Any, path: str) -> Any:
    """The table as a Spark DataFrame of raw columns (CSV: all text), names stripped and lowercased."""
    from pyspark.errors import PySparkException

    try:
        if path.endswith(".parquet"):
            frame = _read_parquet(spark, path)
        else:
            frame = (spark.read.option("header", True).option("encoding", "UTF-8")
                     .option("ignoreLeadingWhiteSpace", True).option("mode", "PERMISSIVE").csv(path))
    except PySparkException as exc:
        raise DataError(f"{path}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
    return frame.toDF(*[str(c).strip().lower() for c in frame.columns])


#: Marks a frame whose Parquet file stored nanosecond timestamps, read as longs (Spark has no such type).
NANOS = "crm.nanos_as_long"


def _read_parquet(spark: Any, path: str) -> Any:
    """Parquet as Spark reads it; nanosecond timestamps (what pandas writes) come back as longs
    of nanoseconds, flagged in the frame's metadata so `parse_timestamps` converts them."""
    from pyspark.errors import AnalysisException

    from training.spark.session import SPARK_LOG_LEVEL

    key = "spark.sql.legacy.parquet.nanosAsLong"
    spark.sparkContext.setLogLevel("OFF")  # the failed probe below is expected: not an error to show
    try:
        return spark.read.parquet(path)
    except AnalysisException as exc:
        if "TIMESTAMP(NANOS" not in str(exc):
            raise
    finally:
        spark.sparkContext.setLogLevel(SPARK_LOG_LEVEL)
    spark.conf.set(key, "true")
    frame = spark.read.parquet(path)
    return frame.select(*[frame[f"`{c}`"].alias(c, metadata={NANOS: True}) if _is_long(frame, c) else frame[f"`{c}`"]
                          for c in frame.columns])


def _is_long(frame: Any, name: str) -> bool:
    from pyspark.sql.types import LongType

    return isinstance(frame.schema[name].dataType, LongType)


def _require(frame: Any, path: str, required: tuple[str, ...]) -> None:
    for col in required:
        if col not in frame.columns:
            have = ", ".join(repr(str(c)[:40]) for c in frame.columns[:12])
            raise DataError(f"{path}: missing required column '{col}' (columns found: {have[:600]})")


def _small(spark: Any, path: str, required: tuple[str, ...]) -> pd.DataFrame:
    """A small table read by Spark, handed to the loader's pandas rules as `read_table` would."""
    frame = read_table(spark, path)
    _require(frame, path, required)
    if path.endswith(".csv"):
        _check_utf8(frame, path)
    return frame.toPandas()


def _check_utf8(frame: Any, path: str) -> None:
    """Spark decodes bad bytes as U+FFFD instead of failing: a CSV holding one was not UTF-8."""
    from pyspark.sql import functions as F

    hit = F.lit(False)
    for col in frame.columns:
        hit = hit | F.coalesce(F.col(f"`{col}`").contains("\ufffd"), F.lit(False))
    if frame.filter(hit).limit(1).count():
        raise DataError(f"{path}: not UTF-8 text (a byte Spark could not decode); re-export it as UTF-8")


def as_id(frame: Any, name: str) -> Any:
    """`features.loader.as_id` as a column: integral floats print as integers, blanks are missing."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType

    col = F.col(name)
    if isinstance(frame.schema[name].dataType, (FloatType, DoubleType)):
        finite = col.isNotNull() & ~F.isnan(col)
        integral = frame.select(F.bool_and(F.when(finite, col == F.floor(col)))).first()[0]
        if integral is not False:
            return F.when(finite, col.cast("long").cast("string"))
    text = F.regexp_replace(col.cast("string"), r"^\s+|\s+$", "")
    return F.when(col.isNotNull() & (text != "") & (F.lower(text) != "nan"), text)


def invalid_id(col: Any) -> Any:
    """`features.loader._invalid_id`: missing, too long, or holding a control character."""
    from pyspark.sql import functions as F

    return col.isNull() | (F.length(col) > MAX_ID_LENGTH) | F.coalesce(col.rlike(r"[\x00-\x1f]"), F.lit(False))


def parse_timestamps(frame: Any, name: str) -> Any:
    """`features.loader.parse_timestamps` as a column (session time zone UTC: naive UTC out):
    timestamps as they are, eight digits as a basic ISO date, numbers below 1e11 as epoch
    seconds, other text as ISO 8601."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, NumericType, TimestampNTZType, TimestampType

    col, dtype = F.col(name), frame.schema[name].dataType
    if isinstance(dtype, (TimestampType, TimestampNTZType, DateType)):
        return col.cast("timestamp")
    if frame.schema[name].metadata.get(NANOS):
        return F.timestamp_micros(F.floor(col / 1000).cast("long"))
    if isinstance(dtype, NumericType):
        number = col.cast("double")
        return F.when(~F.isnan(number) & (F.abs(number) < 1e11), F.timestamp_seconds(number))
    text = F.trim(col)
    basic = F.coalesce(text.rlike(r"^\d{8}$"), F.lit(False))
    number = text.try_cast("double")
    epoch = number.isNotNull() & ~F.isnan(number) & (F.abs(number) < 1e11) & ~basic
    return (F.when(basic, F.try_to_timestamp(text, F.lit("yyyyMMdd")))
            .when(epoch, F.timestamp_seconds(number))
            .otherwise(text.try_cast("timestamp")))


def _numeric(col: Any) -> tuple[Any, Any]:
    """(number or null, bad): bad marks present values that are not finite numbers."""
    from pyspark.sql import functions as F

    present = col.isNotNull() & (F.trim(col.cast("string")) != "")
    number = col.try_cast("double")
    finite = number.isNotNull() & ~F.isnan(number) & (F.abs(number) != float("inf"))
    return F.when(finite, number), present & ~finite


def clean_transactions(spark: Any, path: str, known_items: pd.Index | None, report: LoadReport) -> pd.DataFrame:
    """The valid lines in file order, in the loader's shape; rejections counted into `report`."""
    from pyspark.sql import functions as F

    raw = read_table(spark, path)
    _require(raw, path, s.TRANSACTION_REQUIRED)
    if path.endswith(".csv"):
        _check_utf8(raw, path)
    raw = raw.withColumn(ROW, F.monotonically_increasing_id())
    client, item = as_id(raw, s.CLIENT), as_id(raw, s.ITEM)
    lines = raw.select(F.col(ROW), client.alias(s.CLIENT), item.alias(s.ITEM),
                       parse_timestamps(raw, s.TIMESTAMP).alias(s.TIMESTAMP),
                       *([F.col(s.QUANTITY).alias("_qty")] if s.QUANTITY in raw.columns else []),
                       *([F.col(s.PRICE).alias("_price")] if s.PRICE in raw.columns else []),
                       (as_id(raw, s.ORDER) if s.ORDER in raw.columns else F.lit(None).cast("string")).alias("_order"))
    bad_id = invalid_id(F.col(s.CLIENT)) | invalid_id(F.col(s.ITEM))
    bad_ts = F.col(s.TIMESTAMP).isNull() & ~bad_id
    bad = bad_id | bad_ts
    flags = {"missing_or_invalid_id": bad_id, "bad_timestamp": bad_ts}
    quantity, price = F.lit(1.0), F.lit(None).cast("double")
    if "_qty" in lines.columns:
        number, non_numeric = _numeric(F.col("_qty"))
        quantity = F.coalesce(number, F.lit(1.0))
        out_of_range = ~non_numeric & (F.abs(quantity) > MAX_QUANTITY)
        flags["bad_quantity"] = non_numeric & ~bad
        flags["quantity_out_of_range"] = out_of_range & ~bad & ~non_numeric
        bad = bad | non_numeric | out_of_range
    if "_price" in lines.columns:
        price, non_numeric = _numeric(F.col("_price"))
        non_numeric = non_numeric | F.coalesce(price < 0, F.lit(False))
        flags["bad_price"] = non_numeric & ~bad
        bad = bad | non_numeric
    order = F.coalesce(F.col("_order"), F.concat(F.col(s.CLIENT), F.lit("|"), F.date_format(s.TIMESTAMP, "yyyy-MM-dd")))
    flagged = lines.select(ROW, s.CLIENT, s.ITEM, s.TIMESTAMP, order.alias(s.ORDER), quantity.alias(s.QUANTITY),
                           price.alias(s.PRICE), bad.alias("_bad"),
                           *[flag.alias(f"_{reason}") for reason, flag in flags.items()])
    unknown = F.lit(False)
    if known_items is not None:
        catalogue = spark.createDataFrame(pd.DataFrame({"_known": pd.Series(known_items, dtype=object).astype(str)}))
        flagged = flagged.join(F.broadcast(catalogue), flagged[s.ITEM] == catalogue["_known"], "left")
        unknown = ~F.col("_bad") & F.col("_known").isNull()
    flagged = flagged.withColumn("_unknown_item", unknown).persist()
    try:
        counts = flagged.agg(F.count(F.lit(1)).alias("read"),
                             *[F.sum(F.col(f"_{reason}").cast("long")).alias(reason) for reason in flags],
                             F.sum(F.col("_unknown_item").cast("long")).alias("unknown_item")).first().asDict()
        kept = flagged.filter(~F.col("_bad") & ~F.col("_unknown_item"))
        # duplicates keep the file's first line, as pandas' `duplicated(keep="first")`
        first = kept.groupBy(*LINE_COLUMNS).agg(F.min(ROW).alias(ROW))
        frame = first.orderBy(ROW).drop(ROW).toPandas()
        kept_rows = kept.count()
    finally:
        flagged.unpersist()
    read = int(counts.pop("read"))
    rejected = Counter({reason: int(n or 0) for reason, n in counts.items()})
    if known_items is None:
        rejected.pop("unknown_item", None)
    rejected["duplicate"] = kept_rows - len(frame)
    frame = _canonical(frame)
    report.record("transactions", read, len(frame), rejected)
    if frame.empty:
        raise DataError(f"{path}: no valid transaction left after validation ({report.format()})")
    return frame


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """The loader's dtypes: ids as str, naive datetime64[ns], float64 quantities and prices."""
    out = frame[list(LINE_COLUMNS)].reset_index(drop=True)
    for col in (s.CLIENT, s.ITEM, s.ORDER):
        out[col] = out[col].astype(str)
    out[s.TIMESTAMP] = pd.to_datetime(out[s.TIMESTAMP]).astype("datetime64[ns]")
    out[s.QUANTITY] = out[s.QUANTITY].astype("float64")
    out[s.PRICE] = pd.to_numeric(out[s.PRICE], errors="coerce").astype("float64")
    return out


def load_dataset_spark(spark: Any, folder: str, *, non_merchandise: Sequence[str] = (),
                       merchandise_allow: Sequence[str] = ()) -> Dataset:
    """`features.loader.load_dataset`, read by Spark: the same `Dataset`, report and fingerprint."""
    started = time.perf_counter()
    fs, hpath = _fs_path(spark, folder)
    if not fs.exists(hpath) or not fs.getFileStatus(hpath).isDirectory():
        raise DataError(f"{folder}: no such data folder")
    report = LoadReport()
    items = clients = packages = None
    known_items = None
    if (path := find_table(spark, folder, "items")) is not None:
        items = clean_items(_small(spark, path, s.ITEM_REQUIRED), path, report)
        known_items = pd.Index(items[s.ITEM])
    if (path := find_table(spark, folder, "clients")) is not None:
        clients = clean_clients(_small(spark, path, s.CLIENT_REQUIRED), path, report)
    path = find_table(spark, folder, "transactions")
    if path is None:
        raise DataError(f"{folder}: missing transactions.parquet or transactions.csv")
    tick = time.perf_counter()
    transactions = clean_transactions(spark, path, known_items, report)
    lines_seconds = time.perf_counter() - tick
    if (path := find_table(spark, folder, "packages")) is not None:
        packages = clean_packages(_small(spark, path, s.PACKAGE_REQUIRED), path, known_items, report)
    tick = time.perf_counter()
    dataset = assemble(transactions, items, clients, packages, report, non_merchandise=non_merchandise,
                       merchandise_allow=merchandise_allow)
    # the bench (tests/bench/bench_spark_growth.py) reads these three figures
    log.info("spark read %s in %.1fs (transactions validated and collected %.1fs, assembled on the driver %.1fs): %s",
             folder, time.perf_counter() - started, lines_seconds, time.perf_counter() - tick,
             report.format().replace("\n", "; "))
    return dataset
