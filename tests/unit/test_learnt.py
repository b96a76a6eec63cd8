"""Learnt rankings (replenishment, cross-sell re-ranking): the fit, and the rules they keep."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from support.cross_sell_rules import assert_reranked_cross_sell_keeps_the_rules
from support.factories import SHOP_CONFIG

from scoring import learnt
from scoring.recommender import Recommender
from training.candidates import precompute
from training.models.learnt import as_weights, fit_logistic

CONFIG = SHOP_CONFIG



def with_weights(model: Recommender, weights: dict[str, float]) -> Recommender:
    other = copy.copy(model)
    other.weights = {**model.weights, **weights}
    return other


def test_logistic_fit_recovers_the_signal() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 3))
    y = (rng.random(20_000) < 1 / (1 + np.exp(-(2.0 * x[:, 0] - 1.0 * x[:, 1] - 0.5)))).astype(float)
    intercept, coef = fit_logistic(x, y, l2=0.0)
    assert coef == pytest.approx([2.0, -1.0, 0.0], abs=0.1)
    assert intercept == pytest.approx(-0.5, abs=0.1)
    weights = as_weights("p.", ("a", "b", "c"), intercept, coef)
    assert set(weights) == {"p.intercept", "p.a", "p.b", "p.c"}
    assert learnt.coefficients(weights, "p.", ("a", "b", "c"))[1] == pytest.approx(coef)


def test_no_coefficients_means_the_hand_blend(model) -> None:
    assert learnt.coefficients(model.weights, learnt.REPLENISH_PREFIX, learnt.REPLENISH_FEATURES) is None
    assert learnt.coefficients(model.weights, learnt.CROSS_SELL_PREFIX, learnt.CROSS_SELL_FEATURES) is None


def test_learnt_replenishment_orders_by_its_coefficients(model) -> None:
    by_count = as_weights(learnt.REPLENISH_PREFIX, learnt.REPLENISH_FEATURES, -1.0,
                          np.eye(len(learnt.REPLENISH_FEATURES))[learnt.REPLENISH_FEATURES.index("log_count")])
    learnt_model = with_weights(model, by_count)
    got = learnt_model.suggest("due", "replenishment", 5)
    counts = [learnt_model.state.hist_count[learnt_model.state.hist_indptr[learnt_model._client_pos["due"]]
                                            + np.searchsorted(learnt_model._history(learnt_model._client_pos["due"])[0],
                                                              learnt_model._item_pos[s["item_id"]])] for s in got]
    assert len(got) > 1 and counts == sorted(counts, reverse=True)
    assert all(0.0 < s["score"] < 1.0 for s in got), "the score is a probability"
    milk = {s["item_id"]: s for s in got}.get("milk")
    assert milk is not None, [s["item_id"] for s in got]
    assert milk["due"] is True and milk["reason"].startswith("due: usually every 7 days")


@pytest.fixture(scope="module")
def learnt_cross_sell(model) -> Recommender:
    coef = np.zeros(len(learnt.CROSS_SELL_FEATURES))
    coef[learnt.CROSS_SELL_FEATURES.index("log_item_pop")] = -1.0  # the opposite of the blend's order
    coef[learnt.CROSS_SELL_FEATURES.index("subcat_share")] = 2.0
    return with_weights(model, as_weights(learnt.CROSS_SELL_PREFIX, learnt.CROSS_SELL_FEATURES, 0.0, coef))


def test_learnt_cross_sell_keeps_the_rules(learnt_cross_sell, shop) -> None:
    tx, _, _ = shop
    assert_reranked_cross_sell_keeps_the_rules(learnt_cross_sell, tx, "the learnt chance")
    first = learnt_cross_sell.suggest("c59", "cross_sell", 3)[0]["item_id"]
    assert first not in [s["item_id"] for s in learnt_cross_sell.suggest("c59", "cross_sell", 3,
                                                                         recent_purchases=[first])]


def test_learnt_cross_sell_candidates_equal_the_exact_answers(learnt_cross_sell) -> None:
    served = copy.deepcopy(learnt_cross_sell)
    precompute(served, size=20)
    exact = served.without_candidates()
    for client in served.client_ids[:40]:
        answer = exact.suggest(str(client), "cross_sell", 10)
        assert answer, client
        assert served.suggest(str(client), "cross_sell", 10) == answer
