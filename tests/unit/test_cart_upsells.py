"""Cart upsells on the small shop: each cart item's best pricier alternative, with that alternative's score."""
from __future__ import annotations

import numpy as np
import pytest
from support.factories import SHOP_CONFIG, make_shop

from scoring.recommender import Recommender
from training.context import TrainContext
from training.fit import fit_recommender


@pytest.fixture(scope="module")
def model() -> Recommender:
    tx, items, packages = make_shop()
    return fit_recommender(TrainContext.build(tx, items, packages), SHOP_CONFIG)


def edge_score(model: Recommender, source: str, target: str) -> float:
    """The stored upsell score of the edge source -> target."""
    row = model._item_pos[source]
    (k,) = np.flatnonzero(model.state.upsell_idx[row] == model._item_pos[target])
    return float(model.state.upsell_score[row][k])


def test_the_first_alternative_carries_its_own_score(model) -> None:
    (up,) = model.cart(["coffee"])["upsell"]
    assert (up["item_id"], up["upgrade_from"]) == ("coffee_plus", "coffee")
    assert up["score"] == pytest.approx(edge_score(model, "coffee", "coffee_plus"), abs=1e-6)
    assert "30 clients moved up" in up["reason"]


def test_an_alternative_already_in_the_cart_passes_to_the_next_with_that_ones_score(model) -> None:
    # coffee_plus is coffee's strongest alternative but is in the cart: coffee_top is offered,
    # and its score is the coffee -> coffee_top edge's, not the (much higher) coffee -> coffee_plus one
    first, second = edge_score(model, "coffee", "coffee_plus"), edge_score(model, "coffee", "coffee_top")
    assert first > second
    upsells = model.cart(["coffee", "coffee_plus"])["upsell"]
    from_coffee = next(s for s in upsells if s["upgrade_from"] == "coffee")
    assert from_coffee["item_id"] == "coffee_top"
    assert from_coffee["score"] == pytest.approx(second, abs=1e-6)
    assert "coffee_plus" not in [s["item_id"] for s in upsells], "never upsell what is in the cart"
    scores = [s["score"] for s in upsells]
    assert scores == sorted(scores, reverse=True)
