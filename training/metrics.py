"""Ranking metrics with binary relevance, for one ranked list or a whole batch.

Conventions shared by every function (and spelled out in docs/evaluation.md):
- `ranked` holds item indices best first; negative entries are padding (a ranker that had fewer
  than k items to offer) and never count as a hit. Only the first k entries are read.
- `relevant` holds what the query should find. Negative values in it stand for items the ranker
  cannot know (never seen in training): they count towards |rel| but can never be hit, so a
  ranker is not flattered by dropping the hard cases.
- An empty `relevant` scores 0 everywhere; the harness never asks for such a query.

The per-list functions are the readable definition; `score_rankings` computes the same numbers
for a batch with array operations and is tested against them.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

Relevant = set[int] | frozenset[int] | np.ndarray | Sequence[int]


def _hits(ranked: np.ndarray, relevant: Relevant, k: int) -> tuple[np.ndarray, int]:
    """(hit flags of the first k positions, |relevant|). A repeated item only counts once."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    relevant = set(int(r) for r in relevant)
    top = np.asarray(ranked, dtype=np.int64).ravel()[:k]
    seen: set[int] = set()
    flags = np.zeros(k, dtype=bool)
    for position, item in enumerate(top.tolist()):
        if item >= 0 and item in relevant and item not in seen:
            flags[position] = True
        seen.add(item)
    return flags, len(relevant)


