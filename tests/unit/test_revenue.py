"""The evaluation's money figures (training/revenue.py): expected from probability x price,
realised from what each client spent in the test window on what they were offered."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from support.factories import make_transactions

from scoring import objective
from training.context import TrainContext
from training.revenue import revenue_metrics, spent_in_window
from training.tasks import TaskQueries


def queries(clients: list[int], n_items: int) -> TaskQueries:
    return TaskQueries(task="cross_sell", kind="client", metric="ndcg", clients=np.array(clients),
                       history=sp.csr_matrix((len(clients), n_items)), relevant=[np.array([0])] * len(clients))


def test_realised_revenue_is_what_the_client_spent_on_the_suggested_items() -> None:
    spend = sp.csr_matrix(np.array([[5.0, 0.0, 2.0], [0.0, 7.0, 0.0]]))
    price = np.array([1.0, 2.0, np.nan])
    ranked = np.array([[0, 1, 2], [0, 2, -1]])
    got = revenue_metrics(ranked, queries([0, 1], 3), spend, price, k=3,
                          probabilities=np.array([[0.5, 0.1, 0.9], [0.2, 0.3, np.nan]]))
    # client 0 spent 5 + 2 on items 0 and 2; client 1 spent nothing on 0 or 2 (7 on item 1, not offered)
    assert got["revenue_realised@3"] == pytest.approx((7.0 + 0.0) / 2)
    # expected: 0.5 x 1 + 0.1 x 2 (item 2 has no price) ; 0.2 x 1
    assert got["revenue_expected@3"] == pytest.approx((0.7 + 0.2) / 2)
    assert got["probability_source"] == "model"


def test_a_ranker_without_probabilities_gets_the_uncalibrated_rank_mapping() -> None:
    spend = sp.csr_matrix((1, 2))
    got = revenue_metrics(np.array([[1, 0]]), queries([0], 2), spend, np.array([10.0, 4.0]), k=2)
    p = objective.rank_probability(2, objective.UNMEASURED_RATE)
    assert got["revenue_expected@2"] == pytest.approx(p[0] * 4.0 + p[1] * 10.0)
    assert got["revenue_realised@2"] == 0.0 and got["probability_source"] == "rank-unmeasured"


def test_basket_tasks_have_no_client_spend() -> None:
    basket = TaskQueries(task="basket_completion", kind="basket", metric="hr", clients=np.array([0]),
                         history=sp.csr_matrix((1, 1)), relevant=[np.array([0])])
    with pytest.raises(ValueError):
        revenue_metrics(np.array([[0]]), basket, sp.csr_matrix((1, 1)), np.array([1.0]), k=1)


def test_test_spend_uses_the_line_price_or_else_the_typical_one() -> None:
    train = make_transactions([("a", "x", "2024-01-01", None, 1.0, 2.0), ("b", "y", "2024-01-02", None, 1.0, 3.0)])
    ctx = TrainContext.build(train, None, None)
    test = make_transactions([("a", "x", "2024-02-01", None, 3.0, 2.5),       # 7.5
                              ("a", "y", "2024-02-02", None, 2.0, np.nan),    # 2 x typical 3.0
                              ("a", "x", "2024-02-03", None, -1.0, 2.5),      # a return: no spend
                              ("stranger", "x", "2024-02-03", None, 1.0, 2.5)])
    spend = spent_in_window(ctx, test).toarray()
    a, x, y = ctx.clients.index_of(pd.Series(["a"]))[0], *ctx.items.index_of(pd.Series(["x", "y"]))
    assert spend[a, x] == pytest.approx(7.5) and spend[a, y] == pytest.approx(6.0)
    assert spend.sum() == pytest.approx(13.5)
