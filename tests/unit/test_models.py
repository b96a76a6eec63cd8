"""Each model on a small shop whose right answer is known (tests/support/factories.make_shop)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.factories import SHOP_CONFIG

from features.baskets import basket_matrix
from features.matrix import IdIndex
from scoring.contract import KINDS
from scoring.recommender import Recommender
from training.models.bundles import mine_bundles, neighbour_lists, pair_counts

CONFIG = SHOP_CONFIG



def ids(suggestions: list[dict]) -> list[str]:
    return [s["item_id"] for s in suggestions]


def by_id(suggestions: list[dict]) -> dict[str, dict]:
    return {s["item_id"]: s for s in suggestions}


def test_bundle_pattern_is_found(shop) -> None:
    tx, _, _ = shop
    items = IdIndex.from_ids(tx["item_id"])
    baskets, _ = basket_matrix(tx, items)
    co = pair_counts(baskets)
    neighbours = neighbour_lists(co, 5, shrinkage=5)
    chips, salsa = items.get("chips"), items.get("salsa")
    assert neighbours.idx[chips][0] == salsa
    assert neighbours.conf[chips][0] == pytest.approx(1.0)  # always together
    bundles = mine_bundles(baskets, co, min_baskets=5, min_lift=1.5)
    pairs = {tuple(sorted(int(i) for i in row if i >= 0)) for row in bundles.items}
    assert tuple(sorted((chips, salsa))) in pairs


def test_cart_completes_the_basket_and_offers_the_bundle(model) -> None:
    answer = model.cart(["chips"], limit=3)
    assert answer["complete"][0]["item_id"] == "salsa"
    assert "in 120 of 120 baskets with Chips" == answer["complete"][0]["reason"]
    assert any("salsa" in b["items"] and b["bundle_price"] < b["price"] for b in answer["bundles"])
    assert answer["unknown_items"] == []
    assert model.cart(["chips", "nope"])["unknown_items"] == ["nope"]


def test_trade_up_is_the_first_upsell(model) -> None:
    client = "c35"  # buys the 3.00 coffee, never moved up
    first = model.suggest(client, "upsell", 3)[0]
    assert first["item_id"] == "coffee_plus"
    assert first["upgrade_from"] == "coffee"
    assert first["price_difference"] == pytest.approx(2.0)
    assert "moved up" in first["reason"]


def test_due_item_is_surfaced_with_its_rhythm(model) -> None:
    due = by_id(model.suggest("due", "replenishment", 5))
    assert "milk" in due, list(due)
    assert due["milk"]["due"] is True
    assert due["milk"]["reason"].startswith("due: usually every 7 days")
    regular = by_id(model.suggest("c01", "replenishment", 5))
    assert "milk" in regular, list(regular)
    assert regular["milk"]["due"] is False


def test_cross_sell_rules(model, shop) -> None:
    tx, _, _ = shop
    for client in ("c00", "c31", "due"):
        bought = set(tx.loc[tx["client_id"] == client, "item_id"])
        got = ids(model.suggest(client, "cross_sell", 10))
        assert got, client
        assert not bought & set(got), "never suggest what the client bought"
        assert "discontinued" not in got, "never suggest what is out of stock"
        assert not {"care_basic", "care_premium"} & set(got), "services are offered as packages, not cross-sell"


def test_just_bought_item_leaves_cross_sell(model) -> None:
    before = ids(model.suggest("c59", "cross_sell", 3))
    after = ids(model.suggest("c59", "cross_sell", 3, recent_purchases=[before[0]]))
    assert before[0] not in after


def test_filters_and_exclusions(model) -> None:
    assert "chips" in ids(model.suggest("c50", "cross_sell", 10)), "c50 never bought chips: they are offered"
    excluded = ids(model.suggest("c50", "cross_sell", 10, exclude=["chips"]))
    assert excluded and "chips" not in excluded
    assert ids(model.suggest("c50", "cross_sell", 10, category="snacks")) == ["chips"], "chips are the only snack"
    assert ids(model.suggest("c50", "cross_sell", 10, category="goods")), "a category matches too"
    assert model.suggest("c50", "cross_sell", 10, exclude=["chips"], category="snacks") == []


def test_cold_start_client_gets_popular_items(model) -> None:
    got = model.suggest("somebody-new", "cross_sell", 3)
    assert len(got) == 3 and got[0]["reason"].startswith("popular")
    assert model.segment("somebody-new") == {"abc": None, "activity": None, "rfm": None}
    assert model.segment("c00")["abc"] in {"A", "B", "C"}


def test_next_tier_of_a_held_package(model) -> None:
    got = by_id(model.suggest("basic1", "service_package", 5))
    assert "pkg_premium" in got, list(got)
    assert got["pkg_premium"]["reason"].startswith("next tier")
    assert "pkg_basic" not in got, "never offer the tier the client already holds"


def test_every_kind_answers_and_unknown_kind_is_refused(model) -> None:
    for kind in KINDS:  # c07 holds the basic care tier, buys milk weekly and the 3.00 coffee
        got = model.suggest("c07", kind, 5)
        assert 0 < len(got) <= 5, kind
        for s in got:
            assert set(s) >= {"item_id", "name", "kind", "score", "price", "reason"}
            assert np.isfinite(s["score"])
    with pytest.raises(ValueError, match="unknown kind"):
        model.suggest("c00", "everything", 5)


def test_similar_items(model) -> None:
    assert model.similar("chips", 3)[0]["item_id"] == "salsa"
    with pytest.raises(KeyError):
        model.similar("nope")


def test_save_and_load_give_the_same_answers(model, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    again = Recommender.load(tmp_path / "m")
    for kind in KINDS:
        answer = model.suggest("c07", kind, 5)
        assert answer, kind
        assert again.suggest("c07", kind, 5) == answer
    assert again.cart(["chips", "milk"], "c07") == model.cart(["chips", "milk"], "c07")


def test_smoke_check_refuses_nan_factors(model, tmp_path: Path) -> None:
    model.smoke_check()
    model.save(tmp_path / "bad")
    broken = Recommender.load(tmp_path / "bad")
    broken.state.item_factors[:] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        broken.smoke_check()


def test_strongest_seeds_picks_the_strongest_anchor_per_target() -> None:
    from scoring.ranking import strongest_seeds

    idx = np.array([[1, 2, -1], [2, 3, 1], [0, 0, 0], [1, 3, 2]], dtype=np.int32)
    val = np.array([[0.9, 0.1, 0], [0.5, 0.4, 0.2], [0, 0, 0], [0.3, 0.8, 0.6]], dtype=np.float32)
    anchors, values = strongest_seeds(idx, val, np.array([0, 1, 3]), np.array([2, 3, 1, 4]))
    assert anchors.tolist() == [3, 3, 0, -1]
    assert values.tolist() == pytest.approx([0.6, 0.8, 0.9, 0.0])


def test_service_packages_follow_the_request_filter(model: Recommender) -> None:
    """An excluded package never comes back, and a category filter applies to a package's members
    (the packages of the shop are all "services": filtering on "goods" leaves none of them)."""
    client = next(c for c in model.client_ids
                  if any(s["item_id"].startswith("pkg_") for s in model.suggest(c, "service_package", 10)))
    offered = [s["item_id"] for s in model.suggest(client, "service_package", 10) if s["item_id"].startswith("pkg_")]
    assert offered
    after = [s["item_id"] for s in model.suggest(client, "service_package", 10, exclude=offered[:1])]
    assert offered[0] not in after
    goods = model.suggest(client, "service_package", 10, category="goods")
    assert not [s for s in goods if s["item_id"].startswith("pkg_")]
