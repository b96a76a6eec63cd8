"""Load a data folder into the canonical in-memory shape, validating as we go.

The trainer knows only this contract (see `features.schema` and the README): a folder with
`transactions` and optionally `items`, `clients`, `packages`, each as `.parquet` or `.csv`.

Two kinds of failure, on purpose:
- a file the trainer cannot use at all (unreadable, empty, wrong encoding, a required column
  missing, no valid row left) raises `DataError` naming the file and the column: the command
  stops with a non-zero exit rather than training on something half-read;
- a bad row is rejected and counted by reason in `LoadReport`, so nothing is dropped silently
  and a data team can see exactly what their export got wrong.
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import merchandise
from features import schema as s

log = logging.getLogger(__name__)

#: A quantity above this is an export error, not a purchase (fuel in Complete Journey reaches 9e4).
MAX_QUANTITY = 1e6
#: Ids longer than this are rejected: they are almost always a shifted column.
MAX_ID_LENGTH = 128

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


class DataError(ValueError):
    """The data folder cannot be used: names the file and, where it applies, the column."""


@dataclass
class LoadReport:
    """Rows read, accepted and rejected (by reason) per table; fixes are forgivable conversions."""

    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, table: str, read: int, accepted: int, rejected: Counter, fixed: Counter | None = None) -> None:
        self.tables[table] = {
            "read": int(read),
            "accepted": int(accepted),
            "rejected": {k: int(v) for k, v in sorted(rejected.items()) if v},
            "fixed": {k: int(v) for k, v in sorted((fixed or Counter()).items()) if v},
        }

    @property
    def total_rejected(self) -> int:
        return sum(sum(t["rejected"].values()) for t in self.tables.values())

    def as_dict(self) -> dict[str, Any]:
        return {"tables": self.tables, "total_rejected": self.total_rejected}

    def format(self) -> str:
        lines = []
        for name, t in self.tables.items():
            rej = ", ".join(f"{k}={v}" for k, v in t["rejected"].items()) or "none"
            line = f"{name}: read {t['read']}, accepted {t['accepted']}, rejected: {rej}"
            if t["fixed"]:
                line += "; fixed: " + ", ".join(f"{k}={v}" for k, v in t["fixed"].items())
            lines.append(line)
        return "\n".join(lines)


@dataclass(frozen=True)
class Dataset:
    """A validated data folder: canonical frames, the rejection report and a fingerprint."""

    transactions: pd.DataFrame
    items: pd.DataFrame | None
    clients: pd.DataFrame | None
    packages: pd.DataFrame | None
    report: LoadReport
    fingerprint: dict[str, Any]
    #: items found not to be merchandise (item_id, reason; `features.merchandise`): their kind is `fee`
    non_merchandise: pd.DataFrame | None = None

    def with_transactions(self, transactions: pd.DataFrame) -> Dataset:
        """The same catalogue with other transactions (a time split, a household slice)."""
        return Dataset(transactions, self.items, self.clients, self.packages, self.report,
                       fingerprint(transactions, self.items, self.clients, self.packages), self.non_merchandise)


def find_table(folder: Path, table: str) -> Path | None:
    """The file holding `table` in `folder` (`.parquet` preferred over `.csv`), or None."""
    for ext in (".parquet", ".csv"):
        path = folder / f"{table}{ext}"
        if path.exists():
            return path
    return None


def read_table(path: Path) -> pd.DataFrame:
    """Read a parquet or CSV file as raw columns, or raise `DataError` saying why not."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                                encoding="utf-8", skipinitialspace=True)
    except UnicodeDecodeError as exc:
        offset, line, value = first_invalid_utf8(path)
        raise DataError(f"{path}: not UTF-8 text (line {line}, byte {offset} of the file: 0x{value:02x}, "
                        f"{exc.reason}); re-export it as UTF-8") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return frame


#: Bytes `first_invalid_utf8` reads at a time.
_SCAN_CHUNK = 1 << 20


