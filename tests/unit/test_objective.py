"""The business objective (scoring/objective.py): expected value orders, unpriced items follow,
margins are refused where a model has none, and the model answers by it."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest

from scoring import objective
from scoring.contract import ObjectiveUnavailable
from scoring.recommender import Recommender
from scoring.state import ModelState


def suggestion(item: str, score: float, price: float | None, **extra: object) -> dict:
    return {"item_id": item, "name": item, "kind": "cross_sell", "score": score, "price": price, "reason": "r", **extra}


# ---- the maths ----

def test_revenue_orders_by_probability_times_price() -> None:
    p = np.array([0.5, 0.25, 0.1])
    price = np.array([1.0, 4.0, 5.0])  # expected 0.5, 1.0, 0.5
    assert objective.value_order(p, price).tolist() == [1, 0, 2]  # the tie keeps the relevance order


def test_items_without_a_positive_price_follow_the_priced_in_relevance_order() -> None:
    p = np.array([0.9, 0.8, 0.01, 0.7, 0.6])
    price = np.array([np.nan, 0.0, 1.0, -2.0, 3.0])
    order = objective.value_order(p, price).tolist()
    assert order == [4, 2, 0, 1, 3]  # 1.8 then 0.01, then the three unpriced as they were ranked


def test_a_place_without_a_probability_has_no_expected_value() -> None:
    assert objective.value_order(np.array([np.nan, 0.1]), np.array([100.0, 1.0])).tolist() == [1, 0]


def test_unknown_objective_and_margin_without_margins_are_value_errors() -> None:
    objective.check("revenue", has_margins=False)
    objective.check("margin", has_margins=True)
    with pytest.raises(ValueError, match="unknown objective"):
        objective.check("profit", has_margins=True)
    with pytest.raises(ObjectiveUnavailable, match="margin") as caught:
        objective.check("margin", has_margins=False)
    assert isinstance(caught.value, ValueError)  # what the contract promises: the service maps it to a 4xx


def test_rank_probability_falls_as_one_over_rank_and_the_rate_is_fitted_to_the_hits_seen() -> None:
    assert np.allclose(objective.rank_probability(4, 0.2), [0.2, 0.1, 0.2 / 3, 0.05])
    hits = np.zeros((4, 3), dtype=bool)
    hits[0, 0] = hits[1, 2] = True  # two hits in four lists of three
    rate = objective.measured_rate(hits)
    assert math.isclose(rate * (1 + 1 / 2 + 1 / 3), 2 / 4)  # expected hits per list = hits seen per list
    with pytest.raises(ValueError):
        objective.measured_rate(np.zeros((0, 3), dtype=bool))


def test_learnt_scores_are_probabilities_and_the_fill_in_below_them_has_none() -> None:
    p, sources = objective.probabilities(np.array([0.3, 0.2, -1.5]), objective.LEARNT, rate=0.5)
    assert p[:2].tolist() == [0.3, 0.2] and math.isnan(p[2])
    assert sources == ["learnt", "learnt", "none"]
    p, sources = objective.probabilities(np.array([5.0, 3.0]), objective.RANK, rate=0.4)
    assert p.tolist() == [0.4, 0.2] and sources == ["rank", "rank"]
    assert objective.probabilities(np.array([5.0]), objective.RANK, rate=None)[1] == ["rank-unmeasured"]


def test_breakdown_and_order_of_a_list() -> None:
    answer = [suggestion("a", 0.9, 1.0), suggestion("b", 0.8, None), suggestion("c", 0.7, 30.0),
              suggestion("bundle", 0.6, 10.0, bundle_price=8.0, items=["a", "c"])]
    relevance = objective.with_objective(answer, "relevance", source=objective.RANK, rate=0.3, margins=None, limit=3)
    assert [s["item_id"] for s in relevance] == ["a", "b", "c"]
    first = relevance[0]["breakdown"]
    assert first == {"relevance": 0.9, "probability": 0.3, "probability_source": "rank", "expected_revenue": 0.3}
    assert relevance[1]["breakdown"]["expected_revenue"] is None  # no price, no expected revenue
    revenue = objective.with_objective(answer, "revenue", source=objective.RANK, rate=0.3, margins=None, limit=4)
    assert [s["item_id"] for s in revenue] == ["c", "bundle", "a", "b"]  # 3.0, 0.6 (its bundle price), 0.3, none
    margins = np.array([0.5, 2.0, 1.0, np.nan])
    margin = objective.with_objective(answer, "margin", source=objective.RANK, rate=0.3, margins=margins, limit=4)
    assert [s["item_id"] for s in margin] == ["b", "a", "c", "bundle"]  # 0.3, 0.15, 0.1, unknown
    assert margin[0]["breakdown"]["expected_margin"] == pytest.approx(0.3)
    assert "expected_margin" not in revenue[0]["breakdown"]


# ---- the model ----

def expected(s: dict) -> float:
    value = s["breakdown"]["expected_revenue"]
    return -1.0 if value is None else value


@pytest.mark.parametrize("kind", ["cross_sell", "upsell", "service_package", "replenishment"])
def test_the_model_reranks_its_own_deeper_pool_by_expected_revenue(model: Recommender, kind: str) -> None:
    limit = 3
    pool = model.suggest("c07", kind, objective.POOL_FACTOR * limit)
    got = model.suggest("c07", kind, limit, objective="revenue")
    assert got, kind
    assert {s["item_id"] for s in got} <= {s["item_id"] for s in pool}  # never from below the kind's pool
    values = [expected(s) for s in got]
    assert values == sorted(values, reverse=True), (kind, values)
    relevance = model.suggest("c07", kind, limit)
    assert [s["item_id"] for s in relevance] == [s["item_id"] for s in pool][:limit]  # the default is unchanged


def test_revenue_prefers_the_dear_item_a_little_further_down(model: Recommender) -> None:
    """On the shop, c07's cross-sell pool holds the 100.00 printer below cheap items: by revenue
    it comes first, because 100 x p(3rd) beats 2 x p(1st) under any positive rate."""
    relevance = [s["item_id"] for s in model.suggest("c07", "cross_sell", 6)]
    revenue = model.suggest("c07", "cross_sell", 2, objective="revenue")
    assert "printer" in relevance and relevance[0] != "printer"
    assert revenue[0]["item_id"] == "printer"


def test_margin_on_a_model_without_margins_is_refused(model: Recommender) -> None:
    assert not model.has_margins
    with pytest.raises(ObjectiveUnavailable):
        model.suggest("c07", "cross_sell", 3, objective="margin")
    with pytest.raises(ValueError, match="unknown objective"):
        model.suggest("c07", "cross_sell", 3, objective="turnover")


def with_margins(model: Recommender, margins: dict[str, float]) -> Recommender:
    state = copy.copy(model.state)
    state.item_margin = np.full(len(state.items), np.nan, dtype=np.float32)
    for item, value in margins.items():
        state.item_margin[model._item_pos[item]] = value
    return Recommender(state)


def test_margin_ranks_by_probability_times_margin(model: Recommender) -> None:
    pool = [s["item_id"] for s in model.suggest("c07", "cross_sell", 9)]
    cheap_last = pool[-1]
    rich = with_margins(model, {cheap_last: 50.0, pool[0]: 0.01})
    assert rich.has_margins
    got = rich.suggest("c07", "cross_sell", 3, objective="margin")
    assert got[0]["item_id"] == cheap_last and got[1]["item_id"] == pool[0]  # then the unknown margins
    assert got[0]["breakdown"]["expected_margin"] > 0 and got[2]["breakdown"]["expected_margin"] is None
    assert "expected_margin" in rich.suggest("c07", "cross_sell", 3)[0]["breakdown"]


def test_learnt_cross_sell_reports_learnt_probabilities(model: Recommender) -> None:
    learnt = model.with_weights({"cross_sell_coef.blend": 2.0, "cross_sell_coef.intercept": -3.0})
    got = learnt.suggest("c07", "cross_sell", 3, objective="revenue")
    assert {s["breakdown"]["probability_source"] for s in got} == {"learnt"}
    assert all(0.0 < s["breakdown"]["probability"] < 1.0 for s in got)
    cold = learnt.suggest("__cold__", "cross_sell", 3)  # the popular list has no learnt chance
    assert {s["breakdown"]["probability_source"] for s in cold} == {"rank-unmeasured"}


def test_a_measured_rate_is_used_and_named(model: Recommender) -> None:
    got = model.with_weights({objective.RATE_PREFIX + "upsell": 0.4}).suggest("c07", "upsell", 2)
    assert got[0]["breakdown"]["probability"] == 0.4 and got[0]["breakdown"]["probability_source"] == "rank"


def test_margins_are_saved_and_an_older_model_without_them_loads_with_none(model: Recommender,
                                                                            tmp_path: Path) -> None:
    rich = with_margins(model, {"printer": 12.5})
    rich.save(tmp_path / "rich")
    assert Recommender.load(tmp_path / "rich").has_margins
    model.save(tmp_path / "old")
    (tmp_path / "old" / "arrays" / "item_margin.npy").unlink()  # as a model saved before margins existed
    old = ModelState.load(tmp_path / "old")
    assert old.item_margin is not None and np.isnan(old.item_margin).all() and len(old.item_margin) == len(old.items)


def test_the_pyfunc_table_takes_an_optional_objective_column(model: Recommender) -> None:
    import pandas as pd

    from scoring.pyfunc import RecommenderPyfunc, signature

    pyfunc = RecommenderPyfunc()
    pyfunc.recommender = model
    frame = pd.DataFrame({"client_id": ["c07", "c07"], "kind": ["cross_sell"] * 2, "limit": [2, 2],
                          "objective": ["relevance", "revenue"]})
    rows = pyfunc.predict(None, frame)
    assert rows.groupby("rank").size().tolist() == [2, 2]
    assert rows["item_id"].tolist()[2:] == [s["item_id"] for s in model.suggest("c07", "cross_sell", 2,
                                                                                objective="revenue")]
    assert len(pyfunc.predict(None, frame.drop(columns="objective"))) == 4  # relevance when left out
    assert not {c.name: c for c in signature().inputs.inputs}["objective"].required
