"""TIFU-KNN (Hu et al., SIGIR 2020): the published next-basket method our next_basket figures face.

"Modeling Personalized Item Frequency Information for Next-basket Recommendation" shows that a
time-decayed personal item frequency, smoothed with the same vector of the nearest clients, beats
the neural next-basket models. It is here as a baseline, so the model is measured against the
strongest published method of its kind and not only against our own.

A client's history is their baskets (orders, binary item vectors) in time order. They are split
into `groups` consecutive groups of near-equal size (the larger ones the most recent, as the
authors' code does; a client with fewer baskets than groups has one basket per group). Inside a
group of m baskets, basket j (1 = oldest) weighs r_b^(m - j) and the group vector is their mean;
the client vector u is the mean of the G groups, group i weighing r_g^(G - i). The `neighbours`
clients nearest by Euclidean distance on u (the client itself excluded) give their mean vector v;
an item scores alpha * u + (1 - alpha) * v.

Two choices where the paper and the authors' code differ, both the paper's: the within-group
decay counts from the end of each group (the code counts from the end of the whole history), and
a client with fewer baskets than groups weighs its G' groups r_g^(G' - i) (the code keeps G).

Both published parameter sets are tried on the inner split of the training part
(`training.baseline_tuning`) and the better one on its next_basket NDCG@10 is kept
(`TifuKNN.chosen` says which, the log and the evaluation JSON's `settings` too).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.schema import ORDER, TIMESTAMP
from training.baseline_tuning import DEFAULT_SPLIT, Choice, InnerSplit, TunedOnInner, choose_on_inner
from training.context import TrainContext, csr
from training.ranker import ScoringRanker
from training.tasks import TaskQueries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TifuParams:
    """One TIFU-KNN setting: neighbours k, within-group decay r_b, group decay r_g, alpha, groups."""

    name: str
    neighbours: int
    within_decay: float
    group_decay: float
    alpha: float
    groups: int


#: The two settings the paper publishes, by the data set they were tuned on.
DUNNHUMBY = TifuParams("dunnhumby", neighbours=900, within_decay=0.9, group_decay=0.6, alpha=0.2, groups=3)
TAFENG = TifuParams("tafeng", neighbours=300, within_decay=0.9, group_decay=0.7, alpha=0.7, groups=7)
PUBLISHED = (DUNNHUMBY, TAFENG)


def basket_weights(position: np.ndarray, n_baskets: np.ndarray, within_decay: float, group_decay: float,
                   groups: int) -> np.ndarray:
    """Weight in u of each basket, from its position (0 = oldest) among its client's n baskets.

    Pure arithmetic on arrays, so every client's baskets are weighed at once.
    """
    position = np.asarray(position, dtype=np.int64)
    n = np.asarray(n_baskets, dtype=np.int64)
    n_groups = np.minimum(n, groups)
    base, extra = n // n_groups, n % n_groups
    boundary = (n_groups - extra) * base  # the first n_groups - extra groups hold `base` baskets
    early = position < boundary
    late_offset = np.maximum(position - boundary, 0)
    group = np.where(early, position // np.maximum(base, 1), n_groups - extra + late_offset // (base + 1))
    size = np.where(early, base, base + 1)
    in_group = np.where(early, position % np.maximum(base, 1), late_offset % (base + 1))
    within = np.power(within_decay, size - 1 - in_group) / size
    return within * np.power(group_decay, n_groups - 1 - group) / n_groups


def client_vectors(ctx: TrainContext, params: TifuParams) -> sp.csr_matrix:
    """clients x items: each client's time-decayed item frequency u (float64)."""
    tx = ctx.transactions
    keep = ctx.positive
    lines = pd.DataFrame({
        "client": ctx.line_client[keep],
        "item": ctx.line_item[keep],
        "order": pd.factorize(tx[ORDER].to_numpy()[keep])[0],
        "when": tx[TIMESTAMP].to_numpy()[keep],
    })
    if lines.empty:
        return sp.csr_matrix((len(ctx.clients), len(ctx.items)), dtype=np.float64)
    # An order belongs to one client; its time is its first line's, ties kept in order-id order.
    baskets = lines.groupby(["client", "order"], sort=False)["when"].min().reset_index()
    baskets = baskets.sort_values(["client", "when", "order"], kind="stable").reset_index(drop=True)
    baskets["position"] = baskets.groupby("client").cumcount()
    baskets["n"] = baskets.groupby("client")["order"].transform("size")
    baskets["weight"] = basket_weights(baskets["position"].to_numpy(), baskets["n"].to_numpy(),
                                       params.within_decay, params.group_decay, params.groups)
    # binary basket vectors: an item on several lines of one order counts once
    cells = lines.drop_duplicates(["order", "item"]).merge(baskets[["order", "weight"]], on="order")
    return csr(cells["client"].to_numpy(), cells["item"].to_numpy(), cells["weight"].to_numpy(),
               len(ctx.clients), len(ctx.items))


