"""The `SuggestionModel` contract (scoring/contract.py), written once and run over every
implementation, as implicit's tests/recommender_base_test.py does.

The service talks to whatever the registry holds only through this protocol, so the real model
and the test doubles the service tests register must behave alike. Each implementation only says
how to build itself and which of its clients, items and baskets have an answer (`Subject`); every
check below runs on each of them. Where a model must answer, the checks assert the answer is not
empty first, so none of them passes by checking nothing.
"""
from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from support.factories import SHOP_CONFIG, make_shop
from support.reliability_doubles import TaggedRecommender
from support.service_model_double import CatalogueRecommender

from scoring.contract import (
    CONTRACT_METHODS,
    KINDS,
    ClientStateInRedis,
    ClientValues,
    ItemGroups,
    ObjectiveUnavailable,
    Suggestion,
    SuggestionModel,
    groups_of,
    implements,
)
from training.candidates import precompute
from training.context import TrainContext
from training.fit import fit_recommender

UNKNOWN_CLIENT = "__nobody-at-all__"
UNKNOWN_ITEM = "__no-such-item__"
#: The keys every suggestion carries (the required keys of `Suggestion`).
REQUIRED = {"item_id", "name", "kind", "score", "price", "reason"}
SEGMENT_KEYS = {"abc", "activity", "rfm"}
#: The keys of every suggestion's score breakdown.
BREAKDOWN = {"relevance", "probability", "probability_source", "expected_revenue"}


@dataclass(frozen=True)
class Subject:
    """One implementation under test and what it is known to answer."""

    name: str
    model: Any
    client: str             # a known client with an answer of every kind
    items: tuple[str, ...]  # known items, each with similar items
    basket: tuple[str, ...]  # known items whose cart has something to complete and a bundle


def the_real_model() -> Subject:
    """scoring.recommender.Recommender fitted on the small shop, answering by the exact path."""
    transactions, items, packages = make_shop()
    model = fit_recommender(TrainContext.build(transactions, items, packages), SHOP_CONFIG)
    return Subject("recommender", model, client="c07", items=("chips", "milk", "coffee"), basket=("chips",))


def the_real_model_with_candidates() -> Subject:
    """The same, with the precomputed candidate lists a trained model ships and serves from."""
    subject = the_real_model()
    model = copy.deepcopy(subject.model)
    precompute(model, size=20)
    return Subject("recommender_with_candidates", model, subject.client, subject.items, subject.basket)


def the_catalogue_double() -> Subject:
    """The service tests' double (support/service_model_double.py)."""
    return Subject("catalogue_double", CatalogueRecommender(), client="c1", items=("coffee", "mug", "descaling"), basket=("coffee",))


def the_tagged_double() -> Subject:
    """The fault tests' double, every answer stamped with its version (support/reliability_doubles.py)."""
    return Subject("tagged_double", TaggedRecommender(tag="3"), client="c1", items=("coffee", "mug"), basket=("coffee",))


IMPLEMENTATIONS: dict[str, Callable[[], Subject]] = {
    "recommender": the_real_model,
    "recommender_with_candidates": the_real_model_with_candidates,
    "catalogue_double": the_catalogue_double,
    "tagged_double": the_tagged_double,
}


#: Contract breaches known today, (implementation, check) -> why; each is a strict xfail, so the
#: fix shows up as a failure that asks for its line here to go.
KNOWN_DEFECTS: dict[tuple[str, str], str] = {}


def expect_defect(request: pytest.FixtureRequest, subject: Subject, check: str) -> None:
    reason = KNOWN_DEFECTS.get((subject.name, check))
    if reason:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


@pytest.fixture(scope="module", params=list(IMPLEMENTATIONS))
def subject(request: pytest.FixtureRequest) -> Subject:
    return IMPLEMENTATIONS[request.param]()


def ids(suggestions: list[Suggestion]) -> list[str]:
    return [s["item_id"] for s in suggestions]


def assert_well_formed(model: Any, suggestions: list[Suggestion], limit: int, what: str) -> None:
    """At most `limit` suggestions, each with the required keys, a finite score, an id the model
    knows (a package: its member items), and no id twice."""
    assert len(suggestions) <= limit, (what, len(suggestions))
    for s in suggestions:
        assert REQUIRED <= set(s), (what, REQUIRED - set(s))
        assert isinstance(s["score"], int | float) and math.isfinite(s["score"]), (what, s)
        assert s["reason"], (what, s)
        members = s.get("items") or []
        assert model.knows_item(s["item_id"]) or (members and all(model.knows_item(i) for i in members)), (what, s)
    assert len(set(ids(suggestions))) == len(suggestions), (what, ids(suggestions))


