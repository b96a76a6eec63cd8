"""The training part of a split, indexed once: the one index space every ranker, task and fit uses.

Clients are those of the training history; items are the catalogue's plus the history's (the
items the service can suggest). A `TrainContext` computes the codes of every line against those
indexes, and the positive lines' purchase counts, once; the evaluation's tasks, the baselines,
tuning and `training.fit.fit_recommender` all read them, so an item index means the same item
everywhere and nothing translates between two numberings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.matrix import IdIndex
from features.prices import item_unit_prices
from features.schema import CLIENT, ITEM, KIND_FEE, KIND_SERVICE, ORDER, QUANTITY, TIMESTAMP


@dataclass(frozen=True)
class TrainContext:
    """Everything a ranker may learn from: the training part, indexed once and shared by all.

    line_client / line_item  per line of `transactions`: its client and item index (int64)
    positive   per line: quantity > 0 (a purchase, not a return)
    purchases  clients x items: distinct orders with a positive line (how often a client came back)
    recency    same pattern: 1 / (1 + days between the last such purchase and `now`), in (0, 1]
    popularity per item: distinct clients who bought it (0 for a catalogue item nobody bought)
    (`items` holds the catalogue too; `item_seen` says which items the training lines hold)
    unit_prices per item id (train items and catalogue items): features.prices.item_unit_prices
    item_price / item_subcategory: the same, aligned on `items` (NaN / -1 when unknown)
    """

    transactions: pd.DataFrame
    items_df: pd.DataFrame | None
    packages: pd.DataFrame | None
    now: pd.Timestamp
    clients: IdIndex
    items: IdIndex
    line_client: np.ndarray
    line_item: np.ndarray
    positive: np.ndarray
    purchases: sp.csr_matrix
    recency: sp.csr_matrix
    popularity: np.ndarray
    unit_prices: pd.Series
    item_price: np.ndarray
    subcategory_of: pd.Series
    subcategories: np.ndarray
    item_subcategory: np.ndarray
    services: frozenset[str]
    #: item ids that are not merchandise (kind `fee`, `features.merchandise`): never a positive
    fees: frozenset[str] = frozenset()
    #: what is derived from the context on first use (`training.item_facts`)
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        train_tx: pd.DataFrame,
        items_df: pd.DataFrame | None = None,
        packages: pd.DataFrame | None = None,
        now: pd.Timestamp | None = None,
        like: TrainContext | None = None,
    ) -> TrainContext:
        """`like`: keep that context's client and item indexes (and time), so task queries built
        on it stay valid on this one (used to refit without held-out lines)."""
        if like is not None:
            now, clients, items = like.now, like.clients, like.items
        else:
            now = train_tx[TIMESTAMP].max() if now is None else pd.Timestamp(now)
            clients, items = IdIndex.from_ids(train_tx[CLIENT]), catalogue_index(train_tx, items_df)
        line_client, line_item = clients.index_of(train_tx[CLIENT]), items.index_of(train_tx[ITEM])
        positive = (train_tx[QUANTITY].to_numpy(dtype=np.float64, na_value=np.nan) > 0) & (line_client >= 0) & (
            line_item >= 0)
        purchases, recency = _purchase_matrices(train_tx, line_client, line_item, positive,
                                                (len(clients), len(items)), now)
        unit_prices = item_unit_prices(train_tx, items_df)
        subcategory_of = _subcategory_of(items_df)
        subcategory_names, codes = np.unique(subcategory_of.to_numpy(dtype=str), return_inverse=True)
        item_subcategory = pd.Series(codes, index=subcategory_of.index).reindex(items.ids).fillna(-1)
        return cls(
            transactions=train_tx,
            items_df=items_df,
            packages=packages,
            now=now,
            clients=clients,
            items=items,
            line_client=line_client,
            line_item=line_item,
            positive=positive,
            purchases=purchases,
            recency=recency,
            popularity=np.bincount(purchases.indices, minlength=len(items)).astype(np.float64),
            unit_prices=unit_prices,
            item_price=unit_prices.reindex(items.ids).to_numpy(dtype=np.float64, na_value=np.nan),
            subcategory_of=subcategory_of,
            subcategories=subcategory_names.astype(object),
            item_subcategory=item_subcategory.to_numpy(dtype=np.int64),
            services=_services(items_df, packages),
            fees=_fees(items_df),
        )

    @property
    def service_mask(self) -> np.ndarray:
        """bool per item of `items`: sold as a service."""
        return np.isin(self.items.ids, np.array(sorted(self.services), dtype=object))

    @property
    def item_seen(self) -> np.ndarray:
        """bool per item of `items`: on at least one training line. The others are catalogue
        items the training part says nothing about."""
        return np.bincount(self.line_item[self.line_item >= 0], minlength=len(self.items)) > 0

    def seen_item_codes(self, ids: pd.Series | np.ndarray) -> np.ndarray:
        """Item index of each id, -1 for an id no training line holds (even when the catalogue
        lists it): what the tasks count as unknown to training, findable by no ranker."""
        codes = self.items.index_of(ids)
        codes[codes >= 0] = np.where(self.item_seen[codes[codes >= 0]], codes[codes >= 0], -1)
        return codes

    def bought_within(self, days: float) -> np.ndarray:
        """Mask over `recency`'s stored entries: the pairs last bought at most `days` before `now`.
        Here, beside `_purchase_matrices`, because it reads that encoding (1 / (1 + days since))."""
        return self.recency.data >= 1.0 / (1.0 + days)

    @property
    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(client index, item index) of every line: what `features` matrices take instead of
        looking the ids up again."""
        return self.line_client, self.line_item