def first_invalid_utf8(path: Path) -> tuple[int, int, int]:
    """(offset in the file, 0-based; line, 1-based; value) of the first byte that is not UTF-8.

    pandas decodes a CSV in blocks and its `UnicodeDecodeError` counts from the start of the
    block, so it said "byte 2" for a bad byte on line 13. The file is scanned again here, a block
    at a time, carrying a character cut at a block's end over to the next."""
    offset, lines, carry = 0, 0, b""
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(_SCAN_CHUNK)
            buffer = carry + chunk
            if not buffer:
                return offset, lines + 1, 0
            try:
                buffer.decode("utf-8")
                good = len(buffer)
            except UnicodeDecodeError as exc:
                if chunk and exc.reason == "unexpected end of data":
                    good = exc.start  # a character cut by the block's end: decode it with the next
                else:
                    return offset + exc.start, lines + buffer.count(b"\n", 0, exc.start) + 1, buffer[exc.start]
            lines += buffer.count(b"\n", 0, good)
            offset += good
            carry = buffer[good:]


def _require(frame: pd.DataFrame, path: Path, required: tuple[str, ...]) -> None:
    for col in required:
        if col not in frame.columns:
            have = ", ".join(repr(str(c)[:40]) for c in frame.columns[:12])
            more = f" and {len(frame.columns) - 12} more" if len(frame.columns) > 12 else ""
            raise DataError(f"{path}: missing required column '{col}' (columns found: {have[:600]}{more})")


def as_id(values: pd.Series) -> pd.Series:
    """Ids are strings: integers stay integers ("42", not "42.0"), blanks become missing."""
    if pd.api.types.is_float_dtype(values):
        finite = values.notna()
        if bool((values[finite] == np.floor(values[finite])).all()):
            out = values.astype("Int64").astype(str)
            return out.where(finite, None)
    out = values.astype(str).str.strip()
    return out.where(values.notna() & (out != "") & (out.str.lower() != "nan"), None)


def _invalid_id(ids: pd.Series) -> pd.Series:
    return ids.isna() | (ids.str.len() > MAX_ID_LENGTH) | ids.str.contains(r"[\x00-\x1f]", regex=True, na=False)


def parse_timestamps(values: pd.Series) -> pd.Series:
    """ISO-8601 text (extended or basic date) or epoch seconds -> naive UTC datetime64[ns]; unparseable -> NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        return ts.astype("datetime64[ns]")
    numeric = pd.to_numeric(values, errors="coerce")
    if pd.api.types.is_numeric_dtype(values):
        text = pd.Series(pd.NA, index=values.index, dtype="object")
    else:
        text = values.astype("string").str.strip()
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    # eight digits are an ISO 8601 basic date (20170601), not 1970-08-23 in epoch seconds
    basic = text.str.fullmatch(r"\d{8}").fillna(False).astype(bool)
    if basic.any():
        out[basic] = pd.to_datetime(text[basic], format="%Y%m%d", errors="coerce")
    epoch = numeric.notna() & (numeric.abs() < 1e11) & ~basic
    if epoch.any():
        out[epoch] = pd.to_datetime(numeric[epoch], unit="s", errors="coerce")
    rest = ~epoch & ~basic & text.notna()
    if rest.any():
        parsed = pd.to_datetime(text[rest], format="ISO8601", errors="coerce", utc=True)
        out[rest] = parsed.dt.tz_localize(None)
    return out


def _numeric(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(numbers, bad) where bad marks present values that are not finite numbers."""
    present = values.notna() & (values.astype(str).str.strip() != "")
    num = pd.to_numeric(values.where(present), errors="coerce").astype("float64")
    bad = present & ~np.isfinite(num.fillna(np.inf).where(present, 0.0))
    return num, bad


