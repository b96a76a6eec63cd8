"""Learnt trees: numpy evaluates LightGBM's trees exactly, tuning chooses among the rankings, and a
model carrying trees keeps the cross-sell rules."""
from __future__ import annotations

import ast
import copy

import lightgbm as lgb
import numpy as np
import pytest
from support.cross_sell_rules import assert_reranked_cross_sell_keeps_the_rules
from support.factories import SHOP_CONFIG
from support.processes import ROOT

from scoring import learnt, trees
from scoring.recommender import Recommender
from scoring.state import ModelState
from training.candidates import precompute
from training.context import TrainContext
from training.fit import fit_recommender
from training.metrics import score_rankings
from training.models.gbdt import fit_gbdt
from training.recipe import Recipe
from training.tasks import TaskQueries
from training.tuning import choose_ranking, per_query


def _data(rng: np.random.Generator, n: int, zero_share: float = 0.1) -> np.ndarray:
    x = rng.normal(size=(n, 5)) * 2.0
    x[rng.random(x.shape) < 0.1] = np.nan
    x[rng.random(x.shape) < zero_share] = 0.0
    x[:, 4] = np.round(x[:, 4])  # ties on thresholds
    return x


@pytest.mark.parametrize("params", [
    {"objective": "binary"},
    {"objective": "lambdarank"},
    {"objective": "binary", "zero_as_missing": True},  # the "zero" missing type
    {"objective": "binary", "use_missing": False},  # NaN read as 0
], ids=["binary", "lambdarank", "zero_as_missing", "no_missing"])
def test_numpy_trees_reproduce_booster_predict_exactly(params) -> None:
    rng = np.random.default_rng(3)
    x = _data(rng, 4000)
    signal = np.nan_to_num(x[:, 0]) - 0.5 * np.nan_to_num(x[:, 1]) + (x[:, 2] == 0) + np.isnan(x[:, 3])
    y = (signal + rng.normal(size=len(x)) > 0.8).astype(float)
    booster = lgb.train({**params, "num_leaves": 15, "min_data_in_leaf": 10, "verbose": -1, "num_threads": 1,
                         "seed": 0}, lgb.Dataset(x, y, group=[100] * 40), num_boost_round=60)
    ensemble = trees.flatten(booster.dump_model())
    fresh = np.vstack([_data(rng, 5000), x, np.full((3, 5), np.nan), np.zeros((3, 5)),
                       np.full((2, 5), 1e300), np.full((2, 5), -1e300)])
    got = trees.predict(ensemble, fresh)
    assert ensemble["root"].size == 60 and ensemble["feature"].size > 60
    np.testing.assert_array_equal(got, booster.predict(fresh, raw_score=True))


def test_a_tree_of_one_leaf_and_an_empty_ensemble() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    booster = lgb.train({"objective": "regression", "min_data_in_leaf": 1000, "verbose": -1, "num_threads": 1},
                        lgb.Dataset(x, rng.normal(size=50)), num_boost_round=2)
    ensemble = trees.flatten(booster.dump_model())
    assert ensemble["feature"].size == 0 and (ensemble["root"] < 0).all()
    np.testing.assert_array_equal(trees.predict(ensemble, x), booster.predict(x, raw_score=True))
    assert trees.predict(trees.flatten({"tree_info": []}), x).tolist() == [0.0] * 50


def test_categorical_splits_are_refused() -> None:
    with pytest.raises(ValueError, match="numerical"):
        trees.flatten({"tree_info": [{"tree_structure": {"decision_type": "==", "split_feature": 0, "threshold": "1",
                                                         "default_left": True, "missing_type": "None",
                                                         "left_child": {"leaf_value": 1.0},
                                                         "right_child": {"leaf_value": 0.0}}}]})


