"""The published baselines (EASE, SAR) on matrices whose right answer is known, and the
repurchase baseline's popularity tie-break."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp
from support.factories import make_transactions

from training.baselines import Repurchase, ScoringRanker
from training.context import TrainContext
from training.ease import MAX_ITEMS, Ease, ease_weights
from training.sar import Sar, SarSetting, decayed_affinity, item_similarity
from training.tasks import TaskQueries


def checkerboard() -> TrainContext:
    """Two groups of five clients buying two disjoint groups of four items; client a0 never
    bought a4, client b0 never bought b4 (the held-out item of each group)."""
    rows = []
    for group in ("a", "b"):
        for c in range(5):
            for i in range(1, 5):
                if c == 0 and i == 4:
                    continue
                rows.append((f"{group}{c}", f"{group}{i}", f"2024-01-{1 + c + i:02d}"))
    return TrainContext.build(make_transactions(rows))


def client_queries(ctx: TrainContext, clients: list[str], relevant: list[str]) -> TaskQueries:
    """A cross_sell-like task: each client's training row as history, their own items excluded."""
    codes = ctx.clients.index_of(clients)
    history = sp.csr_matrix(ctx.purchases[codes])
    return TaskQueries(task="cross_sell", kind="client", metric="ndcg", clients=codes, history=history,
                       relevant=[ctx.items.index_of([item]) for item in relevant], exclude=history)


def named(ctx: TrainContext, ranked: np.ndarray) -> list[list[str]]:
    return [[ctx.items.id_of(i) if i >= 0 else "-" for i in row] for row in ranked]


@pytest.mark.parametrize("ranker", [Ease(), Ease(l2=1.0), Sar(), Sar(SarSetting("jaccard", 30.0)),
                                    Sar(SarSetting("lift", None))],
                         ids=["ease-chosen", "ease-l2-1", "sar-chosen", "sar-jaccard", "sar-lift"])
def test_the_held_out_item_of_each_group_ranks_first(ranker: ScoringRanker) -> None:
    ctx = checkerboard()
    queries = client_queries(ctx, ["a0", "b0"], ["a4", "b4"])
    ranked = ranker.fit(ctx).rank(queries, 3)
    assert ranked.shape == (2, 3)
    lists = named(ctx, ranked)
    assert lists[0][0] == "a4" and lists[1][0] == "b4"
    for row, items in enumerate(ranked):  # their own items are excluded: only the other group fills
        assert not set(items.tolist()) & set(queries.exclude[row].indices.tolist())
    assert set(lists[0][1:]) <= {"b1", "b2", "b3", "b4"}


@pytest.mark.parametrize("ranker", [Ease(), Sar()], ids=["ease", "sar"])
def test_a_cart_is_completed_from_its_own_group(ranker: ScoringRanker) -> None:
    ctx = checkerboard()
    codes = ctx.items.index_of(["b1", "b2"])
    cart = sp.csr_matrix((np.ones(2), ([0, 0], codes)), shape=(1, len(ctx.items)))
    queries = TaskQueries(task="basket_completion", kind="basket", metric="hr", clients=np.array([0]),
                          history=cart, relevant=[ctx.items.index_of(["b3"])], exclude=cart)
    lists = named(ctx, ranker.fit(ctx).rank(queries, 2))
    assert set(lists[0]) == {"b3", "b4"}


def test_ease_weights_are_the_closed_form_with_a_zero_diagonal() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((40, 12)) < 0.3).astype(np.float64)
    precision = np.linalg.inv(x.T @ x + 5.0 * np.eye(12))
    expected = np.eye(12) - precision / np.diag(precision)[np.newaxis, :]
    weights = ease_weights(sp.csr_matrix(x), 5.0)
    assert weights.dtype == np.float32 and weights.shape == (12, 12)
    np.testing.assert_allclose(np.diag(weights), 0.0)
    np.testing.assert_allclose(weights, expected, atol=1e-5)