def nearest_clients(vectors: sp.csr_matrix, neighbours: int) -> np.ndarray:
    """clients x min(neighbours, clients - 1): the nearest other clients by Euclidean distance,
    nearest first, ties to the lower index. One dense clients x clients matrix (2.5k² is 50 MB)."""
    n = vectors.shape[0]
    k = min(neighbours, n - 1)
    if k < 1:
        return np.zeros((n, 0), dtype=np.int64)
    gram = (vectors @ vectors.T).toarray()
    norms = np.diag(gram).copy()
    distance = np.maximum(norms[:, None] + norms[None, :] - 2.0 * gram, 0.0)
    np.fill_diagonal(distance, np.inf)
    return np.argsort(distance, axis=1, kind="stable")[:, :k]


class TifuKNN(TunedOnInner[TifuParams], ScoringRanker):
    """TIFU-KNN scores (see the module docstring); `params=None` picks one of `candidates`
    (`PUBLISHED`) on the inner split by next_basket NDCG@10. Answers next_basket, what it was made
    for, and cross_sell, where the client's own items are excluded and what remains is the
    neighbours' part: a user-KNN over decayed baskets."""

    name = "tifu_knn"
    tasks: ClassVar[frozenset[str]] = frozenset({"next_basket", "cross_sell"})

    def __init__(self, params: TifuParams | None = None, candidates: tuple[TifuParams, ...] = PUBLISHED,
                 split: InnerSplit = DEFAULT_SPLIT) -> None:
        self.params = params
        self.candidates = candidates
        self.split = split

    def with_setting(self, setting: TifuParams) -> TifuKNN:
        return TifuKNN(setting, split=self.split)

    def describe_setting(self, setting: TifuParams) -> dict[str, Any]:
        return asdict(setting)

    @property
    def chosen(self) -> TifuParams:
        return self.choice.chosen

    @property
    def inner(self) -> dict[str, float]:
        """Inner next_basket NDCG@10 of each candidate, by name ({} when nothing was chosen)."""
        return self.choice.inner

    def _fit(self, ctx: TrainContext) -> None:
        self.choice = Choice(self.params) if self.params is not None else choose_on_inner(
            ctx, self.candidates, lambda p: p.name, self._candidates, "next_basket", "tifu_knn", self.split)
        self.vectors = client_vectors(ctx, self.chosen)
        self._vectors_t = sp.csr_matrix(self.vectors.T)
        self.neighbours = nearest_clients(self.vectors, self.chosen.neighbours)
        log.debug("tifu_knn: %s, %d clients x %d neighbours", self.chosen, *self.neighbours.shape)

    def _candidates(self, inner: TrainContext) -> Iterator[tuple[TifuParams, TifuKNN]]:
        for params in self.candidates:
            yield params, TifuKNN(params).fit(inner)

    def score(self, queries: TaskQueries, rows: slice) -> np.ndarray:
        clients = queries.clients[rows]
        alpha = self.chosen.alpha
        own = self.vectors[clients].toarray()
        k = self.neighbours.shape[1]
        if k == 0:
            return own
        # rows x clients dense weights, then sparse.T @ dense: a dense product, no sparse fill-in
        mix = np.zeros((len(clients), self.vectors.shape[0]))
        mix[np.arange(len(clients))[:, None], self.neighbours[clients]] = 1.0 / k
        return alpha * own + (1.0 - alpha) * (self._vectors_t @ mix.T).T
