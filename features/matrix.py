"""Client x item matrices: the evidence every collaborative-filtering model learns from.

A CRM purchase history says, for each client and item, how often the client came back for it. The
matrices here turn purchase lines into that evidence, with returns counting against it, so that
models never see a returned item as a preference.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.schema import CLIENT, ITEM, ORDER, QUANTITY, TIMESTAMP

WEIGHTINGS = ("count", "log", "bm25")


@dataclass(frozen=True)
class IdIndex:
    """Stable id <-> row/column index map (ids sorted, so the same ids always give the same indices).

    Sorting makes the mapping a pure function of the set of ids: a model trained today and the
    service that loads it tomorrow agree on which row is which client without sharing state.
    """

    ids: np.ndarray  # 1-D object array of str, sorted, unique
    _lookup: pd.Index = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, dtype=object).reshape(-1)
        if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            raise ValueError("IdIndex ids must be sorted and unique; build it with IdIndex.from_ids")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "_lookup", pd.Index(ids, dtype=object))

    @classmethod
    def from_ids(cls, values: Iterable[str]) -> IdIndex:
        """Index over the distinct non-missing ids in `values` (converted to str)."""
        if not isinstance(values, (pd.Series, pd.Index, np.ndarray, list, tuple)):
            values = list(values)
        unique = pd.Series(values, dtype="str").dropna().unique()
        return cls(np.sort(np.asarray(unique, dtype=object)))

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdIndex) and np.array_equal(self.ids, other.ids)

    def __hash__(self) -> int:
        return hash(tuple(self.ids))

    def index_of(self, values: Any) -> np.ndarray:
        """int64 positions of `values`, -1 for ids not in the index (one hash lookup per distinct id)."""
        if isinstance(values, str):
            values = [values]
        codes, uniques = pd.factorize(pd.Series(values, dtype="str"))
        positions = self._lookup.get_indexer(np.asarray(uniques, dtype=object)).astype(np.int64)
        # factorize codes missing values as -1; the appended -1 maps them to "unknown"
        return np.append(positions, -1)[codes]

    def id_of(self, index: int) -> str:
        return str(self.ids[index])

    def get(self, value: str) -> int | None:
        position = int(self.index_of([value])[0])
        return None if position < 0 else position


#: Per line: (client position, item position), -1 where not indexed; a caller that indexed the
#: lines once (training's `TrainContext.codes`) passes them instead of having them looked up again.
Codes = tuple[np.ndarray, np.ndarray]


def _known_pairs(
    transactions: pd.DataFrame, clients: IdIndex, items: IdIndex, codes: Codes | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row/column positions of each line and a mask of lines whose client and item are both indexed."""
    if codes is not None:
        rows, cols = codes
        if len(rows) != len(transactions) or len(cols) != len(transactions):
            raise ValueError("codes must give one client and one item position per line")
    else:
        rows = clients.index_of(transactions[CLIENT])
        cols = items.index_of(transactions[ITEM])
    return rows, cols, (rows >= 0) & (cols >= 0)


