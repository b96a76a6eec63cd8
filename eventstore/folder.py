"""Purchases of a data folder and of the store, matched line by line.

Why a key and not an id: a purchase posted through the API and the same purchase exported into
the next retraining folder share no id (the folder has no `event_id`), but they share the order,
the client, the item and the day. `purchase_keys` is that key for both sides; a line without an
order takes the data contract's default order, "<client_id>|<YYYY-MM-DD>" (`features.loader`), so
a posted purchase without `order_id` meets its folder line too. The day is the UTC day.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from eventstore.times import utc_column

if TYPE_CHECKING:
    from eventstore.store import EventStore


def purchase_keys(frame: pd.DataFrame, time_column: str) -> pd.Series:
    """One "order|client|item|day" text per line of `frame` (columns order_id, client_id, item_id
    and `time_column`)."""
    if frame.empty:
        return pd.Series([], index=frame.index, dtype=object)
    client = frame["client_id"].astype(str)
    day = utc_column(frame[time_column]).dt.strftime("%Y-%m-%d")
    order = frame["order_id"].where(frame["order_id"].notna(), None)
    order = order.astype(object).where(order.notna(), client + "|" + day).astype(str)
    return order + "\x1f" + client + "\x1f" + frame["item_id"].astype(str) + "\x1f" + day


def import_purchases(store: EventStore, tenant: str, rows: pd.DataFrame) -> int:
    """Copy the purchase lines of `rows` (the data contract's transactions: client_id, item_id,
    timestamp, order_id, quantity, price) shown on or after the tenant's earliest exposure into the
    store as `source = "folder"`, skipping lines whose key the store holds already (posted through
    the API, or copied by an earlier training). Returns (quantity <= 0) are not purchases and stay
    out. Nothing is copied before the first exposure: no answer could have caused those."""
    earliest = store.earliest_exposure(tenant)
    if earliest is None or rows.empty:
        return 0
    when = utc_column(rows["timestamp"])
    quantity = rows["quantity"].astype("float64") if "quantity" in rows else pd.Series(1.0, index=rows.index)
    candidates = rows[(when >= pd.Timestamp(earliest)) & (quantity > 0)]
    if candidates.empty:
        return 0
    day_start = pd.Timestamp(earliest).floor("D")
    stored = store.purchases(tenant, start=day_start)
    held = set(purchase_keys(stored, "occurred_at"))
    fresh = candidates[~purchase_keys(candidates, "timestamp").isin(held)]
    if fresh.empty:
        return 0
    price = fresh["price"].astype("float64") if "price" in fresh else pd.Series(np.nan, index=fresh.index)
    copies = pd.DataFrame({
        "type": "purchase", "client_id": fresh["client_id"].astype(str), "item_id": fresh["item_id"].astype(str),
        "quantity": fresh["quantity"].astype("float64") if "quantity" in fresh else 1.0,
        "price": price, "order_id": fresh["order_id"].astype(str) if "order_id" in fresh else None,
        "occurred_at": utc_column(fresh["timestamp"]), "source": "folder"})
    records = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
               for r in copies.to_dict("records")]
    inserted, _ = store.add_events(tenant, records)
    return inserted