def _clean_transactions(raw: pd.DataFrame, path: Path, known_items: pd.Index | None,
                        report: LoadReport) -> pd.DataFrame:
    _require(raw, path, s.TRANSACTION_REQUIRED)
    n = len(raw)
    rejected: Counter = Counter()
    client, item = as_id(raw[s.CLIENT]), as_id(raw[s.ITEM])
    bad = _invalid_id(client) | _invalid_id(item)
    rejected["missing_or_invalid_id"] = int(bad.sum())

    ts = parse_timestamps(raw[s.TIMESTAMP])
    bad_ts = ts.isna() & ~bad
    rejected["bad_timestamp"] = int(bad_ts.sum())
    bad |= bad_ts

    qty = pd.Series(1.0, index=raw.index)
    if s.QUANTITY in raw.columns:
        num, non_numeric = _numeric(raw[s.QUANTITY])
        qty = num.fillna(1.0)
        out_of_range = ~non_numeric & (qty.abs() > MAX_QUANTITY)
        rejected["bad_quantity"] = int((non_numeric & ~bad).sum())
        rejected["quantity_out_of_range"] = int((out_of_range & ~bad & ~non_numeric).sum())
        bad |= non_numeric | out_of_range

    price = pd.Series(np.nan, index=raw.index)
    if s.PRICE in raw.columns:
        price, non_numeric = _numeric(raw[s.PRICE])
        non_numeric |= price < 0
        rejected["bad_price"] = int((non_numeric & ~bad).sum())
        bad |= non_numeric

    if s.ORDER in raw.columns:
        order = as_id(raw[s.ORDER])
    else:
        order = pd.Series(None, index=raw.index, dtype="object")
    day_order = client + "|" + ts.dt.strftime("%Y-%m-%d")
    order = order.fillna(day_order)

    frame = pd.DataFrame({s.CLIENT: client, s.ITEM: item, s.TIMESTAMP: ts, s.ORDER: order,
                          s.QUANTITY: qty.astype("float64"), s.PRICE: price.astype("float64")})[~bad]
    if known_items is not None:
        unknown = ~frame[s.ITEM].isin(known_items)
        rejected["unknown_item"] = int(unknown.sum())
        frame = frame[~unknown]
    dup = frame.duplicated(keep="first")
    rejected["duplicate"] = int(dup.sum())
    frame = frame[~dup].reset_index(drop=True)
    for col in (s.CLIENT, s.ITEM, s.ORDER):
        frame[col] = frame[col].astype(str)
    report.record("transactions", n, len(frame), rejected)
    if frame.empty:
        raise DataError(f"{path}: no valid transaction left after validation ({report.format()})")
    return frame


def _unique_valid_ids(raw: pd.DataFrame, column: str, rejected: Counter) -> pd.DataFrame:
    """Rows with a usable, first-seen id in `column` (as a string); the others counted by reason."""
    frame = raw.copy()
    frame[column] = as_id(frame[column])
    bad = _invalid_id(frame[column])
    rejected["missing_or_invalid_id"] = int(bad.sum())
    frame = frame[~bad]
    dup = frame[column].duplicated(keep="first")
    rejected["duplicate"] = int(dup.sum())
    return frame[~dup].reset_index(drop=True)


def clean_items(raw: pd.DataFrame, path: Path, report: LoadReport) -> pd.DataFrame:
    _require(raw, path, s.ITEM_REQUIRED)
    n = len(raw)
    rejected, fixed = Counter(), Counter()
    frame = _unique_valid_ids(raw, s.ITEM, rejected)
    for col in ("price", "margin"):
        if col in frame.columns:
            num, non_numeric = _numeric(frame[col])
            fixed[f"bad_{col}_set_missing"] = int(non_numeric.sum())
            frame[col] = num.where(~non_numeric)
    if "kind" in frame.columns:
        kind = frame["kind"].astype("string").str.strip().str.lower()
        unknown = kind.notna() & ~kind.isin(s.KINDS)
        fixed["unknown_kind_set_product"] = int(unknown.sum())
        frame["kind"] = kind.where(kind.isin(s.KINDS), s.KIND_PRODUCT).astype(str)
    else:
        frame["kind"] = s.KIND_PRODUCT
    if "in_stock" in frame.columns:
        text = frame["in_stock"].astype("string").str.strip().str.lower()
        unknown = text.notna() & ~text.isin(_TRUE | _FALSE)
        fixed["unknown_in_stock_set_true"] = int(unknown.sum())
        frame["in_stock"] = ~text.isin(_FALSE).fillna(False).astype(bool)
    else:
        frame["in_stock"] = True
    for col in s.ITEM_TEXT:
        if col in frame.columns:
            frame[col] = frame[col].astype("string").str.strip().replace("", pd.NA).astype(object)
    frame = frame.reset_index(drop=True)
    report.record("items", n, len(frame), rejected, fixed)
    return frame


def clean_clients(raw: pd.DataFrame, path: Path, report: LoadReport) -> pd.DataFrame:
    _require(raw, path, s.CLIENT_REQUIRED)
    n = len(raw)
    rejected: Counter = Counter()
    frame = _unique_valid_ids(raw, s.CLIENT, rejected)
    report.record("clients", n, len(frame), rejected)
    return frame


