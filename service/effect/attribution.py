"""Which exposure a purchase is owed to: the last one, by the same subject, that suggested the item
or an item of its product group, within ATTRIBUTION_DAYS before the purchase.

Pure pandas and numpy over two frames, vectorised with `merge_asof` (a sorted backward join per
key) on integer keys and times, so a period of 100k exposures and 200k purchases attributes in
about a second. Two keys are joined separately, (subject, item) and (subject, group), and the
later match wins (at the same instant, the exact item): an exposure of the same group is as much
the suggestion's doing as the exact item (another pack size of the same product).

A *subject* is who was answered: `c:<client_id>` for a known client, `v:<visitor_id>` for a
visitor (an anonymous cart). A purchase carrying both ids can be owed to an exposure of either.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

#: One row per exposure: who, which answer, and what it showed (the store's `items` JSON list).
EXPOSURE_COLUMNS = ("recommendation_id", "client_id", "visitor_id", "variant", "kind", "channel", "items", "shown_at")
#: What each purchase gets: the exposure it is attributed to (all None when it is not).
ATTRIBUTED_COLUMNS = ("recommendation_id", "variant", "kind", "channel", "shown_at", "match")

GroupOf = Callable[[Sequence[str]], Sequence[str | None]]


def utc(times: pd.Series) -> pd.Series:
    """Timestamps as one dtype (UTC, nanoseconds): joins refuse mixed resolutions."""
    return pd.to_datetime(times, utc=True).astype("datetime64[ns, UTC]")


def nanos(times: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds since the epoch (what the joins compare)."""
    return pd.DatetimeIndex(utc(times)).asi8


def subjects(client_id: pd.Series, visitor_id: pd.Series) -> np.ndarray:
    """The subject key of each row: the client when known, else the visitor, else None."""
    client, visitor = _keys(client_id, "c:"), _keys(visitor_id, "v:")
    return np.where(pd.isna(client), visitor, client)


def _keys(ids: pd.Series, prefix: str) -> np.ndarray:
    """`prefix + id` where the id is present, None elsewhere (object array)."""
    values = ids.to_numpy(object)
    present = ~pd.isna(values)
    out = np.full(len(values), None, dtype=object)
    out[present] = [prefix + str(v) for v in values[present]]
    return out


def _texts(values: list) -> np.ndarray:
    """Values as str, None kept (JSON groups may be numbers)."""
    return np.array([v if v is None or isinstance(v, str) else str(v) for v in values], dtype=object)


def items_list(items: Any) -> list:
    """The `items` JSON list (a driver may hand it back as text)."""
    if isinstance(items, str):
        items = json.loads(items)
    return items if isinstance(items, list) else []


def exposed_items(exposures: pd.DataFrame) -> pd.DataFrame:
    """One row per (exposure, item shown): exposure (its row position), subject, item_id, group,
    kind (the item's, else the exposure's), variant, channel, recommendation_id, shown_at (int64
    nanoseconds, see `nanos`)."""
    lists = [items_list(items) for items in exposures["items"].to_numpy(object)]
    rows = np.repeat(np.arange(len(exposures)), [len(items) for items in lists])
    flat = [item if isinstance(item, dict) else {} for items in lists for item in items]
    kinds = exposures["kind"].to_numpy(object)
    out = pd.DataFrame({
        "exposure": rows,
        "item_id": _texts([item.get("item_id") for item in flat]),
        "group": _texts([item.get("group") for item in flat]),
        "kind": _texts([item.get("kind") for item in flat]),
    })
    missing = pd.isna(out["kind"].to_numpy(object))
    out.loc[missing, "kind"] = kinds[rows[missing]]
    for column in ("recommendation_id", "variant", "channel"):
        out[column] = exposures[column].to_numpy(object)[rows]
    out["subject"] = subjects(exposures["client_id"], exposures["visitor_id"])[rows]
    out["shown_at"] = nanos(exposures["shown_at"])[rows]
    return out[out["subject"].notna() & out["item_id"].notna()].reset_index(drop=True)


def purchase_subjects(purchases: pd.DataFrame) -> pd.DataFrame:
    """The purchases long by subject (a purchase with a client and a visitor id appears twice),
    with `purchase` the row position in `purchases`."""
    base = pd.DataFrame({"purchase": np.arange(len(purchases)),
                         "item_id": purchases["item_id"].astype(str).to_numpy(object),
                         "group": _texts(purchases["group"].where(purchases["group"].notna(), None).tolist())
                         if "group" in purchases else np.full(len(purchases), None, dtype=object),
                         "occurred_at": nanos(purchases["occurred_at"])})
    parts = []
    for column, prefix in (("client_id", "c:"), ("visitor_id", "v:")):
        if column in purchases:
            keys = _keys(purchases[column], prefix)
            mask = ~pd.isna(keys)
            parts.append(base[mask].assign(subject=keys[mask]))
    return pd.concat(parts, ignore_index=True) if parts else base.iloc[:0].assign(subject=None)