@pytest.mark.parametrize("objective", ["binary", "lambdarank"])
def test_fit_gbdt_learns_the_order_on_unseen_queries(objective) -> None:
    rng = np.random.default_rng(1)
    n_queries, size = 400, 50
    x = rng.normal(size=(n_queries * size, 4))
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-(2.5 * x[:, 0] * (x[:, 1] > 0) - 3.0)))).astype(float)
    rows = np.repeat(np.arange(n_queries), size)
    ensemble = fit_gbdt(x[rows < 300], y[rows < 300], rows[rows < 300], objective)
    score = trees.predict(ensemble, x[rows >= 300])
    held = y[rows >= 300].astype(bool)
    auc = (score[held][:, None] > score[~held][None, :]).mean()
    assert auc > 0.75, auc
    with pytest.raises(ValueError, match="grouped"):
        fit_gbdt(x, y, rows[::-1], objective)


def test_the_choice_keeps_trees_only_when_they_win_beyond_the_noise() -> None:
    rng = np.random.default_rng(5)
    base = rng.random(2000)

    def chosen(blend: float, learnt_: float, trees_: np.ndarray) -> tuple[str, float]:
        return choose_ranking({"blend": base + blend, "learnt": base + learnt_, "trees": trees_})

    assert chosen(0.0, 0.01, base + 0.02)[0] == "trees", "a constant gain has no noise"
    assert chosen(0.0, 0.01, base)[0] == "learnt", "the regression replaces the blend when its mean is higher"
    assert chosen(0.01, 0.0, base)[0] == "blend"
    assert chosen(0.0, 0.0, base + 0.01)[0] == "trees"
    assert chosen(0.0, 0.0, base)[0] == "blend", "a tie keeps the simpler"
    noise = rng.normal(0.0, 0.2, size=2000)  # standard error of the mean difference about 0.0045
    small, z_small = chosen(0.0, 0.0, base + noise - noise.mean() + 0.005)
    large, z_large = chosen(0.0, 0.0, base + noise - noise.mean() + 0.02)
    assert small == "blend" and 0.5 < z_small < 2.0, z_small
    assert large == "trees" and z_large > 2.0, z_large
    assert choose_ranking({"blend": base, "learnt": base + 0.01}) == ("learnt", 0.0), "too little data for trees"


def test_per_query_scores_average_to_the_reported_metric() -> None:
    rng = np.random.default_rng(6)
    relevant = [rng.choice(50, size=rng.integers(1, 6), replace=False) for _ in range(300)]
    ranked = np.array([rng.permutation(50)[:10] for _ in range(300)])
    for metric, name in (("ndcg", "ndcg@10"), ("hr", "hr@10")):
        task = TaskQueries(task="t", kind="client", metric=metric, clients=np.arange(300), history=None,
                           relevant=relevant)
        assert per_query(ranked, task, 10).mean() == pytest.approx(score_rankings(ranked, relevant, 50, 10)[name])


def test_scoring_never_imports_lightgbm() -> None:
    for path in (ROOT / "scoring").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.partition(".")[0] == "lightgbm" for n in names), path


