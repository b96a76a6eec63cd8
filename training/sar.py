"""SAR (Microsoft Recommenders' "Smart Adaptive Recommendations"): item-item similarity from
co-occurrence over clients, applied to each client's time-decayed affinity. A strong published
baseline for the evaluation to measure the model against.

    C = X^T X           (X: binary client x item; c_ii = clients who bought i)
    S = jaccard:  c_ij / (c_ii + c_jj - c_ij)     lift: c_ij / (c_ii c_jj)
    A = sum over a client's purchase occasions of 2^(-age / half-life)   (no decay: 1 each)
    scores = A S

As in SAR the diagonal stays in S (an item is most similar to itself), so what a client buys
often and lately ranks high where the task allows it. C is never formed whole: it is computed a
block of items at a time and each item keeps only its `neighbours` strongest similarities
(`training.models.toplists.keep_top_per_row`), so it runs on a 68.5k-item catalogue.

The similarity (jaccard or lift) and the half-life (none, SAR's default, or 30 days, its
`time_decay_coefficient`) are chosen on the inner split (`training.baseline_tuning`, the model's
own inner split) by cross_sell NDCG@10, the task SAR is made for. Cost: one co-occurrence pass on
the inner training part gives both similarities (the decay only changes the cheap affinity
matrix); on Complete Journey, on 2 cores shared with other jobs, the choice took 340 s and the
fit after it 112 s.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.schema import ORDER, TIMESTAMP
from training.baseline_tuning import DEFAULT_SPLIT, Choice, InnerSplit, TunedOnInner, choose_on_inner
from training.context import TrainContext, csr
from training.models.toplists import keep_top_per_row
from training.ranker import ScoringRanker, query_rows
from training.tasks import TaskQueries

log = logging.getLogger(__name__)

#: SAR's time-decay half-life (its `time_decay_coefficient`) when decay is on.
HALF_LIFE_DAYS = 30.0

#: Similar items kept per item.
NEIGHBOURS = 200

#: Items whose co-occurrence row is computed at once (a block's rows can each hold every item).
_BLOCK = 256

SIMILARITIES = ("jaccard", "lift")


@dataclass(frozen=True)
class SarSetting:
    """One SAR setting: the similarity, and the affinity's half-life in days (None: no decay)."""

    similarity: str
    half_life_days: float | None

    def __post_init__(self) -> None:
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"sar similarity is one of {SIMILARITIES}, not {self.similarity!r}")

    @property
    def name(self) -> str:
        """"jaccard/30d", "lift/no-decay": how the inner scores are keyed."""
        return f"{self.similarity}/" + ("no-decay" if self.half_life_days is None else f"{self.half_life_days:g}d")


#: The settings tried on the inner split; the first (jaccard, 30 days) wins ties.
SETTINGS = tuple(SarSetting(similarity, half_life) for similarity in SIMILARITIES
                 for half_life in (HALF_LIFE_DAYS, None))


def similarity_rows(cooc: sp.csr_matrix, rows: np.ndarray, counts: np.ndarray, similarity: str) -> sp.csr_matrix:
    """SAR's similarity for a block of co-occurrence rows (items `rows`, all columns); `counts`
    is the diagonal of C for every item."""
    cooc = sp.csr_matrix(cooc, dtype=np.float64, copy=True)
    row_of = rows[np.repeat(np.arange(cooc.shape[0]), np.diff(cooc.indptr))]
    c_i, c_j = counts[row_of], counts[cooc.indices]
    if similarity == "jaccard":
        cooc.data = cooc.data / (c_i + c_j - cooc.data)
    else:
        cooc.data = cooc.data / (c_i * c_j)
    return sp.csr_matrix(cooc, dtype=np.float32)


def item_similarity(binary: sp.csr_matrix, similarity: str = "jaccard", neighbours: int = NEIGHBOURS) -> sp.csr_matrix:
    """items x items: each item's similarity to itself and its `neighbours` - 1 strongest others."""
    return item_similarities(binary, (similarity,), neighbours)[similarity]


def item_similarities(binary: sp.csr_matrix, similarities: Sequence[str],
                      neighbours: int = NEIGHBOURS) -> dict[str, sp.csr_matrix]:
    """`item_similarity` for several similarities from one co-occurrence pass (the costly part)."""
    unknown = set(similarities) - set(SIMILARITIES)
    if unknown:
        raise ValueError(f"sar similarity is one of {SIMILARITIES}, not {sorted(unknown)}")
    binary = sp.csr_matrix(binary, dtype=np.float32)
    by_item = binary.T.tocsr()
    counts = np.asarray(binary.sum(axis=0), dtype=np.float64).ravel()
    blocks: dict[str, list[sp.csr_matrix]] = {name: [] for name in similarities}
    for start in range(0, by_item.shape[0], _BLOCK):
        rows = np.arange(start, min(start + _BLOCK, by_item.shape[0]))
        cooc = by_item[rows] @ binary
        for name in similarities:
            blocks[name].append(_keep_strongest(similarity_rows(cooc, rows, counts, name).tocoo(), start, neighbours))
    return {name: sp.csr_matrix(sp.vstack(parts, format="csr"), dtype=np.float32) for name, parts in blocks.items()}