def test_ease_models_only_the_most_bought_items_and_never_returns_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    assert 1_000 <= MAX_ITEMS <= 10_000  # float32 B stays well under 1 GB
    rows = [(f"c{c}", item, "2024-01-01") for c in range(6) for item in ("p", "q")]
    rows += [(f"c{c}", "r", "2024-01-02") for c in range(4)] + [("c0", "s", "2024-01-03")]
    ctx = TrainContext.build(make_transactions(rows))  # popularity: p = q = 6 > r = 4 > s = 1
    with caplog.at_level(logging.INFO, logger="training.ease"):
        ranker = Ease(max_items=2).fit(ctx)
    assert "cut-off: the 2 most-bought" in caplog.text
    assert sorted(ctx.items.id_of(i) for i in ranker.modelled) == ["p", "q"]
    queries = client_queries(ctx, ["c5"], ["r"])
    queries = TaskQueries(task="next_basket", kind="client", metric="ndcg", clients=queries.clients,
                          history=queries.history, relevant=queries.relevant)
    ranked = named(ctx, ranker.rank(queries, 4))[0]
    assert sorted(ranked[:2]) == ["p", "q"] and ranked[2:] == ["-", "-"]  # r and s lie past the cut-off


def test_sar_similarities_are_jaccard_and_lift_of_client_cooccurrence() -> None:
    # 3 clients x 3 items: c_00 = 2, c_11 = 2, c_22 = 1, c_01 = 1, c_12 = 1, c_02 = 0
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1]], dtype=np.float32))
    jaccard = item_similarity(x, "jaccard").toarray()
    np.testing.assert_allclose(jaccard, [[1, 1 / 3, 0], [1 / 3, 1, 1 / 2], [0, 1 / 2, 1]], rtol=1e-6)
    lift = item_similarity(x, "lift").toarray()
    np.testing.assert_allclose(lift, [[1 / 2, 1 / 4, 0], [1 / 4, 1 / 2, 1 / 2], [0, 1 / 2, 1]], rtol=1e-6)
    # the cut keeps an item's similarity to itself and its strongest other
    np.testing.assert_allclose(item_similarity(x, "jaccard", neighbours=2).toarray()[1], [0, 1, 1 / 2], rtol=1e-6)
    with pytest.raises(ValueError):
        SarSetting("cosine", 30.0)


def test_sar_affinity_halves_every_thirty_days() -> None:
    ctx = TrainContext.build(make_transactions([
        ("c", "old", "2024-01-01"), ("c", "new", "2024-01-31"), ("c", "new", "2024-01-01"),
    ]))
    affinity = decayed_affinity(ctx)
    c = ctx.clients.index_of(["c"])[0]
    old, new = ctx.items.index_of(["old", "new"])
    assert affinity[c, old] == pytest.approx(0.5)
    assert affinity[c, new] == pytest.approx(1.5)  # two purchase occasions, today and 30 days ago
    undecayed = decayed_affinity(ctx, None)  # SAR with its time decay off: occasions counted
    assert undecayed[c, old] == 1.0 and undecayed[c, new] == 2.0


def test_repurchase_breaks_a_single_orders_ties_by_popularity() -> None:
    # w bought everything in one order: counts and recency all tie. z is bought by 3 clients,
    # y by 2, x and v by w alone (a full tie: the lower index first).
    rows = [("w", item, "2024-02-01", "big") for item in ("v", "x", "y", "z")]
    rows += [("o1", "z", "2024-01-05"), ("o2", "z", "2024-01-06"), ("o1", "y", "2024-01-07")]
    ctx = TrainContext.build(make_transactions(rows))
    queries = client_queries(ctx, ["w"], ["z"])
    queries = TaskQueries(task="next_basket", kind="client", metric="ndcg", clients=queries.clients,
                          history=queries.history, relevant=queries.relevant)
    ranked = named(ctx, Repurchase().fit(ctx).rank(queries, 4))[0]
    assert ranked[:2] == ["z", "y"]
    v, x = ctx.items.index_of(["v", "x"])
    assert ranked[2:] == (["v", "x"] if v < x else ["x", "v"])


def test_repurchase_still_puts_count_before_recency_before_popularity() -> None:
    rows = [("w", "often", "2024-01-01"), ("w", "often", "2024-01-10"), ("w", "late", "2024-02-01"),
            ("w", "early", "2024-01-20")]
    rows += [(f"o{c}", "early", "2024-01-02") for c in range(5)]  # the most popular, yet bought earliest
    ctx = TrainContext.build(make_transactions(rows))
    queries = client_queries(ctx, ["w"], ["often"])
    queries = TaskQueries(task="next_basket", kind="client", metric="ndcg", clients=queries.clients,
                          history=queries.history, relevant=queries.relevant)
    assert named(ctx, Repurchase().fit(ctx).rank(queries, 3))[0] == ["often", "late", "early"]
