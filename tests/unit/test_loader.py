"""The data contract: what the loader accepts, what it rejects (counted by reason) and what stops it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from features import loader
from features.loader import DataError, load_dataset

HEADER = "client_id,item_id,timestamp,order_id,quantity,price\n"


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_valid_csv_loads_with_canonical_types(tmp_path: Path) -> None:
    write(tmp_path, "transactions.csv", HEADER + "c1,i1,2024-01-01T10:00:00Z,o1,2,3.5\nc1,i2,1704103200,,1,\n")
    ds = load_dataset(tmp_path)
    tx = ds.transactions
    assert list(tx.columns) == ["client_id", "item_id", "timestamp", "order_id", "quantity", "price"]
    assert tx["timestamp"].dtype == "datetime64[ns]"
    assert tx.loc[0, "timestamp"] == pd.Timestamp("2024-01-01 10:00:00")
    assert tx.loc[1, "timestamp"] == pd.Timestamp("2024-01-01 10:00:00")  # epoch seconds
    assert tx.loc[1, "order_id"] == "c1|2024-01-01"  # default basket: client and calendar day
    assert pd.isna(tx.loc[1, "price"])
    assert ds.report.total_rejected == 0
    assert ds.fingerprint["transactions"] == 2 and ds.fingerprint["first"].startswith("2024-01-01")


def test_compact_iso_dates_are_dates_not_epoch_seconds(tmp_path: Path) -> None:
    write(tmp_path, "transactions.csv", "client_id,item_id,timestamp\n1,2,20170601\n1,3,1496275200\n")
    tx = load_dataset(tmp_path).transactions
    assert tx["timestamp"].tolist() == [pd.Timestamp("2017-06-01"), pd.Timestamp("2017-06-01")]


def test_optional_columns_default(tmp_path: Path) -> None:
    write(tmp_path, "transactions.csv", "client_id,item_id,timestamp\n7,9,2024-02-01\n")
    tx = load_dataset(tmp_path).transactions
    assert tx.loc[0, "quantity"] == 1.0 and tx.loc[0, "client_id"] == "7"


def test_bad_rows_are_counted_by_reason_and_good_rows_kept(tmp_path: Path) -> None:
    rows = [
        "c1,i1,2024-01-01,o1,1,1.0",   # good
        ",i1,2024-01-01,o2,1,1.0",     # missing id
        "c2,i1,not a date,o3,1,1.0",   # bad timestamp
        "c3,i1,2024-01-02,o4,many,1",  # non-numeric quantity
        "c4,i1,2024-01-02,o5,1,cheap", # non-numeric price
        "c1,i1,2024-01-01,o1,1,1.0",   # duplicate of the first
        "c5,i2,2024-01-03,o6,-1,2.0",  # a return: kept, never a positive
        "c6,i2,2024-01-03,o7,1e12,2",  # absurd quantity
    ]
    write(tmp_path, "transactions.csv", HEADER + "\n".join(rows) + "\n")
    ds = load_dataset(tmp_path)
    rejected = ds.report.tables["transactions"]["rejected"]
    assert rejected == {"bad_price": 1, "bad_quantity": 1, "bad_timestamp": 1, "duplicate": 1,
                        "missing_or_invalid_id": 1, "quantity_out_of_range": 1}
    assert ds.report.tables["transactions"]["accepted"] == 2
    assert sorted(ds.transactions["quantity"]) == [-1.0, 1.0]


def test_unknown_items_are_rejected_when_a_catalogue_exists(tmp_path: Path) -> None:
    write(tmp_path, "items.csv", "item_id,name,price,kind,in_stock\ni1,Tea,2.5,product,yes\ni2,Setup,,SERVICE,no\n")
    write(tmp_path, "transactions.csv", HEADER + "c1,i1,2024-01-01,o1,1,1\nc1,zzz,2024-01-01,o1,1,1\n")
    ds = load_dataset(tmp_path)
    assert ds.report.tables["transactions"]["rejected"] == {"unknown_item": 1}
    items = ds.items.set_index("item_id")
    assert items.loc["i2", "kind"] == "service" and not items.loc["i2", "in_stock"]
    assert bool(items.loc["i1", "in_stock"])


def test_missing_required_column_names_file_and_column(tmp_path: Path) -> None:
    write(tmp_path, "transactions.csv", "client_id,timestamp\nc1,2024-01-01\n")
    with pytest.raises(DataError, match=r"transactions\.csv: missing required column 'item_id'"):
        load_dataset(tmp_path)


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path, "transactions.csv", "")
    with pytest.raises(DataError, match="empty"):
        load_dataset(tmp_path)


def test_header_only_means_no_valid_transaction(tmp_path: Path) -> None:
    write(tmp_path, "transactions.csv", HEADER)
    with pytest.raises(DataError, match="no valid transaction"):
        load_dataset(tmp_path)


def test_wrong_encoding_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path, "transactions.csv", (HEADER + "Andr\u00e9,i1,2024-01-01,o1,1,1\n").encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_dataset(tmp_path)


def test_a_bad_byte_is_reported_at_its_line_and_byte_in_the_file(tmp_path: Path) -> None:
    """pandas counts from the start of its decoding block; the message must count from the file's."""
    good = "".join(f"c{n},\u00e9picerie-{n},2024-01-{n:02d},o{n},1,1\n" for n in range(1, 12))  # UTF-8 accents
    head = (HEADER + good).encode("utf-8")
    assert head.count(b"\n") == 12
    write(tmp_path, "transactions.csv", head + b"c12,Andr\xe9,2024-01-12,o12,1,1\n")
    with pytest.raises(DataError) as caught:
        load_dataset(tmp_path)
    assert f"line 13, byte {len(head) + len('c12,Andr')} of the file: 0xe9" in str(caught.value)