def confidence_matrix(
    transactions: pd.DataFrame,
    clients: IdIndex,
    items: IdIndex,
    weighting: str = "bm25",
    recency_half_life_days: float | None = None,
    now: pd.Timestamp | None = None,
    bm25_k1: float = 1.2,
    bm25_b: float = 0.75,
    codes: Codes | None = None,
) -> sp.csr_matrix:
    """clients x items float32 confidence for implicit-feedback CF.

    Evidence per (client, item) = number of distinct purchase occasions (orders with quantity > 0)
    minus returns (count of lines with quantity <= 0), clipped at 0. Occasions rather than units:
    ten bottles in one order is one decision, ten separate orders are ten. With
    `recency_half_life_days`, each occasion and return is weighted by 0.5 ** (age_days / half_life)
    relative to `now` (default: the latest timestamp), so tastes that changed fade out.

    weighting: "count" (raw evidence), "log" (log1p(evidence): heavy repeat buyers do not drown
    everyone else), "bm25" (see `bm25_weight`: also discounts items everybody buys, which say
    little about a client's taste). Zero entries are eliminated. `codes`: the lines' positions,
    when already known (see `Codes`).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; expected one of {WEIGHTINGS}")
    if recency_half_life_days is not None and recency_half_life_days <= 0:
        raise ValueError("recency_half_life_days must be positive")

    rows, cols, known = _known_pairs(transactions, clients, items, codes)
    quantity = transactions[QUANTITY].to_numpy(dtype=np.float64, na_value=np.nan)
    lines = pd.DataFrame(
        {
            "row": rows,
            "col": cols,
            "order": pd.factorize(transactions[ORDER])[0],
            "when": transactions[TIMESTAMP].to_numpy(),
        }
    )
    bought = lines[known & (quantity > 0)]
    occasions = bought.groupby(["row", "col", "order"], sort=False)["when"].max().reset_index()
    returns = lines[known & (quantity <= 0)]

    weight = np.concatenate(
        [
            _recency_weight(occasions["when"], recency_half_life_days, now, transactions),
            -_recency_weight(returns["when"], recency_half_life_days, now, transactions),
        ]
    )
    evidence = sp.csr_matrix(
        (
            weight,
            (
                np.concatenate([occasions["row"].to_numpy(), returns["row"].to_numpy()]),
                np.concatenate([occasions["col"].to_numpy(), returns["col"].to_numpy()]),
            ),
        ),
        shape=(len(clients), len(items)),
        dtype=np.float64,
    )
    evidence = _clip_positive(evidence)
    if weighting == "log":
        evidence.data = np.log1p(evidence.data)
    elif weighting == "bm25":
        evidence = bm25_weight(evidence, k1=bm25_k1, b=bm25_b)
    evidence.eliminate_zeros()
    return evidence.astype(np.float32)


def bm25_weight(evidence: sp.csr_matrix, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """BM25 weighting of a clients x items matrix, as implicit.nearest_neighbours.bm25_weight.

    Clients are the documents and items the terms: an entry grows with its evidence but saturates
    (k1), clients with long histories are normalised towards the average (b), and items bought by
    many clients count less (idf = log(n_clients) - log1p(clients who bought it)). Unlike implicit,
    the idf is floored at 0, so an item bought by (nearly) every client carries no confidence
    rather than a negative one; on tiny data that means items bought by n_clients - 1 or more
    clients vanish, so small examples are clearer with "count" or "log".
    """
    matrix = sp.csr_matrix(evidence, dtype=np.float64, copy=True)
    n_clients = float(matrix.shape[0])
    if matrix.nnz == 0:
        return matrix
    clients_per_item = np.bincount(matrix.indices, minlength=matrix.shape[1])
    idf = np.maximum(np.log(n_clients) - np.log1p(clients_per_item), 0.0)
    row_sums = np.asarray(matrix.sum(axis=1)).ravel()
    length_norm = (1.0 - b) + b * row_sums / row_sums.mean()
    row_of_entry = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    matrix.data = (
        matrix.data * (k1 + 1.0) / (k1 * length_norm[row_of_entry] + matrix.data) * idf[matrix.indices]
    )
    matrix.eliminate_zeros()
    return matrix


def _recency_weight(
    when: pd.Series,
    half_life_days: float | None,
    now: pd.Timestamp | None,
    transactions: pd.DataFrame,
) -> np.ndarray:
    """0.5 ** (age_days / half_life) per timestamp (1.0 without a half-life); future events count fully."""
    if half_life_days is None:
        return np.ones(len(when))
    reference = transactions[TIMESTAMP].max() if now is None else pd.Timestamp(now)
    age_days = ((reference - pd.to_datetime(when)) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
    return 0.5 ** (np.maximum(age_days, 0.0) / half_life_days)


def _clip_positive(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Sum duplicates, zero out negative entries and drop explicit zeros."""
    matrix = sp.csr_matrix(matrix)
    matrix.sum_duplicates()
    matrix.data = np.maximum(matrix.data, 0.0)
    matrix.eliminate_zeros()
    return matrix
