"""The business objective through the HTTP API: objective=revenue|margin and explain=true, with
the real scoring model (fitted on the small shop) installed in the app, and real Redis for the cache.

What can go wrong between the model and the client: the query not reaching `suggest`, margin on
a model without margins answered with 500 or silently by relevance, the breakdown leaking into
every answer (or never shown), and a cached relevance answer served for a revenue request.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from support.factories import SHOP_CONFIG, make_shop

from scoring.recommender import Recommender
from service.app import create_app
from service.config import Settings
from training.context import TrainContext
from training.fit import fit_recommender

READ_KEY = "read-key-0123456789"
READ = {"X-API-Key": READ_KEY}
CLIENT = "c07"


@pytest.fixture(scope="module")
def shop_model() -> Recommender:
    tx, items, packages = make_shop()
    return fit_recommender(TrainContext.build(tx, items, packages), SHOP_CONFIG)


@pytest.fixture(scope="module")
def margin_model(shop_model: Recommender) -> Recommender:
    """The same model with a margin on every priced item: a third of its price, the printer 40 %."""
    state = copy.copy(shop_model.state)
    state.item_margin = (state.item_price / 3).astype(np.float32)
    state.item_margin[shop_model._item_pos["printer"]] = 40.0
    return Recommender(state)


@pytest.fixture()
def make_app(tmp_path: Path) -> Callable[..., Flask]:
    def make(recommender: Any, **env: str) -> Flask:
        settings = Settings.from_env({"API_KEYS": READ_KEY, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db",
                                      "MODEL_CACHE_DIR": str(tmp_path / "model-cache"), "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db",
                                      "SERVICE_STATE_DIR": str(tmp_path / "state"), **env})
        app = create_app(settings, watch=False)
        app.extensions["crm"].models.install(recommender, "3")
        return app

    return make


def suggestions(app: Flask, query: str) -> tuple[int, dict[str, Any], str]:
    response = app.test_client().get(f"/v1/clients/{CLIENT}/suggestions?{query}", headers=READ)
    return response.status_code, response.get_json(force=True), response.headers.get("X-Cache", "")


def test_revenue_ranks_by_expected_revenue_from_the_kinds_own_pool(make_app: Callable[..., Flask],
                                                                    shop_model: Recommender) -> None:
    app = make_app(shop_model)
    status, relevance, _ = suggestions(app, "kind=cross_sell&limit=9")
    assert status == 200 and relevance["objective"] == "relevance"
    status, revenue, _ = suggestions(app, "kind=cross_sell&limit=3&objective=revenue&explain=true")
    assert status == 200 and revenue["objective"] == "revenue"
    got = revenue["suggestions"]
    assert {s["item_id"] for s in got} <= {s["item_id"] for s in relevance["suggestions"]}
    assert got[0]["item_id"] == "printer" != relevance["suggestions"][0]["item_id"]  # 100.00 beats a 2.00 tea
    values = [s["breakdown"]["expected_revenue"] for s in got]
    assert values == sorted(values, reverse=True)


def test_margin_on_a_model_without_margins_is_a_409_problem_naming_objective(make_app: Callable[..., Flask],
                                                                              shop_model: Recommender) -> None:
    for kind in ("cross_sell", "all"):
        response = make_app(shop_model).test_client().get(
            f"/v1/clients/{CLIENT}/suggestions?kind={kind}&objective=margin", headers=READ)
        assert response.status_code == 409 and response.mimetype == "application/problem+json"
        body = response.get_json(force=True)
        assert body["type"].endswith("objective-unavailable") and "margin" in body["detail"]
        assert [e["field"] for e in body["errors"]] == ["objective"]


def test_margin_ranks_by_expected_margin_when_the_model_has_margins(make_app: Callable[..., Flask],
                                                                    margin_model: Recommender) -> None:
    status, body, _ = suggestions(make_app(margin_model), "kind=cross_sell&limit=3&objective=margin&explain=true")
    assert status == 200
    margins = [s["breakdown"]["expected_margin"] for s in body["suggestions"]]
    assert body["suggestions"][0]["item_id"] == "printer" and margins == sorted(margins, reverse=True)


@pytest.mark.parametrize(("query", "field"), [("objective=profit", "objective"), ("explain=yes", "explain"),
                                              ("explain=1", "explain")])
def test_bad_objective_or_explain_is_a_400_problem_naming_it(make_app: Callable[..., Flask],
                                                             shop_model: Recommender, query: str, field: str) -> None:
    status, body, _ = suggestions(make_app(shop_model), f"kind=cross_sell&{query}")
    assert status == 400 and field in [e["field"] for e in body["errors"]], body


def test_explain_true_adds_the_breakdown_and_without_it_there_is_none(make_app: Callable[..., Flask],
                                                                      shop_model: Recommender) -> None:
    app = make_app(shop_model)
    _, plain, _ = suggestions(app, "kind=all&limit=3")
    assert all("breakdown" not in s for group in plain["suggestions"].values() for s in group)
    _, explained, _ = suggestions(app, "kind=all&limit=3&explain=true")
    shown = [s for group in explained["suggestions"].values() for s in group]
    assert shown
    for s in shown:
        b = s["breakdown"]
        assert {"relevance", "probability", "probability_source", "expected_revenue"} <= set(b), s
        assert b["relevance"] == s["score"] and "expected_margin" not in b  # this model has no margins
        if s["price"] and b["probability"] is not None:
            assert b["expected_revenue"] == pytest.approx(b["probability"] * s["price"], rel=0.01, abs=1e-6)


def test_the_cache_keeps_objectives_and_explain_apart(make_app: Callable[..., Flask], shop_model: Recommender,
                                                      redis_url: str) -> None:
    app = make_app(shop_model, REDIS_URL=redis_url)
    first = suggestions(app, "kind=cross_sell&limit=3")
    assert first[2] == "miss" and suggestions(app, "kind=cross_sell&limit=3")[2] == "hit"
    revenue = suggestions(app, "kind=cross_sell&limit=3&objective=revenue")
    assert revenue[2] == "miss" and revenue[1]["suggestions"] != first[1]["suggestions"]
    explained = suggestions(app, "kind=cross_sell&limit=3&explain=true")
    assert explained[2] == "miss" and "breakdown" in explained[1]["suggestions"][0]


def test_openapi_lists_objective_explain_and_the_breakdown(make_app: Callable[..., Flask],
                                                           shop_model: Recommender) -> None:
    spec = make_app(shop_model).test_client().get("/openapi.json").get_json()
    operation = spec["paths"]["/v1/clients/{client_id}/suggestions"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["objective"]["schema"]["enum"] == ["relevance", "revenue", "margin"]
    assert params["objective"]["schema"]["default"] == "relevance"
    assert params["explain"]["schema"]["type"] == "boolean"
    assert "409" in operation["responses"]
    breakdown = spec["components"]["schemas"]["ScoreBreakdown"]["properties"]
    assert {"relevance", "probability", "probability_source", "expected_revenue", "expected_margin"} <= set(breakdown)
    assert "breakdown" in spec["components"]["schemas"]["Suggestion"]["properties"]