# ---- the protocol ----

def test_implements_the_protocol(subject: Subject) -> None:
    assert {"knows_client", "knows_item", "segment", "suggest", "cart", "similar", "smoke_check"} <= set(CONTRACT_METHODS)
    assert isinstance(subject.model, SuggestionModel)
    for name in CONTRACT_METHODS:
        assert callable(getattr(subject.model, name, None)), name
    assert isinstance(subject.model.meta, dict) and subject.model.meta.get("trained_at")


@pytest.mark.parametrize("protocol", [ItemGroups, ClientValues, ClientStateInRedis])
def test_implements_answers_as_isinstance_does(subject: Subject, protocol: type) -> None:
    """`implements` (isinstance decided once per class, for the per-request checks) answers what isinstance
    answers: for the model, for an object without the methods, and for one given them on the instance."""
    assert implements(subject.model, protocol) == isinstance(subject.model, protocol)
    assert implements(subject.model, protocol) == implements(subject.model, protocol)  # and again, cached
    bare = type("Bare", (), {})()
    assert not implements(bare, protocol) and not isinstance(bare, protocol)
    for name in ("groups_of", "client_value", "client_state_key", "with_client_state", "client_state_models"):
        setattr(bare, name, lambda *args: None)
    assert implements(bare, protocol) and isinstance(bare, protocol)


def test_smoke_check_passes(subject: Subject) -> None:
    assert subject.model.smoke_check() is None


# ---- suggest ----

@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_answers_a_known_client_within_the_limit(subject: Subject, kind: str) -> None:
    got = subject.model.suggest(subject.client, kind, 3)
    assert got, f"{subject.client} gets no {kind}"
    assert_well_formed(subject.model, got, 3, kind)
    assert len(subject.model.suggest(subject.client, kind, 1)) == 1, kind


def test_an_unknown_kind_is_a_value_error(subject: Subject) -> None:
    with pytest.raises(ValueError):
        subject.model.suggest(subject.client, "everything", 3)


def test_an_unknown_client_gets_cold_start_cross_sell(subject: Subject) -> None:
    assert subject.model.knows_client(subject.client) is True
    assert subject.model.knows_client(UNKNOWN_CLIENT) is False
    got = subject.model.suggest(UNKNOWN_CLIENT, "cross_sell", 3)
    assert got, "a cold client still gets cross-sell"
    assert_well_formed(subject.model, got, 3, "cold cross_sell")


@pytest.mark.parametrize("kind", KINDS)
def test_excluded_ids_never_come_back(subject: Subject, kind: str, request: pytest.FixtureRequest) -> None:
    expect_defect(request, subject, f"exclude {kind}")
    first = ids(subject.model.suggest(subject.client, kind, 5))
    assert first, kind
    excluded = first[:2]
    again = subject.model.suggest(subject.client, kind, 5, exclude=excluded)
    assert not set(excluded) & set(ids(again)), (kind, excluded, ids(again))
    cold = ids(subject.model.suggest(UNKNOWN_CLIENT, "cross_sell", 5))
    assert cold and not set(cold[:2]) & set(ids(subject.model.suggest(UNKNOWN_CLIENT, "cross_sell", 5,
                                                                      exclude=cold[:2])))


def test_a_recent_purchase_leaves_cross_sell(subject: Subject) -> None:
    first = ids(subject.model.suggest(subject.client, "cross_sell", 5))
    assert first
    after = ids(subject.model.suggest(subject.client, "cross_sell", 5, recent_purchases=[first[0]]))
    assert after and first[0] not in after


@pytest.mark.parametrize("kind", KINDS)
def test_revenue_orders_priced_suggestions_by_expected_revenue_and_unpriced_after(subject: Subject, kind: str) -> None:
    got = subject.model.suggest(subject.client, kind, 5, objective="revenue")
    assert got, kind
    assert_well_formed(subject.model, got, 5, f"{kind} by revenue")
    for s in got:
        assert BREAKDOWN <= set(s["breakdown"]), (kind, s)
    values = [s["breakdown"]["expected_revenue"] for s in got]
    priced = [v for v in values if v is not None]
    assert values[: len(priced)] == priced and priced == sorted(priced, reverse=True), (kind, values)