def test_a_character_cut_by_a_scan_block_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan reads the file in blocks: a two-byte character across a block's end is valid."""
    monkeypatch.setattr(loader, "_SCAN_CHUNK", 3)
    path = write(tmp_path, "t.csv", "ab\u00e9\n\u00e9".encode() + b"\xff")
    assert loader.first_invalid_utf8(path) == (len("ab\u00e9\n\u00e9".encode()), 2, 0xFF)


def test_missing_transactions_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing transactions"):
        load_dataset(tmp_path)


def test_packages_are_parsed_and_checked(tmp_path: Path) -> None:
    write(tmp_path, "items.csv", "item_id,kind\ni1,product\ns1,service\ns2,service\n")
    write(tmp_path, "transactions.csv", HEADER + "c1,i1,2024-01-01,o1,1,1\n")
    write(tmp_path, "packages.csv", "package_id,name,items,tier,price\np1,Care,s1|s2,basic,9.9\np2,Ghost,x|y,,\n")
    ds = load_dataset(tmp_path)
    assert ds.packages["items"].tolist() == [["s1", "s2"]]
    assert ds.report.tables["packages"]["rejected"] == {"no_items": 1, "unknown_item": 1}


def test_parquet_with_integer_ids(tmp_path: Path) -> None:
    pd.DataFrame({"client_id": [1, 2], "item_id": [10.0, 11.0],
                  "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02"])}).to_parquet(tmp_path / "transactions.parquet")
    tx = load_dataset(tmp_path).transactions
    assert tx["client_id"].tolist() == ["1", "2"] and tx["item_id"].tolist() == ["10", "11"]


def test_fingerprint_changes_with_the_data(tmp_path: Path) -> None:
    write(tmp_path, "transactions.csv", HEADER + "c1,i1,2024-01-01,o1,1,1\n")
    first = load_dataset(tmp_path).fingerprint["sha256"]
    assert load_dataset(tmp_path).fingerprint["sha256"] == first
    write(tmp_path, "transactions.csv", HEADER + "c1,i1,2024-01-01,o1,2,1\n")
    assert load_dataset(tmp_path).fingerprint["sha256"] != first


def test_cli_validate_exits_non_zero_with_a_message(tmp_path: Path) -> None:
    write(tmp_path, "transactions.csv", "client_id\nc1\n")
    proc = subprocess.run([sys.executable, "-m", "features", "validate", "--data", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "missing required column 'item_id'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_prepare_writes_a_real_slice(slice_dir: Path) -> None:
    ds = load_dataset(slice_dir)
    assert ds.fingerprint["clients"] == 150
    assert ds.report.total_rejected == 0
    assert {"category", "subcategory", "brand", "kind"} <= set(ds.items.columns)
    assert ds.transactions["price"].notna().mean() > 0.95  # unit prices come with the lines
    assert (ds.items["kind"] == "service").any()
    assert ds.transactions["timestamp"].min() >= pd.Timestamp("2017-01-01")
