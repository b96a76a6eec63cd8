"""The kinds registry, the per-request evidence and the model's contract type, on the small shop."""
from __future__ import annotations

import numpy as np
import pytest
from support.factories import SHOP_CONFIG, make_shop

from scoring.contract import KINDS, SuggestionModel
from scoring.kinds import REGISTRY, SuggestionKind
from scoring.recommender import Recommender
from training.context import TrainContext
from training.fit import fit_recommender


@pytest.fixture(scope="module")
def model() -> Recommender:
    tx, items, packages = make_shop()
    return fit_recommender(TrainContext.build(tx, items, packages), SHOP_CONFIG)


def test_every_contract_kind_has_one_registered_implementation(model) -> None:
    assert tuple(REGISTRY) == KINDS
    for name, kind in REGISTRY.items():
        assert isinstance(kind, SuggestionKind) and kind.name == name
    assert isinstance(model, SuggestionModel)


def test_the_registry_answers_what_suggest_answers(model) -> None:
    ev = model.evidence(model._client_pos["c07"], np.empty(0, np.int64))
    for name, kind in REGISTRY.items():
        ranked = kind.rank(ev, model.state.item_in_stock.copy(), 5)
        answered = [{k: v for k, v in s.items() if k != "breakdown"} for s in model.suggest("c07", name, 5)]
        assert kind.explain(ev, ranked, 5) == answered, name  # the breakdown is the objective's (test_objective)


def test_evidence_knows_what_the_client_owns_and_solves_the_taste_once(model) -> None:
    ci = model._client_pos["c07"]
    recent = model.item_index(["printer"])
    ev = model.evidence(ci, recent)
    st = model.state
    owned = set(st.hist_indices[st.hist_indptr[ci]: st.hist_indptr[ci + 1]].tolist()) | set(recent.tolist())
    assert set(np.flatnonzero(ev.owned).tolist()) == owned
    assert ev.taste is ev.taste, "the ALS user step runs once per request"
    assert not np.allclose(ev.taste, st.client_factors[ci]), "just-bought items refresh the taste"
    cold = model.evidence(None, np.empty(0, np.int64))
    assert cold.taste is None and not cold.owned.any() and cold.seed_recency is None


def test_without_reasons_the_ranking_is_the_same(model) -> None:
    for kind in KINDS:
        full = model.suggest("c31", kind, 5)
        bare = model.suggest("c31", kind, 5, explain=False)
        assert [s["item_id"] for s in bare] == [s["item_id"] for s in full], kind
    assert all(s["reason"] == "" for s in model.suggest("c31", "cross_sell", 5, explain=False))