def test_objectives_are_checked(subject: Subject) -> None:
    with pytest.raises(ValueError):
        subject.model.suggest(subject.client, "cross_sell", 3, objective="turnover")
    with pytest.raises(ObjectiveUnavailable):  # none of the implementations here has margins
        subject.model.suggest(subject.client, "cross_sell", 3, objective="margin")


# ---- the rest of the protocol ----

def test_segment_has_its_keys_and_none_for_an_unknown_client(subject: Subject) -> None:
    known = subject.model.segment(subject.client)
    assert set(known) == SEGMENT_KEYS
    assert known["abc"] in {"A", "B", "C"} and known["activity"] in {"active", "lapsing", "inactive"}
    assert subject.model.segment(UNKNOWN_CLIENT) == dict.fromkeys(SEGMENT_KEYS)


def test_knows_item(subject: Subject) -> None:
    assert all(subject.model.knows_item(item) for item in subject.items)
    assert subject.model.knows_item(UNKNOWN_ITEM) is False


def test_cart_completes_reports_unknown_items_and_offers_bundles(subject: Subject) -> None:
    basket = list(subject.basket)
    for client in (subject.client, None):
        answer = subject.model.cart([*basket, UNKNOWN_ITEM], client, 3)
        assert set(answer) == {"complete", "upsell", "bundles", "unknown_items"}
        assert answer["unknown_items"] == [UNKNOWN_ITEM]
        assert answer["complete"], client
        assert_well_formed(subject.model, answer["complete"], 3, "cart complete")
        assert_well_formed(subject.model, answer["upsell"], 3, "cart upsell")
        assert not set(basket) & set(ids(answer["complete"])), "never complete a basket with what is in it"
        assert answer["bundles"], client
        for bundle in answer["bundles"]:
            assert bundle["items"] and all(subject.model.knows_item(i) for i in bundle["items"]), bundle
            assert math.isfinite(bundle["score"]) and bundle["bundle_price"] <= bundle["price"], bundle
    assert subject.model.cart(basket, None, 3)["unknown_items"] == []


def test_similar_never_returns_the_item_itself_and_refuses_an_unknown_item(subject: Subject) -> None:
    for item in subject.items:
        got = subject.model.similar(item, 3)
        assert got, item
        assert item not in ids(got)
        assert_well_formed(subject.model, got, 3, f"similar to {item}")
    with pytest.raises(KeyError):
        subject.model.similar(UNKNOWN_ITEM)


# ---- the checks above can fail: each catches a double broken in its own way ----

class IgnoresTheLimit(CatalogueRecommender):
    def suggest(self, client_id: str, kind: str, limit: int = 10, **kwargs: Any) -> list[Any]:
        return super().suggest(client_id, kind, limit + 3, **kwargs)


class AnswersNothing(CatalogueRecommender):
    def suggest(self, client_id: str, kind: str, limit: int = 10, **kwargs: Any) -> list[Any]:
        return [] if kind == "replenishment" else super().suggest(client_id, kind, limit, **kwargs)


class NaNScores(CatalogueRecommender):
    def suggest(self, client_id: str, kind: str, limit: int = 10, **kwargs: Any) -> list[Any]:
        return [{**s, "score": math.nan} for s in super().suggest(client_id, kind, limit, **kwargs)]


class Duplicates(CatalogueRecommender):
    def suggest(self, client_id: str, kind: str, limit: int = 10, **kwargs: Any) -> list[Any]:
        answer = super().suggest(client_id, kind, limit, **kwargs)
        return (answer[:1] * 2)[:limit]


class IgnoresExclusions(CatalogueRecommender):
    def suggest(self, client_id: str, kind: str, limit: int = 10, **kwargs: Any) -> list[Any]:
        return super().suggest(client_id, kind, limit, **{**kwargs, "exclude": ()})


class NoColdStart(CatalogueRecommender):
    def suggest(self, client_id: str, kind: str, limit: int = 10, **kwargs: Any) -> list[Any]:
        return super().suggest(client_id, kind, limit, **kwargs) if self.knows_client(client_id) else []


class AcceptsAnyKind(CatalogueRecommender):
    def suggest(self, client_id: str, kind: str, limit: int = 10, **kwargs: Any) -> list[Any]:
        return super().suggest(client_id, kind if kind in KINDS else "cross_sell", limit, **kwargs)


class KeepsTheRecentPurchase(CatalogueRecommender):
    def suggest(self, client_id: str, kind: str, limit: int = 10, **kwargs: Any) -> list[Any]:
        return super().suggest(client_id, kind, limit, **{**kwargs, "recent_purchases": ()})


class KnowsEveryone(CatalogueRecommender):
    def knows_client(self, client_id: str) -> bool:
        return True