def _discounts(k: int) -> np.ndarray:
    """1 / log2(position + 1) for positions 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2))


def dcg_at_k(ranked: np.ndarray, relevant: Relevant, k: int) -> float:
    """Sum over hit positions p <= k of 1 / log2(p + 1)."""
    flags, _ = _hits(ranked, relevant, k)
    return float(_discounts(k)[flags].sum())


def ndcg_at_k(ranked: np.ndarray, relevant: Relevant, k: int) -> float:
    """DCG@k / ideal DCG@k, the ideal list putting min(|rel|, k) hits first."""
    flags, n_relevant = _hits(ranked, relevant, k)
    if n_relevant == 0:
        return 0.0
    discounts = _discounts(k)
    return float(discounts[flags].sum() / discounts[: min(n_relevant, k)].sum())


def precision_at_k(ranked: np.ndarray, relevant: Relevant, k: int) -> float:
    """Hits in the first k / k (a short list is not rewarded for being short)."""
    flags, n_relevant = _hits(ranked, relevant, k)
    return float(flags.sum() / k) if n_relevant else 0.0


def recall_at_k(ranked: np.ndarray, relevant: Relevant, k: int) -> float:
    """Hits in the first k / |rel|."""
    flags, n_relevant = _hits(ranked, relevant, k)
    return float(flags.sum() / n_relevant) if n_relevant else 0.0


def average_precision_at_k(ranked: np.ndarray, relevant: Relevant, k: int) -> float:
    """Sum over hit positions p <= k of precision@p, divided by min(|rel|, k)."""
    flags, n_relevant = _hits(ranked, relevant, k)
    if n_relevant == 0:
        return 0.0
    precision = np.cumsum(flags) / np.arange(1, k + 1)
    return float(precision[flags].sum() / min(n_relevant, k))


def hit_rate_at_k(ranked: np.ndarray, relevant: Relevant, k: int) -> float:
    """1 if any of the first k is relevant, else 0."""
    flags, _ = _hits(ranked, relevant, k)
    return float(flags.any())


def mrr_at_k(ranked: np.ndarray, relevant: Relevant, k: int) -> float:
    """1 / position of the first hit within the first k, 0 without a hit."""
    flags, _ = _hits(ranked, relevant, k)
    return float(1.0 / (np.argmax(flags) + 1)) if flags.any() else 0.0


def catalogue_coverage(all_ranked_lists: Iterable[np.ndarray], n_items: int) -> float:
    """Share of the n_items catalogue that appears in at least one list (padding ignored).

    Why: a ranker that shows every client the same ten bestsellers can score well and still
    never surface most of the catalogue; coverage makes that visible.
    """
    if n_items < 1:
        raise ValueError("n_items must be at least 1")
    lists = [np.asarray(r, dtype=np.int64).ravel() for r in all_ranked_lists]
    if not lists:
        return 0.0
    shown = np.unique(np.concatenate(lists))
    return float(np.count_nonzero(shown >= 0) / n_items)


def metric_names(k: int) -> tuple[str, ...]:
    """The keys of `score_rankings`, in display order."""
    return (f"ndcg@{k}", f"precision@{k}", f"recall@{k}", f"map@{k}", f"hr@{k}", f"mrr@{k}", "coverage", "n")


def hit_matrix(recommendations: np.ndarray, relevant: Sequence[Relevant]) -> tuple[np.ndarray, np.ndarray]:
    """(hits n x k bool, |rel| per row) for a batch, by one vectorised membership test.

    Each (row, item) pair becomes one int64 key, so "is this recommended item relevant to this
    row" is a single np.isin over the whole batch.
    """
    recommendations = np.asarray(recommendations, dtype=np.int64)
    if recommendations.ndim != 2 or recommendations.shape[0] != len(relevant):
        raise ValueError("recommendations must be 2-D with one row per relevant set")
    n, k = recommendations.shape
    if k and n:
        ordered = np.sort(recommendations, axis=1)
        if np.any((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)):
            raise ValueError("a row of recommendations repeats an item")
    arrays = [np.unique(np.fromiter((int(r) for r in rel), dtype=np.int64)) if isinstance(rel, (set, frozenset))
              else np.unique(np.asarray(rel, dtype=np.int64).ravel()) for rel in relevant]
    n_relevant = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=n)
    rows = np.repeat(np.arange(n, dtype=np.int64), n_relevant)
    codes = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    known = codes >= 0
    width = int(max(recommendations.max(initial=-1), codes.max(initial=-1))) + 1
    relevant_keys = rows[known] * width + codes[known]
    recommended_keys = np.arange(n, dtype=np.int64)[:, None] * width + recommendations
    hits = np.isin(recommended_keys, relevant_keys) & (recommendations >= 0)
    return hits, n_relevant


def score_rankings(
    recommendations: np.ndarray, relevant: Sequence[Relevant], n_items: int, k: int | None = None
) -> dict[str, float | int]:
    """Mean of every metric over a batch, plus catalogue coverage and the number of queries.

    recommendations: n x K int array (-1 padded), one row per query; only the first k columns
    count (k defaults to K). relevant: one set/array per row. Rows with an empty relevant set
    are an error: a query with nothing to find says nothing about a ranker.
    """
    recommendations = np.asarray(recommendations, dtype=np.int64)
    if recommendations.ndim != 2:
        raise ValueError("recommendations must be a 2-D array")
    k = recommendations.shape[1] if k is None else k
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    top = np.full((recommendations.shape[0], k), -1, dtype=np.int64)
    width = min(k, recommendations.shape[1])
    top[:, :width] = recommendations[:, :width]
    hits, n_relevant = hit_matrix(top, relevant)
    names = metric_names(k)
    n = len(n_relevant)
    if n == 0:
        return {**{name: 0.0 for name in names[:-1]}, "n": 0}
    if np.any(n_relevant == 0):
        raise ValueError("every query needs at least one relevant item")

    discounts = _discounts(k)
    ideal = np.cumsum(discounts)[np.minimum(n_relevant, k) - 1]
    n_hits = hits.sum(axis=1)
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    first_hit = np.where(hits.any(axis=1), np.argmax(hits, axis=1) + 1, np.inf)
    values = {
        names[0]: (hits @ discounts) / ideal,
        names[1]: n_hits / k,
        names[2]: n_hits / n_relevant,
        names[3]: (precision_at * hits).sum(axis=1) / np.minimum(n_relevant, k),
        names[4]: (n_hits > 0).astype(float),
        names[5]: 1.0 / first_hit,
    }
    scores: dict[str, float | int] = {name: float(np.mean(v)) for name, v in values.items()}
    scores["coverage"] = catalogue_coverage([top], n_items)
    scores["n"] = int(n)
    return scores
