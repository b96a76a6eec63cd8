"""TIFU-KNN: the decayed client vectors on hand-computed histories, the neighbour search, the
alpha trade-off, and the shared ranking rules (shapes, exclusion)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from support.factories import make_shop, make_transactions

from training.context import TrainContext
from training.split import time_split
from training.tasks import TaskQueries, next_basket
from training.tifu_knn import (
    PUBLISHED,
    TifuKNN,
    TifuParams,
    basket_weights,
    client_vectors,
    nearest_clients,
)

#: Halving decays make every weight a short binary fraction: the expected values are exact.
HALVES = TifuParams("halves", neighbours=5, within_decay=0.5, group_decay=0.5, alpha=1.0, groups=2)


def two_clients() -> TrainContext:
    """a: three baskets {x}, {x, y}, {z} (x twice in the middle order); b: one basket {x, w}."""
    return TrainContext.build(make_transactions([
        ("a", "x", "2024-01-01"),
        ("a", "x", "2024-01-02"), ("a", "x", "2024-01-02"), ("a", "y", "2024-01-02"),
        ("a", "z", "2024-01-03"),
        ("b", "x", "2024-01-01"), ("b", "w", "2024-01-01"),
    ]))


def vector_of(ctx: TrainContext, vectors: sp.csr_matrix, client: str) -> dict[str, float]:
    row = vectors[ctx.clients.index_of(np.array([client]))[0]]
    return {str(ctx.items.ids[i]): float(v) for i, v in zip(row.indices, row.data, strict=True)}


def client_queries(ctx: TrainContext, clients: list[str], exclude: bool = False) -> TaskQueries:
    rows = ctx.clients.index_of(np.array(clients))
    history = sp.csr_matrix(ctx.purchases[rows])
    return TaskQueries(task="next_basket", kind="client", metric="ndcg", clients=rows, history=history,
                       relevant=[np.array([0])] * len(rows), exclude=history if exclude else None)


def named(ctx: TrainContext, ranked: np.ndarray) -> list[str]:
    return [str(ctx.items.ids[i]) for i in ranked if i >= 0]


def test_basket_weights_split_into_groups_from_the_recent_end() -> None:
    # 3 baskets in 2 groups: [b0] then [b1, b2] (the larger group is the recent one)
    # b0: 1/1 * 0.5^1 / 2 = 0.25; b1: 0.5^1/2 * 0.5^0/2 = 0.125; b2: 1/2 * 1/2 = 0.25
    np.testing.assert_array_equal(basket_weights(np.arange(3), np.full(3, 3), 0.5, 0.5, 2), [0.25, 0.125, 0.25])
    # 4 baskets in 2 groups of 2; 1 basket alone is one group of weight 1
    np.testing.assert_array_equal(basket_weights(np.arange(4), np.full(4, 4), 0.5, 0.5, 2),
                                  [0.0625, 0.125, 0.125, 0.25])
    np.testing.assert_array_equal(basket_weights(np.array([0]), np.array([1]), 0.9, 0.6, 3), [1.0])


def test_client_vectors_on_a_hand_computed_history() -> None:
    ctx = two_clients()
    vectors = client_vectors(ctx, HALVES)
    # a: x in b0 (0.25) and b1 (0.125, once though on two lines), y in b1, z in b2
    assert vector_of(ctx, vectors, "a") == {"x": 0.375, "y": 0.125, "z": 0.25}
    assert vector_of(ctx, vectors, "b") == {"x": 1.0, "w": 1.0}


def test_nearest_clients_by_euclidean_distance_without_oneself() -> None:
    vectors = sp.csr_matrix(np.array([[1.0, 0.0], [0.9, 0.0], [0.0, 3.0], [1.0, 0.0]]))
    neighbours = nearest_clients(vectors, 2)
    # 0 and 3 are identical; 1 is 0.1 away from both; 2 is far from all (ties to the lower index)
    np.testing.assert_array_equal(neighbours, [[3, 1], [0, 3], [1, 0], [0, 1]])
    assert nearest_clients(vectors, 10).shape == (4, 3)


def test_alpha_one_ranks_the_clients_own_frequencies() -> None:
    ctx = two_clients()
    ranked = TifuKNN(HALVES).fit(ctx).rank(client_queries(ctx, ["a"]), 3)
    assert named(ctx, ranked[0]) == ["x", "z", "y"]


def test_neighbours_bring_in_an_item_the_client_never_bought() -> None:
    ctx = two_clients()
    ranker = TifuKNN(TifuParams("half", neighbours=1, within_decay=0.5, group_decay=0.5, alpha=0.5, groups=2))
    queries = client_queries(ctx, ["a"])
    scores = ranker.fit(ctx).score(queries, slice(0, 1))[0]
    w, x, z = ctx.items.index_of(np.array(["w", "x", "z"]))
    assert scores[x] == pytest.approx(0.5 * 0.375 + 0.5 * 1.0)
    assert scores[w] == pytest.approx(0.5)  # only b bought w: a's one neighbour
    assert scores[z] == pytest.approx(0.125)
    assert named(ctx, ranker.rank(queries, 4)[0]) == ["x", "w", "z", "y"]


def test_lists_are_k_long_and_skip_excluded_items() -> None:
    ctx = two_clients()
    ranker = TifuKNN(TifuParams("half", neighbours=1, within_decay=0.5, group_decay=0.5, alpha=0.5, groups=2))
    ranked = ranker.fit(ctx).rank(client_queries(ctx, ["a", "b"], exclude=True), 2)
    assert ranked.shape == (2, 2)
    assert named(ctx, ranked[0]) == ["w"] and (ranked[0, 1:] == -1).all()  # a bought all else
    assert set(named(ctx, ranked[1])) == {"y", "z"}  # b's own items excluded; a's fill the list


def test_the_better_published_setting_is_chosen_on_the_inner_split() -> None:
    tx, items, packages = make_shop()
    train, test, _ = time_split(tx, 30)
    ctx = TrainContext.build(train, items, packages)
    ranker = TifuKNN().fit(ctx)
    assert ranker.chosen in PUBLISHED
    assert set(ranker.inner) == {p.name for p in PUBLISHED}
    assert ranker.inner[ranker.chosen.name] == max(ranker.inner.values())
    task = next_basket(ctx, test)
    assert ranker.rank(task, 5).shape == (len(task), 5)