class VagueSegment(CatalogueRecommender):
    def segment(self, client_id: str) -> dict[str, Any]:
        return {"abc": "A"}


class SilentAboutUnknownItems(CatalogueRecommender):
    def cart(self, items: Any, client_id: str | None = None, limit: int = 10, **kwargs: Any) -> dict[str, Any]:
        return {**super().cart(items, client_id, limit, **kwargs), "unknown_items": []}


class SimilarToItself(CatalogueRecommender):
    def similar(self, item_id: str, limit: int = 10) -> list[Any]:
        return [self._suggestion(item_id, "similar", 1.0, "itself"), *super().similar(item_id, limit - 1)]


class SimilarToAnything(CatalogueRecommender):
    def similar(self, item_id: str, limit: int = 10) -> list[Any]:
        return super().similar(item_id if self.knows_item(item_id) else "coffee", limit)


class RevenueBackwards(CatalogueRecommender):
    def suggest(self, client_id: str, kind: str, limit: int = 10, **kwargs: Any) -> list[Any]:
        answer = super().suggest(client_id, kind, limit, **kwargs)
        return answer[::-1] if kwargs.get("objective") == "revenue" else answer


class MarginWithoutMargins(CatalogueRecommender):
    def suggest(self, client_id: str, kind: str, limit: int = 10, **kwargs: Any) -> list[Any]:
        if kwargs.get("objective") == "margin":
            kwargs["objective"] = "revenue"
        return super().suggest(client_id, kind, limit, **kwargs)


class NotAModel:
    """Has the data but not the methods."""

    meta = {"trained_at": "2024-01-01T00:00:00+00:00"}


BROKEN: list[tuple[type, Callable[..., None]]] = [
    (IgnoresTheLimit, test_every_kind_answers_a_known_client_within_the_limit),
    (AnswersNothing, test_every_kind_answers_a_known_client_within_the_limit),
    (NaNScores, test_every_kind_answers_a_known_client_within_the_limit),
    (Duplicates, test_every_kind_answers_a_known_client_within_the_limit),
    (IgnoresExclusions, test_excluded_ids_never_come_back),
    (NoColdStart, test_an_unknown_client_gets_cold_start_cross_sell),
    (KnowsEveryone, test_an_unknown_client_gets_cold_start_cross_sell),
    (AcceptsAnyKind, test_an_unknown_kind_is_a_value_error),
    (KeepsTheRecentPurchase, test_a_recent_purchase_leaves_cross_sell),
    (VagueSegment, test_segment_has_its_keys_and_none_for_an_unknown_client),
    (SilentAboutUnknownItems, test_cart_completes_reports_unknown_items_and_offers_bundles),
    (SimilarToItself, test_similar_never_returns_the_item_itself_and_refuses_an_unknown_item),
    (SimilarToAnything, test_similar_never_returns_the_item_itself_and_refuses_an_unknown_item),
    (RevenueBackwards, test_revenue_orders_priced_suggestions_by_expected_revenue_and_unpriced_after),
    (MarginWithoutMargins, test_objectives_are_checked),
    (NotAModel, test_implements_the_protocol),
]


@pytest.mark.parametrize(("broken", "check"), BROKEN, ids=[cls.__name__ for cls, _ in BROKEN])
def test_the_contract_catches_a_broken_model(broken: type, check: Callable[..., None]) -> None:
    subject = Subject("broken", broken(), client="c1", items=("coffee", "mug", "descaling"), basket=("coffee",))
    arguments = {"kind": "replenishment", "request": None}
    wanted = {name: arguments[name] for name in inspect.signature(check).parameters if name in arguments}
    with pytest.raises((AssertionError, pytest.fail.Exception)):  # pytest.raises inside a check: DID NOT RAISE
        check(subject, **wanted)


# ---- item groups (optional: scoring.contract.ItemGroups) ----

def test_item_groups_name_the_group_suggestions_carry(subject: Subject) -> None:
    """The effect report attributes by the group `groups_of` names: it must be the suggestions' own."""
    mapping = groups_of(subject.model)
    if subject.name.startswith("recommender"):
        assert mapping is not None
    if mapping is None:
        return
    answer = [s for kind in KINDS for s in subject.model.suggest(subject.client, kind, 10)]
    grouped = [s for s in answer if "product_group" in s and not s.get("items")]
    assert grouped
    assert mapping([s["item_id"] for s in grouped]) == [s["product_group"] for s in grouped]
    assert mapping([UNKNOWN_ITEM]) == [None]