def catalogue_index(tx: pd.DataFrame, items_df: pd.DataFrame | None) -> IdIndex:
    """Every item of the catalogue and of the history: what the model can suggest."""
    ids = pd.Index(tx[ITEM].unique())
    if items_df is not None:
        ids = ids.union(pd.Index(items_df[ITEM].unique()), sort=False)
    return IdIndex.from_ids(ids)


def _purchase_matrices(tx: pd.DataFrame, row: np.ndarray, col: np.ndarray, positive: np.ndarray,
                       shape: tuple[int, int], now: pd.Timestamp) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(distinct orders per pair, recency of the last one) over positive lines."""
    bought = tx[positive]
    lines = pd.DataFrame({"row": row[positive], "col": col[positive], "order": pd.factorize(bought[ORDER])[0],
                          "when": bought[TIMESTAMP].to_numpy()})
    pairs = lines.groupby(["row", "col"], sort=True).agg(orders=("order", "nunique"), last=("when", "max"))
    rows = pairs.index.get_level_values("row").to_numpy()
    cols = pairs.index.get_level_values("col").to_numpy()
    age_days = ((now - pairs["last"]) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
    purchases = csr(rows, cols, pairs["orders"].to_numpy(dtype=np.float64), *shape)
    recency = csr(rows, cols, 1.0 / (1.0 + np.maximum(age_days, 0.0)), *shape)
    return purchases, recency


def csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    """A float64 csr of the given entries, duplicates summed."""
    matrix = sp.csr_matrix((np.asarray(values, dtype=np.float64), (rows, cols)), shape=(n_rows, n_cols))
    matrix.sum_duplicates()
    return matrix


def _subcategory_of(items_df: pd.DataFrame | None) -> pd.Series:
    """item_id -> subcategory (str) for catalogue items that have one."""
    if items_df is None or "subcategory" not in items_df.columns:
        return pd.Series([], dtype=object, index=pd.Index([], dtype=object, name=ITEM), name="subcategory")
    known = items_df.dropna(subset=["subcategory"]).drop_duplicates(ITEM, keep="last")
    return pd.Series(known["subcategory"].astype(str).to_numpy(dtype=object),
                     index=pd.Index(known[ITEM].astype(str).to_numpy(dtype=object), name=ITEM), name="subcategory")


def _services(items_df: pd.DataFrame | None, packages: pd.DataFrame | None) -> frozenset[str]:
    """Item ids sold as services: kind == "service" in the catalogue, plus every package member."""
    services: set[str] = set()
    if items_df is not None and "kind" in items_df.columns:
        services.update(items_df.loc[items_df["kind"].astype(str) == KIND_SERVICE, ITEM].astype(str))
    if packages is not None and "items" in packages.columns:
        for members in packages["items"]:
            services.update(str(item) for item in members)
    return frozenset(services)


def _fees(items_df: pd.DataFrame | None) -> frozenset[str]:
    """Item ids of kind `fee`: fees, coupons, fuel and the like (`features.merchandise.mark`)."""
    if items_df is None or "kind" not in items_df.columns:
        return frozenset()
    return frozenset(items_df.loc[items_df["kind"].astype(str) == KIND_FEE, ITEM].astype(str))