def _codes(left: pd.Series, right: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer codes of two columns in one code space (-1 for missing), and its size."""
    codes, uniques = pd.factorize(pd.concat([left, right], ignore_index=True).to_numpy(object), use_na_sentinel=True)
    return codes[:len(left)], codes[len(left):], len(uniques)


def _last_exposure(longs: pd.DataFrame, shown: pd.DataFrame, key: str, window: timedelta) -> pd.DataFrame:
    """(purchase, shown row, shown_at) for each purchase whose subject had `key` (item or group)
    shown at or before it and within `window`: the latest such row."""
    subj_l, subj_r, _ = _codes(longs["subject"], shown["subject"])
    key_l, key_r, n_keys = _codes(longs[key], shown[key])
    left = pd.DataFrame({"k": subj_l.astype(np.int64) * (n_keys + 1) + key_l, "t": longs["occurred_at"].to_numpy(),
                         "purchase": longs["purchase"].to_numpy()})
    right = pd.DataFrame({"k": subj_r.astype(np.int64) * (n_keys + 1) + key_r, "t": shown["shown_at"].to_numpy(),
                          "row": np.arange(len(shown))})
    left, right = left[key_l >= 0].sort_values("t", kind="stable"), right[key_r >= 0].sort_values("t", kind="stable")
    joined = pd.merge_asof(left, right, on="t", by="k", direction="backward",
                           tolerance=int(window.total_seconds() * 1e9), allow_exact_matches=True)
    joined = joined[joined["row"].notna()]
    row = joined["row"].to_numpy(np.int64)
    return pd.DataFrame({"purchase": joined["purchase"].to_numpy(), "row": row,
                         "shown": shown["shown_at"].to_numpy()[row], "exact": key == "item_id"})


def attribute(exposures: pd.DataFrame, purchases: pd.DataFrame, *, days: int = 14,
              group_of: GroupOf | None = None) -> pd.DataFrame:
    """Each purchase (same rows, same order as `purchases`) with the exposure it is attributed
    to: ATTRIBUTED_COLUMNS, None (NaT for `shown_at`) where no exposure qualifies.

    `exposures`: EXPOSURE_COLUMNS (as `EventStore.exposures_between` reads them).
    `purchases`: client_id, visitor_id (optional), item_id, occurred_at, and `group` or a
    `group_of(item_ids)` mapping (the serving model's product groups); without either, only the
    exact item matches. `match` says which matched: "item" or "group"; `kind` is the kind of the
    suggestion that matched."""
    result = pd.DataFrame({column: np.full(len(purchases), None, dtype=object) for column in ATTRIBUTED_COLUMNS})
    result["shown_at"] = pd.to_datetime(np.full(len(purchases), np.iinfo(np.int64).min, dtype=np.int64), utc=True)
    if not len(purchases) or not len(exposures):
        return result
    purchases = purchases.reset_index(drop=True)
    if "group" not in purchases and group_of is not None:
        purchases = purchases.assign(group=list(group_of(purchases["item_id"].astype(str).tolist())))
    shown = exposed_items(exposures)
    longs = purchase_subjects(purchases)
    if not len(shown) or not len(longs):
        return result
    window = timedelta(days=days)
    found = pd.concat([_last_exposure(longs, shown, "item_id", window), _last_exposure(longs, shown, "group", window)],
                      ignore_index=True)
    if not len(found):
        return result
    # the latest exposure wins; at the same instant the exact item beats its group
    best = found.sort_values(["purchase", "shown", "exact"], kind="stable").drop_duplicates("purchase", keep="last")
    take = shown.iloc[best["row"].to_numpy()]
    index = best["purchase"].to_numpy()
    for column in ("recommendation_id", "variant", "kind", "channel"):
        result.loc[index, column] = take[column].to_numpy(object)
    shown_at = np.full(len(purchases), np.iinfo(np.int64).min, dtype=np.int64)  # NaT where not attributed
    shown_at[index] = take["shown_at"].to_numpy(np.int64)
    result["shown_at"] = pd.to_datetime(shown_at, utc=True)
    result.loc[index, "match"] = np.where(best["exact"].to_numpy(bool), "item", "group")
    return result
