"""The ranker interface of the offline evaluation, and the ranking rules every baseline shares.

Kept apart from `training.baselines` so that a baseline with a module of its own (tifu_knn)
builds on `ScoringRanker` while `baselines.default_rankers` lists it, without an import circle.
The rules themselves are described in `training.baselines`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from scoring.ranking import top_indices_per_row
from training.context import TrainContext
from training.tasks import TASKS, TaskQueries

#: Rows scored at once: batch x items float32 arrays (256 x 68k items is about 70 MB each).
BATCH_SIZE = 256


@runtime_checkable
class Ranker(Protocol):
    """What the evaluation harness needs from any recommender (baselines, the model, the champion)."""

    name: str

    def answers(self, task: str) -> bool:
        """Whether this ranker has something meaningful to say for `task` (after fit)."""
        ...

    def fit(self, ctx: TrainContext) -> Ranker:
        """Learn from the training part only."""
        ...

    def rank(self, queries: TaskQueries, k: int) -> np.ndarray:
        """len(queries) x k int array of item indices (of ctx.items), best first, -1 padded."""
        ...


class ScoringRanker(ABC):
    """A ranker defined by a score per (row, item); `rank` applies the shared rules above."""

    name: ClassVar[str]
    tasks: ClassVar[frozenset[str]] = frozenset(TASKS)
    batch_size: int = BATCH_SIZE

    def answers(self, task: str) -> bool:
        return task in self.tasks

    def fit(self, ctx: TrainContext) -> ScoringRanker:
        self.ctx = ctx
        popularity = ctx.popularity
        # Fallback scores in [-2, -1): always below any evidence (> 0), ordered by popularity.
        self._fallback = (popularity / (popularity.max(initial=0.0) + 1.0) - 2.0).astype(np.float32)
        self._fit(ctx)
        return self

    def _fit(self, ctx: TrainContext) -> None:  # noqa: B027 - optional hook, most rankers need nothing
        """Hook for what a ranker learns beyond the shared context."""

    @abstractmethod
    def score(self, queries: TaskQueries, rows: slice) -> np.ndarray:
        """rows x items scores for queries[rows]; > 0 is evidence, anything else is no opinion."""

    def rank(self, queries: TaskQueries, k: int) -> np.ndarray:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        out = np.full((len(queries), k), -1, dtype=np.int64)
        for start in range(0, len(queries), self.batch_size):
            rows = slice(start, min(start + self.batch_size, len(queries)))
            evidence = np.asarray(self.score(queries, rows), dtype=np.float32)
            scores = np.where(evidence > 0, evidence, self._fallback).astype(np.float32, copy=False)
            self._forbid(scores, queries, rows)
            out[rows] = top_indices_per_row(scores, k)
        return out

    @staticmethod
    def _forbid(scores: np.ndarray, queries: TaskQueries, rows: slice) -> None:
        if queries.candidates is not None:
            scores[:, ~queries.candidates] = -np.inf
        if queries.exclude is not None:
            excluded = queries.exclude[rows]
            row_of = np.repeat(np.arange(excluded.shape[0]), np.diff(excluded.indptr))
            scores[row_of, excluded.indices] = -np.inf


def query_rows(matrix: sp.csr_matrix, queries: TaskQueries, rows: slice) -> sp.csr_matrix:
    """A per-client training matrix (confidence, `ctx.recency`...) for queries[rows], cut to
    what each row's history shows: for service_package the hidden service disappears from it too.
    Basket rows have no client row: their history is all there is."""
    if queries.kind == "basket":
        return sp.csr_matrix(queries.history[rows], dtype=np.float32)
    full = matrix[queries.clients[rows]]
    return sp.csr_matrix(full.multiply(queries.history[rows] != 0), dtype=np.float32)
