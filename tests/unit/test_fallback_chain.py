"""The fallback chain (scoring.fallback) on the small shop: the default, and an override in the model's meta."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from support.factories import SHOP_CONFIG, make_shop

from scoring import fallback
from scoring.recommender import Recommender
from training.context import TrainContext
from training.fit import fit_recommender


@pytest.fixture(scope="module")
def model() -> Recommender:
    tx, items, packages = make_shop()
    return fit_recommender(TrainContext.build(tx, items, packages), SHOP_CONFIG)


def with_chain(model: Recommender, chain: list[str]) -> Recommender:
    return Recommender(replace(model.state, meta={**model.meta, fallback.META_KEY: chain}))


def ids(suggestions: list[dict]) -> list[str]:
    return [s["item_id"] for s in suggestions]


def popular_ids(model: Recommender) -> set[str]:
    listed = model.state.global_popular
    return {str(model.item_ids[i]) for i in listed[listed >= 0]}


def test_the_default_chain_is_personalised_then_popular(model) -> None:
    assert model.catalogue.fallback == fallback.FALLBACK
    assert fallback.FALLBACK == ("personalised", "item_to_item", "segment_popular", "popular")
    cold = model.suggest("somebody-new", "cross_sell", 5)
    assert cold and set(ids(cold)) <= popular_ids(model)
    assert all(s["reason"].startswith("popular") for s in cold)
    known = model.suggest("c59", "cross_sell", 5)
    assert known and ids(known) != ids(cold), "a known client gets the personalised blend"


def test_a_chain_without_personalised_serves_a_known_client_the_popular_list(model) -> None:
    popular_only = with_chain(model, ["popular"])
    got = popular_only.suggest("c59", "cross_sell", 5)
    assert got and set(ids(got)) <= popular_ids(model)
    assert all(0.5 <= s["score"] <= 1.0 for s in got), "the popular list's own scores"
    assert ids(got) != ids(model.suggest("c59", "cross_sell", 5))


def test_item_to_item_offers_only_neighbours_of_the_clients_items(model) -> None:
    chained = with_chain(model, ["item_to_item", "popular"])
    st = model.state
    ci = model._client_pos["c59"]
    hist = st.hist_indices[st.hist_indptr[ci]: st.hist_indptr[ci + 1]]
    neighbours = {str(model.item_ids[j]) for j in np.concatenate([st.knn_idx[hist].ravel(), st.cooc_idx[hist].ravel()])
                  if j >= 0}
    got = chained.suggest("c59", "cross_sell", 10)
    assert got and set(ids(got)) <= neighbours
    assert set(ids(model.suggest("c59", "cross_sell", 10))) - neighbours, "the blend's taste reaches further"
    assert not set(ids(got)) & {str(model.item_ids[i]) for i in hist}, "never what the client bought"
    cold = chained.suggest("somebody-new", "cross_sell", 3)
    assert cold and set(ids(cold)) <= popular_ids(model), "no items: the next stage answers"


def test_an_unknown_stage_is_refused_when_the_model_loads(model) -> None:
    with pytest.raises(ValueError, match="unknown fallback stage"):
        with_chain(model, ["personalised", "populr"])