@pytest.fixture(scope="module")
def tree_cross_sell(model) -> Recommender:
    """The shop model with cross-sell trees that prefer the client's subcategories and rare items."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6000, len(learnt.CROSS_SELL_FEATURES)))
    share, pop = learnt.CROSS_SELL_FEATURES.index("subcat_share"), learnt.CROSS_SELL_FEATURES.index("log_item_pop")
    y = (2.0 * x[:, share] - x[:, pop] + rng.normal(size=len(x)) > 1.0).astype(float)
    ensemble = fit_gbdt(x, y, np.repeat(np.arange(60), 100), "binary")
    other = copy.copy(model)
    other.state = copy.copy(model.state)
    other.state.extras = {**model.state.extras, **{learnt.CROSS_SELL_TREES + k: v for k, v in ensemble.items()}}
    return Recommender(other.state)


def test_cross_sell_with_trees_keeps_the_rules(tree_cross_sell, model, shop) -> None:
    tx, _, _ = shop
    assert_reranked_cross_sell_keeps_the_rules(tree_cross_sell, tx, "the trees' chance")
    assert [s["item_id"] for s in tree_cross_sell.suggest("c31", "cross_sell", 10)] != \
        [s["item_id"] for s in model.suggest("c31", "cross_sell", 10)], "the trees reorder the blend's pool"


def test_tree_cross_sell_candidates_equal_the_exact_answers(tree_cross_sell) -> None:
    served = copy.deepcopy(tree_cross_sell)
    precompute(served, size=20)
    exact = served.without_candidates()
    for client in served.client_ids[:40]:
        assert served.suggest(str(client), "cross_sell", 10) == exact.suggest(str(client), "cross_sell", 10)


def test_trees_travel_in_the_recipe_and_survive_saving(tree_cross_sell, tmp_path) -> None:
    recipe = Recipe.from_meta(tree_cross_sell.meta, tree_cross_sell.state.extras)
    assert set(recipe.trees) == {learnt.CROSS_SELL_TREES + part for part in trees.PARTS}
    assert not any(name.startswith("cand_") for name in recipe.trees)
    with pytest.raises(ValueError, match="trees_"):
        Recipe(recipe.cf, {}, {"cand_cross_sell": np.zeros(1)})
    tree_cross_sell.state.save(tmp_path / "m")
    loaded = Recommender(ModelState.load(tmp_path / "m"))
    for client in tree_cross_sell.client_ids[:10]:
        assert loaded.suggest(str(client), "cross_sell", 10) == tree_cross_sell.suggest(str(client), "cross_sell", 10)


def test_a_recipe_with_trees_fits_a_model_that_answers_with_them(tree_cross_sell, shop) -> None:
    tx, items, packages = shop
    recipe = Recipe.from_meta(tree_cross_sell.meta, tree_cross_sell.state.extras)
    refitted = fit_recommender(TrainContext.build(tx, items, packages), SHOP_CONFIG, recipe)
    assert {k for k in refitted.state.extras if k.startswith(Recipe.TREES)} == set(recipe.trees)
    for client in ("c00", "c31", "due"):
        assert refitted.suggest(client, "cross_sell", 10) == tree_cross_sell.suggest(client, "cross_sell", 10)


@pytest.fixture(scope="module")
def tree_replenishment(model) -> Recommender:
    """The shop model with replenishment trees that prefer often-bought items."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6000, len(learnt.REPLENISH_FEATURES)))
    count = learnt.REPLENISH_FEATURES.index("log_count")
    y = (1.5 * x[:, count] + rng.normal(size=len(x)) > 1.0).astype(float)
    ensemble = fit_gbdt(x, y, np.repeat(np.arange(60), 100), "binary")
    state = copy.copy(model.state)
    state.extras = {**model.state.extras, **{learnt.REPLENISH_TREES + k: v for k, v in ensemble.items()}}
    return Recommender(state)


def test_replenishment_trees_order_the_blends_top_items(tree_replenishment, model, monkeypatch) -> None:
    got = tree_replenishment.suggest("due", "replenishment", 10)
    scores = [s["score"] for s in got]
    assert len(got) > 3 and all(0.0 < v < 1.0 for v in scores), "the trees' chance orders the list"
    assert scores == sorted(scores, reverse=True)
    first = got[0]["item_id"]
    assert first not in [s["item_id"] for s in tree_replenishment.suggest("due", "replenishment", 10,
                                                                          recent_purchases=[first])]
    monkeypatch.setattr(learnt, "REPLENISH_POOL", 2)  # a second stage: only the blend's top 2 are re-ordered
    blend_top = {s["item_id"] for s in model.suggest("due", "replenishment", 2)}
    pooled = tree_replenishment.suggest("due", "replenishment", 10)
    assert {s["item_id"] for s in pooled[:2]} == blend_top
    assert all(0.0 < s["score"] < 1.0 for s in pooled[:2]) and all(s["score"] < 0.0 for s in pooled[2:])
