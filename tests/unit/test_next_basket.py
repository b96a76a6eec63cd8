"""The next_basket kind on the small shop: a full list, own products first (or merged by learnt
probability), no item twice, never a service, reasons that are true of the client."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from scoring import learnt
from scoring.kinds.next_basket import merges_by_probability
from scoring.recommender import Recommender
from training.candidates import precompute
from training.models.learnt import as_weights


def ids(suggestions: list[dict]) -> list[str]:
    return [s["item_id"] for s in suggestions]


def own_items(model: Recommender, client: str) -> set[str]:
    return set(model.item_ids[model._history(model._client_pos[client])[0]].tolist())


def products(model: Recommender) -> set[str]:
    return set(model.item_ids[model.catalogue.products].tolist())


def with_weights(model: Recommender, weights: dict[str, float]) -> Recommender:
    other = copy.copy(model)
    other.weights = {**model.weights, **weights}
    return other


def test_a_short_history_still_gets_a_full_list(model: Recommender) -> None:
    assert own_items(model, "c47") == {"milk", "bread"}, "c47 buys milk and bread only"
    assert len(model.suggest("c47", "replenishment", 10)) == 2, "replenishment: their own items only"
    got = model.suggest("c47", "next_basket", 10)
    assert len(got) == 10
    assert set(ids(got)[:2]) == {"milk", "bread"}, "own items first"
    assert all(s["kind"] == "next_basket" for s in got)


def test_never_short_while_the_catalogue_has_products(model: Recommender) -> None:
    offerable = len(products(model))
    for client in ("c00", "c07", "c47", "due", "basic1", "somebody-new"):
        for limit in (1, 5, 10, offerable, offerable + 5):
            got = model.suggest(client, "next_basket", limit)
            assert len(got) == min(limit, offerable), (client, limit, ids(got))


def test_no_item_twice_and_never_a_service_or_what_is_out_of_stock(model: Recommender) -> None:
    for client in ("c00", "c07", "c12", "c47", "due", "basic1", "somebody-new"):
        got = ids(model.suggest(client, "next_basket", 20))
        assert len(set(got)) == len(got), (client, got)
        assert set(got) <= products(model), (client, set(got) - products(model))
        assert not {"care_basic", "care_premium", "discontinued"} & set(got), client


def test_due_items_lead_and_own_items_come_before_new_ones(model: Recommender) -> None:
    got = model.suggest("due", "next_basket", 10)
    assert got[0]["item_id"] == "milk" and got[0]["due"] is True
    assert got[0]["reason"].startswith("due: usually every 7 days")
    mine = own_items(model, "due")
    flags = [s["item_id"] in mine for s in got]
    assert flags == sorted(flags, reverse=True), "every own item before every new one"
    due = [pos for pos, s in enumerate(got) if s.get("due")]
    new = [pos for pos, s in enumerate(got) if s["item_id"] not in mine]
    assert due and new and max(due) < min(new)
    scores = [s["score"] for s in got]
    assert scores == sorted(scores, reverse=True), "the list reads in descending score"


def test_reasons_say_what_is_true_of_the_client(model: Recommender) -> None:
    st = model.state
    ci = model._client_pos["due"]
    hist, sl = model._history(ci)
    count = dict(zip(model.item_ids[hist].tolist(), st.hist_count[sl].tolist(), strict=True))
    for s in model.suggest("due", "next_basket", 10):
        assert s["name"] not in s["reason"], s
        if s["item_id"] in count:
            if "regularly" in s["reason"]:
                assert count[s["item_id"]] >= 3, s
            if count[s["item_id"]] == 1 and not s["due"]:
                assert s["reason"].startswith("bought once before"), s
        else:
            assert "due" not in s, s
    cold = model.suggest("somebody-new", "next_basket", 5)
    assert cold and all(s["reason"].startswith("popular") for s in cold)


def test_a_shorter_list_is_the_prefix_of_a_longer_one(model: Recommender) -> None:
    for client in ("c07", "c47", "somebody-new"):
        long = model.suggest(client, "next_basket", 12)
        for limit in (1, 3, 7):
            assert model.suggest(client, "next_basket", limit) == long[:limit], (client, limit)


def test_just_bought_excluded_and_filters_apply(model: Recommender) -> None:
    first = ids(model.suggest("c47", "next_basket", 3))
    after = ids(model.suggest("c47", "next_basket", 10, recent_purchases=[first[0]]))
    assert first[0] not in after and len(after) == 10
    assert "milk" not in ids(model.suggest("c47", "next_basket", 10, exclude=["milk"]))
    assert ids(model.suggest("c47", "next_basket", 10, category="snacks")) == ["chips"]


def test_candidate_lists_give_the_exact_answer(model: Recommender) -> None:
    served = copy.deepcopy(model)
    precompute(served, size=12)
    exact = served.without_candidates()
    for client in ("c00", "c07", "c47", "due", "basic2"):
        ci = served._client_pos[client]
        assert served._from_candidates("next_basket", ci, np.empty(0, np.int64), None, (), 10) is not None
        for limit in (5, 10):
            assert served.suggest(client, "next_basket", limit) == exact.suggest(client, "next_basket", limit)
        assert served.suggest(client, "next_basket", 10, exclude=["milk"]) == \
            exact.suggest(client, "next_basket", 10, exclude=["milk"])


@pytest.fixture(scope="module")
def learnt_model(model: Recommender) -> Recommender:
    """Both chances learnt (by hand: repeat by purchase count, first purchase by popularity)."""
    repeat = np.zeros(len(learnt.REPLENISH_FEATURES))
    repeat[learnt.REPLENISH_FEATURES.index("log_count")] = 1.0
    first = np.zeros(len(learnt.CROSS_SELL_FEATURES))
    first[learnt.CROSS_SELL_FEATURES.index("log_item_pop")] = 1.0
    return with_weights(model, {**as_weights(learnt.REPLENISH_PREFIX, learnt.REPLENISH_FEATURES, -3.0, repeat),
                                **as_weights(learnt.CROSS_SELL_PREFIX, learnt.CROSS_SELL_FEATURES, -4.0, first)})


def test_own_first_until_the_merge_weight_is_positive(learnt_model: Recommender) -> None:
    ev = learnt_model.evidence(learnt_model._client_pos["due"], np.empty(0, np.int64))
    assert not merges_by_probability(ev)
    mine = own_items(learnt_model, "due")
    flags = [i in mine for i in ids(learnt_model.suggest("due", "next_basket", 10))]
    assert flags == sorted(flags, reverse=True)


def test_merged_by_probability_new_items_rank_among_own_ones(learnt_model: Recommender) -> None:
    merged = with_weights(learnt_model, {"next_basket_new": 4.0})
    ev = merged.evidence(merged._client_pos["due"], np.empty(0, np.int64))
    assert merges_by_probability(ev)
    got = merged.suggest("due", "next_basket", 10)
    mine = own_items(merged, "due")
    flags = [s["item_id"] in mine for s in got]
    assert flags != sorted(flags, reverse=True), "a likely new item now beats an unlikely own one"
    scores = [s["score"] for s in got]
    assert scores == sorted(scores, reverse=True)
    assert len(got) == 10 and len(set(ids(got))) == 10
    own_scores = [s["score"] for s in got if s["item_id"] in mine]
    assert all(0.0 < v < 1.0 for v in own_scores), "an own item scores its chance of a repeat"
    assert merged.suggest("due", "next_basket", 4) == got[:4]


def test_the_business_objective_reads_the_merged_chances(learnt_model: Recommender) -> None:
    merged = with_weights(learnt_model, {"next_basket_new": 1.0})
    got = merged.suggest("due", "next_basket", 5, objective="revenue")
    assert len(got) == 5
    sources = {s["breakdown"]["probability_source"] for s in got}
    assert sources <= {"learnt", "none"} and "learnt" in sources, sources
    own_first = learnt_model.suggest("due", "next_basket", 5, objective="revenue")
    assert {s["breakdown"]["probability_source"] for s in own_first} <= {"rank", "rank-unmeasured"}
