"""The one interface every kind of suggestion implements, as implicit's `RecommenderBase` does.

A kind ranks items for a request's evidence (`rank`), then says why each is there (`explain`).
The two halves are separate because a ranking can come from elsewhere: the candidate lists
computed at training time store a known client's ranking, and only `explain` runs per request.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, NamedTuple

import numpy as np

from scoring.contract import Suggestion
from scoring.evidence import Evidence


class Ranked(NamedTuple):
    """A ranking: item positions best first and their scores.

    `dense` holds the scores over every item when the ranking was computed for this request (a
    kind's `explain` may need more than the top, e.g. package scores from their members);
    `anchors` the reason anchors (item, confidence) stored with a precomputed list.
    """

    items: np.ndarray
    scores: np.ndarray
    dense: np.ndarray | None = None
    anchors: tuple[np.ndarray, np.ndarray] | None = None


class SuggestionKind(ABC):
    """One kind of suggestion (its `name` is one of `scoring.contract.KINDS`)."""

    name: ClassVar[str]
    #: Its reasons name an anchor item found in a neighbour list ("bought together with X"): the
    #: candidate lists then store each item's anchor, since finding it costs more than the ranking.
    anchored: ClassVar[bool] = False

    @abstractmethod
    def rank(self, ev: Evidence, allowed: np.ndarray, limit: int) -> Ranked:
        """The `limit` best items among `allowed` (a mask over items: stock and the request's
        filters), after the kind's own rules (never what the client owns, diversity...)."""

    @abstractmethod
    def explain(self, ev: Evidence, ranked: Ranked, limit: int, *, with_reasons: bool = True) -> list[Suggestion]:
        """The ranking as suggestions with their reasons and kind-specific fields. `with_reasons=False`
        lets a kind skip what only the reason texts need (the offline evaluation reads ids)."""

    def scores_are_probabilities(self, ev: Evidence) -> bool:
        """Whether this request's scores are a learnt chance of purchase (`scoring.objective`
        maps any other score to one through its rank). Hand blends are not."""
        return False

    def anchors(self, ev: Evidence, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each item's reason anchor and its confidence (anchor -1: none); anchored kinds only."""
        raise NotImplementedError(f"{self.name} reasons have no anchor")
