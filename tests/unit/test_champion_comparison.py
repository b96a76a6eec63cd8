"""The promotion gate compares the champion fairly: a champion whose data reaches into the test
window has seen the answers, so its recipe is refitted on the training part instead."""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
from support.factories import SHOP_CONFIG

from scoring.recommender import Recommender
from training.train import AS_REFIT, AS_REGISTERED, champion_ranker


def _as_champion(model: Recommender, last: str | None) -> SimpleNamespace:
    """The model's meta with the data range a registered champion would record."""
    return SimpleNamespace(meta={**model.meta, "data": {"last": last}}, state=model.state)


def test_a_champion_that_saw_the_test_window_is_refitted_from_its_recipe(shop, model: Recommender) -> None:
    tx, _, _ = shop
    last = tx["timestamp"].max().isoformat()
    ranker, how = champion_ranker(_as_champion(model, last), SHOP_CONFIG, tx)
    assert how == AS_REFIT
    assert not ranker.registered and ranker.recommender is None  # fitted on the split, not as registered
    assert ranker.recipe is not None and ranker.recipe.cf.factors == model.meta["params"]["factors"]


def test_a_champion_whose_data_ends_before_the_test_window_is_scored_as_registered(shop, model: Recommender) -> None:
    tx, _, _ = shop
    cutoff = tx["timestamp"].max() - pd.Timedelta(days=SHOP_CONFIG.test_days)
    before = (cutoff - pd.Timedelta(days=1)).isoformat()
    champion = _as_champion(model, before)
    ranker, how = champion_ranker(champion, SHOP_CONFIG, tx)
    assert how == AS_REGISTERED and ranker.registered and ranker.recommender is champion


def test_a_champion_without_a_recipe_is_scored_as_registered(shop, model: Recommender) -> None:
    tx, _, _ = shop
    champion = SimpleNamespace(meta={"data": {"last": tx["timestamp"].max().isoformat()}},
                               state=SimpleNamespace(extras={}))
    ranker, how = champion_ranker(champion, SHOP_CONFIG, tx)
    assert how == AS_REGISTERED and ranker.registered