def _keep_strongest(block: sp.coo_matrix, start: int, neighbours: int) -> sp.csr_matrix:
    """A block's rows cut to the diagonal and the `neighbours` - 1 strongest others."""
    own = block.row + start == block.col
    # The diagonal is always kept: many rare items tie with it at jaccard 1, and the cut's
    # tie rule (lower index) would otherwise drop an item's similarity to itself.
    others = keep_top_per_row(sp.csr_matrix((block.data[~own], (block.row[~own], block.col[~own])),
                                            shape=block.shape), max(neighbours - 1, 1))
    return others + sp.csr_matrix((block.data[own], (block.row[own], block.col[own])), shape=block.shape)


def decayed_affinity(ctx: TrainContext, half_life_days: float | None = HALF_LIFE_DAYS) -> sp.csr_matrix:
    """clients x items: each purchase occasion (distinct order with a positive line) weighs
    2^(-age in days / half-life), summed; age is counted back from the training part's end.
    Without a half-life every occasion weighs 1 (SAR with its time decay off)."""
    lines = pd.DataFrame({"row": ctx.line_client[ctx.positive], "col": ctx.line_item[ctx.positive],
                          "order": pd.factorize(ctx.transactions.loc[ctx.positive, ORDER])[0],
                          "when": ctx.transactions.loc[ctx.positive, TIMESTAMP].to_numpy()})
    occasions = lines.groupby(["row", "col", "order"], sort=False)["when"].max().reset_index()
    if half_life_days is None:
        weight = np.ones(len(occasions))
    else:
        age_days = ((ctx.now - occasions["when"]) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
        weight = np.exp2(-np.maximum(age_days, 0.0) / half_life_days)
    return csr(occasions["row"].to_numpy(), occasions["col"].to_numpy(), weight, len(ctx.clients), len(ctx.items))


class Sar(TunedOnInner[SarSetting], ScoringRanker):
    """SAR with `setting` (similarity and half-life), or when it is None the best of `candidates`
    (`SETTINGS`) on the inner split; the 200 most similar items kept per item.

    Clients are scored by their affinity (cut to what the task's history shows); a cart has no
    time, so each of its items weighs 1.
    """

    name = "sar"

    def __init__(self, setting: SarSetting | None = None, neighbours: int = NEIGHBOURS,
                 candidates: tuple[SarSetting, ...] = SETTINGS, split: InnerSplit = DEFAULT_SPLIT) -> None:
        self.fixed = setting
        self.neighbours = neighbours
        self.candidates = candidates
        self.split = split
        #: (similarity, affinity) already computed on the context about to be fitted (by `_candidates`)
        self._computed: tuple[sp.csr_matrix, sp.csr_matrix] | None = None

    def with_setting(self, setting: SarSetting) -> Sar:
        return Sar(setting, self.neighbours, split=self.split)

    def describe_setting(self, setting: SarSetting) -> dict[str, Any]:
        return {**asdict(setting), "neighbours": self.neighbours}

    @property
    def setting(self) -> SarSetting:
        return self.choice.chosen

    def _fit(self, ctx: TrainContext) -> None:
        self.choice = Choice(self.fixed) if self.fixed is not None else choose_on_inner(
            ctx, self.candidates, lambda s: s.name, self._candidates, "cross_sell", "sar", self.split)
        if self._computed is not None:
            (self.similarity, self.affinity), self._computed = self._computed, None
            return
        self.similarity = item_similarity(_binary(ctx), self.setting.similarity, self.neighbours)
        self.affinity = sp.csr_matrix(decayed_affinity(ctx, self.setting.half_life_days), dtype=np.float32)
        log.info("sar: %s, %d item pairs kept (%d per item at most)", self.setting.name, self.similarity.nnz,
                 self.neighbours)

    def _candidates(self, inner: TrainContext) -> Iterator[tuple[SarSetting, Sar]]:
        """Each candidate fitted on `inner`, the similarities computed in one pass for all."""
        similarities = item_similarities(_binary(inner), sorted({s.similarity for s in self.candidates}),
                                         self.neighbours)
        affinities: dict[float | None, sp.csr_matrix] = {}
        for setting in self.candidates:
            if setting.half_life_days not in affinities:
                affinities[setting.half_life_days] = sp.csr_matrix(
                    decayed_affinity(inner, setting.half_life_days), dtype=np.float32)
            ranker = Sar(setting, self.neighbours)
            ranker._computed = (similarities[setting.similarity], affinities[setting.half_life_days])
            yield setting, ranker.fit(inner)

    def score(self, queries: TaskQueries, rows: slice) -> np.ndarray:
        return (query_rows(self.affinity, queries, rows) @ self.similarity).toarray()


def _binary(ctx: TrainContext) -> sp.csr_matrix:
    """clients x items, 1 where the client bought the item."""
    purchases = ctx.purchases
    return sp.csr_matrix((np.ones(purchases.nnz, dtype=np.float32), purchases.indices, purchases.indptr),
                         shape=purchases.shape)
