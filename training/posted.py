"""Purchases posted through the API join the data folder, once each, without erased clients.

Why: a shop that posts purchases to `POST /v1/events` should not have to export them again before
the next training, and one that does export them must not see them counted twice. A posted
purchase is the same as a folder line when the order, the client, the item and the UTC day agree
(`eventstore.purchase_keys`; a line without an order has the contract's default order), or when
the folder's transactions carry an `event_id` column holding its id. Erasures recorded by the
store count with the service's erasure file and Redis set (`training.erasures`).

The other way round, for attribution: the folder's purchases since the first stored exposure are
copied into the store (`source = "folder"`), so the effect report sees purchases that never came
through the API. Purchases the store itself imported from an earlier folder are not taken back
into training: the folder given is the shop's own record of those.

A store that is not there yet (a SQLite file nobody created) gives nothing and is not created; a
store that is configured but down stops the training (`StoreUnavailable`): training without it
would silently forget posted purchases and the erasures it holds.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from eventstore import EventStore, purchase_keys
from eventstore.engine import describe, sqlite_path
from features import schema as s
from features.loader import Dataset, find_table
from training.config import TrainConfig
from training.erasures import without_clients

log = logging.getLogger(__name__)


@dataclass
class PostedReport:
    """What the trainer took from the event store, for the console and evaluation.json."""

    store: str
    available: bool = True
    taken: int = 0
    in_folder: int = 0
    erased: int = 0
    unknown_item: int = 0
    no_client: int = 0
    repeated: int = 0
    copied_for_attribution: int = 0
    erased_clients: int = 0
    note: str = ""

    def format(self) -> str:
        if not self.available:
            return f"event store: nothing taken ({self.note})"
        line = (f"event store: {self.taken} purchases posted through the API taken, {self.in_folder} already in "
                f"the folder, {self.erased} erased")
        skipped = {"unknown item": self.unknown_item, "no client": self.no_client, "posted twice": self.repeated}
        if any(skipped.values()):
            line += "; skipped: " + ", ".join(f"{n} {why}" for why, n in skipped.items() if n)
        return (line + f"; {self.copied_for_attribution} folder purchases copied into the store for attribution"
                f"; {self.erased_clients} clients erased in the store")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def folder_event_ids(data: Path) -> set[str]:
    """The `event_id`s of the folder's transactions, when its export has that column (else none)."""
    path = find_table(Path(data), "transactions")
    if path is None:
        return set()
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        names = [str(n).strip().lower() for n in pq.read_schema(path).names]
        if "event_id" not in names:
            return set()
        column = pq.read_schema(path).names[names.index("event_id")]
        values = pd.read_parquet(path, columns=[column])[column]
    else:
        header = pd.read_csv(path, nrows=0, encoding="utf-8")
        names = [str(n).strip().lower() for n in header.columns]
        if "event_id" not in names:
            return set()
        values = pd.read_csv(path, usecols=[names.index("event_id")], dtype=str, encoding="utf-8").iloc[:, 0]
    return set(values.dropna().astype(str).str.strip())


def as_transactions(posted: pd.DataFrame) -> pd.DataFrame:
    """Posted purchases in the data contract's shape (features.schema): naive UTC timestamps, the
    default order where none was posted, quantity 1 where none was given."""
    when = posted["occurred_at"].dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    client = posted["client_id"].astype(str)
    order = posted["order_id"].astype(object).where(posted["order_id"].notna(),
                                                    client + "|" + when.dt.strftime("%Y-%m-%d"))
    return pd.DataFrame({s.CLIENT: client, s.ITEM: posted["item_id"].astype(str), s.TIMESTAMP: when,
                         s.ORDER: order.astype(str), s.QUANTITY: posted["quantity"].fillna(1.0).astype("float64"),
                         s.PRICE: posted["price"].astype("float64")}).reset_index(drop=True)


def open_store(config: TrainConfig) -> EventStore | None:
    """The configured store, or None when it is a SQLite file that does not exist (never created here)."""
    path = sqlite_path(config.events_db_url)
    if path is not None and not path.exists():
        return None
    return EventStore(config.events_db_url)


def with_posted_purchases(dataset: Dataset, data: str | Path, config: TrainConfig,
                          erased: set[str]) -> tuple[Dataset, PostedReport]:
    """The folder's data without erased clients (`erased` and the store's erasures), plus the
    purchases posted through the API that it lacks; copies the folder's recent purchases into the
    store for attribution. Returns the dataset and what was taken."""
    report = PostedReport(store=describe(config.events_db_url))
    store = open_store(config)
    if store is None:
        report.available, report.note = False, f"{report.store} does not exist"
        return without_clients(dataset, erased), report
    try:
        store.create_all()
        in_store = store.erased_clients(config.tenant)
        report.erased_clients = len(in_store)
        dataset = without_clients(dataset, erased | in_store)
        folder = dataset.transactions
        posted = store.purchases(config.tenant)
        posted = posted[posted["source"] == "api"]
        taken = _select(posted, folder, dataset, erased | in_store, folder_event_ids(Path(data)), report)
        report.copied_for_attribution = store.import_folder_purchases(config.tenant, folder)
    finally:
        store.close()
    if len(taken):
        dataset = dataset.with_transactions(pd.concat([folder, taken], ignore_index=True))
    return dataset, report


def _select(posted: pd.DataFrame, folder: pd.DataFrame, dataset: Dataset, erased: set[str],
            folder_ids: set[str], report: PostedReport) -> pd.DataFrame:
    """The posted purchases to train on, each one counted under the first reason it is left out."""
    no_client = posted["client_id"].isna()
    report.no_client = int(no_client.sum())
    posted = posted[~no_client]
    gone = posted["client_id"].astype(str).isin(erased)
    report.erased = int(gone.sum())
    posted = posted[~gone]
    keys = purchase_keys(posted, "occurred_at")
    seen = keys.isin(set(purchase_keys(folder, s.TIMESTAMP))) | posted["event_id"].isin(folder_ids)
    report.in_folder = int(seen.sum())
    posted, keys = posted[~seen], keys[~seen]
    twice = keys.duplicated(keep="first")
    report.repeated = int(twice.sum())
    posted = posted[~twice]
    if dataset.items is not None:
        unknown = ~posted["item_id"].astype(str).isin(set(dataset.items[s.ITEM]))
        report.unknown_item = int(unknown.sum())
        posted = posted[~unknown]
    report.taken = len(posted)
    return as_transactions(posted) if len(posted) else folder.iloc[:0]
