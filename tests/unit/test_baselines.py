"""Baseline rankers: the shared contract once for all of them, then each one's known answers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from support.factories import make_shop, make_transactions

from training.baselines import (
    CoOccurrence,
    ItemKNN,
    PricierPopular,
    Ranker,
    Repurchase,
    ScoringRanker,
    default_rankers,
)
from training.context import TrainContext
from training.models.toplists import keep_top_per_row
from training.split import time_split
from training.tasks import TASKS, TaskQueries, build_tasks, cross_sell, next_basket

K = 5


# --- the contract, for every baseline and every task it answers -----------------------------

@pytest.fixture(scope="module")
def shop() -> tuple[TrainContext, dict]:
    tx, items, packages = make_shop()
    train, test, _ = time_split(tx, 30)
    ctx = TrainContext.build(train, items, packages)
    tasks = build_tasks(ctx, test)
    assert all(isinstance(t, TaskQueries) for t in tasks.values())  # the shop supports every task
    return ctx, tasks


@pytest.fixture(scope="module")
def fitted(shop: tuple[TrainContext, dict]) -> list[Ranker]:
    ctx, _ = shop
    return [ranker.fit(ctx) for ranker in default_rankers()]


def contract_cases() -> list[tuple[str, str]]:
    return [(r.name, t) for r in default_rankers() for t in TASKS if r.answers(t)]


@pytest.mark.parametrize(("ranker_name", "task"), contract_cases())
def test_every_list_obeys_the_task_rules(shop: tuple, fitted: list[Ranker], ranker_name: str, task: str) -> None:
    ctx, tasks = shop
    queries: TaskQueries = tasks[task]
    ranker = next(r for r in fitted if r.name == ranker_name)
    history_before = queries.history.copy()
    ranked = ranker.rank(queries, K)

    assert ranked.shape == (len(queries), K) and np.issubdtype(ranked.dtype, np.integer)
    assert ranked.min() >= -1 and ranked.max() < len(ctx.items)
    for row, items in enumerate(ranked):
        shown = items[items >= 0]
        assert len(set(shown.tolist())) == len(shown), "an item twice in one list"
        assert (items[len(shown):] == -1).all(), "padding only at the end"
        if queries.exclude is not None:
            assert not set(shown.tolist()) & set(queries.exclude[row].indices.tolist())
        if queries.candidates is not None:
            assert queries.candidates[shown].all()
    assert (queries.history != history_before).nnz == 0, "rank must not modify the queries"
    np.testing.assert_array_equal(ranked, ranker.rank(queries, K))


def test_baselines_implement_the_ranker_protocol() -> None:
    rankers = default_rankers()
    assert [r.name for r in rankers] == ["popularity", "repurchase", "item_knn", "cooccurrence", "pricier_popular",
                                         "ease", "sar", "tifu_knn"]
    assert all(isinstance(r, Ranker) for r in rankers)
    assert all(r.answers(t) for r in rankers if r.name in ("popularity", "item_knn", "cooccurrence") for t in TASKS)
    assert not Repurchase().answers("basket_completion")
    assert {t for t in TASKS if PricierPopular().answers(t)} == {"upsell", "upsell_price", "basket_completion"}


# --- known answers on tiny histories --------------------------------------------------------

TINY = [
    ("c1", "A", "2024-01-01"), ("c1", "B", "2024-01-02"), ("c1", "A", "2024-01-03"),
    ("c2", "A", "2024-01-01"), ("c2", "C", "2024-01-05"),
    ("c3", "A", "2024-01-02"), ("c3", "B", "2024-01-04"), ("c3", "D", "2024-01-06"),
    # test, from 2024-03-21
    ("c1", "C", "2024-03-25"), ("c2", "B", "2024-03-26"), ("c3", "C", "2024-03-31"),
]


def tiny(rows: list[tuple] = TINY, items: pd.DataFrame | None = None) -> tuple[TrainContext, pd.DataFrame]:
    train, test, _ = time_split(make_transactions(rows), 10)
    return TrainContext.build(train, items), test


def named(ctx: TrainContext, ranked: np.ndarray) -> list[list[str]]:
    return [[ctx.items.id_of(i) if i >= 0 else "-" for i in row] for row in ranked]


def by_client(ctx: TrainContext, queries: TaskQueries, ranked: np.ndarray) -> dict[str, list[str]]:
    return dict(zip((ctx.clients.id_of(c) for c in queries.clients), named(ctx, ranked), strict=True))


def test_popularity_counts_distinct_clients_and_skips_what_a_client_has() -> None:
    ctx, test = tiny()
    ranker = default_rankers()[0].fit(ctx)
    # A: 3 clients, B: 2 (c1 bought A twice: still one client), C and D: 1
    queries = next_basket(ctx, test)
    assert by_client(ctx, queries, ranker.rank(queries, 2)) == {"c1": ["A", "B"], "c2": ["A", "B"], "c3": ["A", "B"]}
    queries = cross_sell(ctx, test)
    assert by_client(ctx, queries, ranker.rank(queries, 2))["c2"] == ["B", "D"]


def test_repurchase_ranks_own_items_by_frequency_then_recency_then_pads_with_popularity() -> None:
    ctx, test = tiny()
    ranker = Repurchase().fit(ctx)
    queries = next_basket(ctx, test)
    lists = by_client(ctx, queries, ranker.rank(queries, 4))
    assert lists["c1"][:2] == ["A", "B"]  # A twice, B once
    assert lists["c3"] == ["D", "B", "A", "C"]  # one order each: the latest first, then popularity
    # cross_sell excludes what c3 has, so only C is left in the catalogue
    queries = cross_sell(ctx, test)
    assert by_client(ctx, queries, ranker.rank(queries, 2))["c3"] == ["C", "-"]


def cart(ctx: TrainContext, *items: str, hidden: str) -> TaskQueries:
    codes = ctx.items.index_of(list(items))
    history = sp.csr_matrix((np.ones(len(codes)), (np.zeros(len(codes), dtype=int), codes)),
                            shape=(1, len(ctx.items)))
    return TaskQueries(task="basket_completion", kind="basket", metric="hr", clients=np.array([0]),
                       history=history, relevant=[ctx.items.index_of([hidden])], exclude=history)


@pytest.mark.parametrize("ranker", [CoOccurrence(), ItemKNN()], ids=["cooccurrence", "item_knn"])
def test_cart_of_chips_is_completed_with_salsa(shop: tuple, ranker: ScoringRanker) -> None:
    ctx, _ = shop
    ranked = ranker.fit(ctx).rank(cart(ctx, "chips", hidden="salsa"), 3)
    assert named(ctx, ranked)[0][0] == "salsa"


def test_cooccurrence_sums_confidence_rows_of_the_cart() -> None:
    rows = [("a", "x", "2024-01-01", "o1"), ("a", "y", "2024-01-01", "o1"),
            ("b", "x", "2024-01-02", "o2"), ("b", "z", "2024-01-02", "o2"),
            ("c", "x", "2024-01-03", "o3"), ("c", "z", "2024-01-03", "o3"),
            ("c", "w", "2024-03-31")]
    ctx, _ = tiny(rows)
    ranker = CoOccurrence().fit(ctx)
    scores = ranker.score(cart(ctx, "x", hidden="z"), slice(0, 1))[0]
    # P(y | x) = 1/3, P(z | x) = 2/3
    assert scores[ctx.items.get("z")] == pytest.approx(2 / 3)
    assert scores[ctx.items.get("y")] == pytest.approx(1 / 3)
    assert named(ctx, ranker.rank(cart(ctx, "x", hidden="z"), 2)) == [["z", "y"]]


def test_item_knn_scores_are_implicits_own(shop: tuple) -> None:
    ctx, tasks = shop
    ranker = ItemKNN().fit(ctx)
    queries: TaskQueries = tasks["next_basket"]
    ours = ranker.score(queries, slice(0, len(queries)))
    user_items = sp.csr_matrix(ranker.confidence[queries.clients])
    ids, scores = ranker.model.recommend(np.arange(len(queries)), user_items, N=K,
                                         filter_already_liked_items=False)
    np.testing.assert_allclose(np.take_along_axis(ours, ids, axis=1), scores, rtol=1e-5)
    ranked = ranker.rank(queries, K)
    np.testing.assert_allclose(np.take_along_axis(ours, ranked, axis=1), scores, rtol=1e-5)


COFFEE = pd.DataFrame({
    "item_id": ["cheap", "coffee", "plus", "top", "milk"],
    "subcategory": ["coffee", "coffee", "coffee", "coffee", "dairy"],
    "price": [2.0, 3.0, 5.0, 8.0, 1.0],
})
COFFEE_ROWS = [
    ("u", "coffee", "2024-01-01"), ("u", "milk", "2024-01-01"),
    ("v", "plus", "2024-01-02"), ("w", "plus", "2024-01-03"), ("w", "top", "2024-01-03"),
    ("x", "cheap", "2024-01-04"), ("x", "milk", "2024-01-04"), ("v", "milk", "2024-01-05"),
    ("u", "plus", "2024-03-31"),
]


def test_pricier_popular_offers_dearer_items_of_the_clients_subcategories() -> None:
    ctx, test = tiny(COFFEE_ROWS, COFFEE)
    ranker = PricierPopular().fit(ctx)
    u = ctx.clients.get("u")
    queries = TaskQueries(task="upsell", kind="client", metric="hr", clients=np.array([u]),
                          history=sp.csr_matrix(ctx.purchases[[u]]), relevant=[ctx.items.index_of(["plus"])])
    # plus (2 clients) before top (1); milk is popular but no step up, so it only fills the list
    assert named(ctx, ranker.rank(queries, 3)) == [["plus", "top", "milk"]]
    assert named(ctx, ranker.rank(cart(ctx, "coffee", hidden="plus"), 2)) == [["plus", "top"]]
    assert named(ctx, ranker.rank(cart(ctx, "top", hidden="plus"), 1)) == [["milk"]]  # nothing dearer


def test_pricier_popular_does_not_answer_without_prices() -> None:
    ctx, _ = tiny(COFFEE_ROWS)
    assert not PricierPopular().fit(ctx).answers("upsell")


def test_keep_top_per_row() -> None:
    matrix = sp.csr_matrix(np.array([[0.1, 0.5, 0.3], [1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(keep_top_per_row(matrix, 2).toarray(), [[0.0, 0.5, 0.3], [1.0, 0.0, 0.0]])
