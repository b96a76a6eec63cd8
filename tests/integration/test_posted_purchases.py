"""Posted purchases reach the next training: the real test slice as the data folder and a real
SQLite event store holding what the API received (issue 12, item 9)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from eventstore import EventStore
from features.loader import load_dataset
from training.config import TrainConfig
from training.posted import with_posted_purchases


@pytest.fixture()
def folder(slice_dir: Path):
    return load_dataset(slice_dir)


def _config(url: str, tmp_path: Path) -> TrainConfig:
    return TrainConfig(events_db_url=url, erasures_file=str(tmp_path / "none.jsonl"), redis_url=None)


def test_posted_purchases_join_the_folder_once_without_erased_clients(folder, slice_dir: Path,
                                                                      tmp_path: Path) -> None:
    tx = folder.transactions
    last = tx["timestamp"].max()
    shown = last - pd.Timedelta(days=5)
    line = tx[(tx["timestamp"] >= shown) & (tx["quantity"] > 0)].iloc[0]  # posted and exported again
    clients = tx["client_id"].unique()
    known, erased_by_file, erased_in_store = line["client_id"], str(clients[-1]), str(clients[-2])
    assert len({known, erased_by_file, erased_in_store}) == 3
    item = str(tx["item_id"].iloc[0])
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = EventStore(url)
    try:
        store.create_all()
        store.add_exposures("default", [{"recommendation_id": "r1", "client_id": known, "variant": "champion",
                                         "endpoint": "client", "items": [], "shown_at": shown}])
        after = last + pd.Timedelta(days=1)
        inserted, _ = store.add_events("default", [
            {"event_id": "new", "type": "purchase", "client_id": known, "item_id": item, "quantity": 2.0,
             "price": 3.5, "order_id": "api-order-1", "occurred_at": after},
            {"event_id": "again", "type": "purchase", "client_id": line["client_id"], "item_id": line["item_id"],
             "order_id": line["order_id"], "occurred_at": line["timestamp"]},
            {"event_id": "file-erased", "type": "purchase", "client_id": erased_by_file, "item_id": item,
             "occurred_at": after},
            {"event_id": "store-erased", "type": "purchase", "client_id": erased_in_store, "item_id": item,
             "occurred_at": after},
            {"event_id": "odd-item", "type": "purchase", "client_id": known, "item_id": "no-such-item",
             "occurred_at": after},
            {"event_id": "visitor", "type": "purchase", "visitor_id": "v1", "item_id": item, "occurred_at": after},
            {"event_id": "a-view", "type": "view", "client_id": known, "item_id": item, "occurred_at": after}])
        assert inserted == 7
        store.erase_client("default", erased_in_store, request_id="req-1")
    finally:
        store.close()

    dataset, report = with_posted_purchases(folder, slice_dir, _config(url, tmp_path), {erased_by_file})

    assert (report.taken, report.in_folder, report.erased, report.unknown_item, report.no_client) == (1, 1, 1, 1, 1)
    assert report.erased_clients == 1
    out = dataset.transactions
    assert not out["client_id"].isin([erased_by_file, erased_in_store]).any()
    kept = tx[~tx["client_id"].isin([erased_by_file, erased_in_store])]
    assert len(out) == len(kept) + 1
    new = out[out["order_id"] == "api-order-1"]
    assert len(new) == 1 and new["client_id"].iloc[0] == known and new["quantity"].iloc[0] == 2.0
    assert new["timestamp"].iloc[0] == after and str(out["timestamp"].dtype) == "datetime64[ns]"
    assert dataset.fingerprint["transactions"] == len(out)
    # attribution: the folder's purchases since the exposure are in the store, the re-posted one once
    recent = kept[(kept["timestamp"] >= shown) & (kept["quantity"] > 0)]
    assert report.copied_for_attribution == len(recent) - 1
    text = report.format()
    assert text.startswith("event store: 1 purchases posted through the API taken, 1 already in the folder, "
                           "1 erased") and "1 unknown item" in text

    again, second = with_posted_purchases(folder, slice_dir, _config(url, tmp_path), {erased_by_file})
    assert second.copied_for_attribution == 0 and second.taken == 1  # the copies are not taken back
    assert len(again.transactions) == len(out)


def test_a_store_not_created_yet_gives_nothing_and_stays_absent(folder, slice_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "var" / "events.db"
    erased = {str(folder.transactions["client_id"].iloc[0])}
    dataset, report = with_posted_purchases(folder, slice_dir, _config(f"sqlite:///{missing}", tmp_path), erased)
    assert not report.available and not missing.exists()
    assert "nothing taken" in report.format()
    assert not dataset.transactions["client_id"].isin(erased).any()  # the folder's erasures still apply


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_folder_that_exports_event_ids_is_matched_by_them(suffix: str, tmp_path: Path) -> None:
    from training.posted import folder_event_ids

    lines = pd.DataFrame({"Client_ID": ["1", "2", "3"], "item_id": ["a", "b", "c"], "timestamp": ["2026-01-01"] * 3,
                          "Event_ID": ["e1", None, "e3"]})
    path = tmp_path / f"transactions{suffix}"
    lines.to_parquet(path) if suffix == ".parquet" else lines.to_csv(path, index=False)
    assert folder_event_ids(tmp_path) == {"e1", "e3"}
    (lines.drop(columns="Event_ID").to_parquet(path) if suffix == ".parquet"
     else lines.drop(columns="Event_ID").to_csv(path, index=False))
    assert folder_event_ids(tmp_path) == set()