def clean_packages(raw: pd.DataFrame, path: Path, known_items: pd.Index | None,
                    report: LoadReport) -> pd.DataFrame:
    _require(raw, path, s.PACKAGE_REQUIRED)
    n = len(raw)
    rejected: Counter = Counter()
    frame = _unique_valid_ids(raw, s.PACKAGE, rejected)
    members = frame["items"].astype("string").fillna("").str.split("|")
    members = members.map(lambda ids: [i.strip() for i in ids if i and i.strip()])
    if known_items is not None:
        known = set(known_items)
        unknown = members.map(lambda ids: any(i not in known for i in ids))
        rejected["unknown_item"] = int(unknown.sum())
        members = members.map(lambda ids: [i for i in ids if i in known])
    empty = members.map(len) == 0
    rejected["no_items"] = int(empty.sum())
    frame["items"] = members
    frame = frame[~empty]
    if "price" in frame.columns:
        num, non_numeric = _numeric(frame["price"])
        rejected["bad_price"] = int(non_numeric.sum())
        frame = frame[~non_numeric].assign(price=num[~non_numeric])
    frame = frame.reset_index(drop=True)
    report.record("packages", n, len(frame), rejected)
    return frame


def fingerprint(transactions: pd.DataFrame, items: pd.DataFrame | None = None,
                clients: pd.DataFrame | None = None, packages: pd.DataFrame | None = None) -> dict[str, Any]:
    """Row counts, date range and a content hash: travels with every result so a figure can be
    traced to exactly the data that produced it."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(transactions, index=False).to_numpy().tobytes())
    for extra in (items, clients):
        if extra is not None:
            cols = [c for c in extra.columns if extra[c].map(type).ne(list).all()]
            digest.update(pd.util.hash_pandas_object(extra[cols].astype(str), index=False).to_numpy().tobytes())
    ts = transactions[s.TIMESTAMP]
    return {
        "transactions": int(len(transactions)),
        "clients": int(transactions[s.CLIENT].nunique()),
        "items": int(transactions[s.ITEM].nunique()),
        "orders": int(transactions[s.ORDER].nunique()),
        "catalogue_items": None if items is None else int(len(items)),
        "packages": None if packages is None else int(len(packages)),
        "first": ts.min().isoformat() if len(ts) else None,
        "last": ts.max().isoformat() if len(ts) else None,
        "sha256": digest.hexdigest()[:16],
    }


def load_dataset(folder: str | Path, *, non_merchandise: Sequence[str] = (),
                 merchandise_allow: Sequence[str] = ()) -> Dataset:
    """Read and validate a data folder; raise `DataError` when it cannot be used at all.

    Items that are not merchandise (fees, coupons, fuel: `features.merchandise`) come back with
    kind `fee`, whatever the file said; `non_merchandise` declares more ids, `merchandise_allow`
    un-flags ids. The fingerprint is of the files as read, before that marking."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such data folder")
    report = LoadReport()
    items = clients = packages = None
    known_items = None
    if (path := find_table(folder, "items")) is not None:
        items = clean_items(read_table(path), path, report)
        known_items = pd.Index(items[s.ITEM])
    if (path := find_table(folder, "clients")) is not None:
        clients = clean_clients(read_table(path), path, report)
    path = find_table(folder, "transactions")
    if path is None:
        raise DataError(f"{folder}: missing transactions.parquet or transactions.csv")
    transactions = _clean_transactions(read_table(path), path, known_items, report)
    if (path := find_table(folder, "packages")) is not None:
        packages = clean_packages(read_table(path), path, known_items, report)
    return assemble(transactions, items, clients, packages, report, non_merchandise=non_merchandise,
                    merchandise_allow=merchandise_allow)


def assemble(transactions: pd.DataFrame, items: pd.DataFrame | None, clients: pd.DataFrame | None,
             packages: pd.DataFrame | None, report: LoadReport, *, non_merchandise: Sequence[str] = (),
             merchandise_allow: Sequence[str] = ()) -> Dataset:
    """The validated tables as a `Dataset`: rejections logged, the fingerprint taken, items that
    are not merchandise marked. Every loader ends here (this one and `training.spark.load`), so
    a dataset means the same whoever read it."""
    if report.total_rejected:
        log.warning("rejected rows: %s", report.format().replace("\n", "; "))
    prints = fingerprint(transactions, items, clients, packages)
    items, flagged = merchandise.mark(items, transactions, declared=non_merchandise, allowed=merchandise_allow)
    if len(flagged):
        log.info("not merchandise, never offered: %d items (%s)", len(flagged),
                 "; ".join(f"{r.item_id}: {r.reason}" for r in flagged.head(5).itertuples()))
    return Dataset(transactions, items, clients, packages, report, prints, flagged)
