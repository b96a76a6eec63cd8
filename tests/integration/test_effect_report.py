"""GET /v1/reports/effect through the Flask test client, and `python -m service report` as a user
runs it, over a real SQLite event store filled by the SYNTHETIC simulated shop.

No Redis is needed (the report reads the event store only); the model is the contract double,
installed in the app, with and without product groups.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.problems import assert_problem
from support.processes import ROOT, free_port
from support.service_model_double import CatalogueRecommender
from support.simulated_shop import Shop, ShopParams, fill_store, simulate

from eventstore import EventStore
from service.app import create_app
from service.config import Settings
from service.openapi import build_spec

READ_KEY = "read-key-0123456789"
ADMIN_KEY = "admin-key-0123456789"
SHOP = ShopParams(clients=400, arms={"champion": 0.5, "candidate": 0.5},
                  uplift={"champion": 0.3, "candidate": 0.3})
PERIOD = {"from": "2024-03-01", "to": "2024-03-28"}  # the shop's 28 days (`to` is included)


class GroupedDouble(CatalogueRecommender):
    """The contract double with product groups (scoring.contract.ItemGroups)."""

    def groups_of(self, item_ids: list[str]) -> list[str | None]:
        return Shop.group_of(list(item_ids))


@pytest.fixture(scope="module")
def shop() -> Shop:
    return simulate(7, SHOP)


@pytest.fixture()
def events_url(tmp_path: Path, shop: Shop) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with EventStore(url) as store:
        store.create_all()
        fill_store(store, "default", shop)
    yield url


def make_app(tmp_path: Path, events_url: str, recommender: Any = None) -> Flask:
    settings = Settings.from_env({"API_KEYS": READ_KEY, "ADMIN_API_KEYS": ADMIN_KEY, "EVENTS_DB_URL": events_url,
                                  "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db",
                                  "MODEL_CACHE_DIR": str(tmp_path / "model-cache"),
                                  "SERVICE_STATE_DIR": str(tmp_path / "state")})
    app = create_app(settings, watch=False)
    if recommender is not None:
        app.extensions["crm"].models.install(recommender, "7")
    return app


@pytest.fixture()
def client(tmp_path: Path, events_url: str) -> FlaskClient:
    return make_app(tmp_path, events_url, GroupedDouble()).test_client()


def test_the_report_needs_an_admin_key(client: FlaskClient) -> None:
    assert_problem(client.get("/v1/reports/effect", query_string=PERIOD), 401)
    assert_problem(client.get("/v1/reports/effect", query_string=PERIOD, headers={"X-API-Key": READ_KEY}), 403)
    assert_problem(client.get("/v1/reports/effect", query_string=PERIOD, headers={"X-API-Key": "not-a-key-at-all"}), 403)


@pytest.mark.parametrize(("query", "field"), [
    ({"from": "yesterday", "to": "2024-03-01"}, "from"),
    ({"from": "2024-02-30", "to": "2024-03-01"}, "from"),
    ({"from": "2024-03-01T10:00:00", "to": "2024-03-02"}, "from"),  # a date-time needs its offset
    ({"to": "2024-03-01"}, "from"),
    ({**PERIOD, "kind": "everything"}, "kind"),
    ({**PERIOD, "channel": "fax"}, "channel"),
])
def test_bad_dates_kinds_and_channels_are_problems(client: FlaskClient, query: dict[str, str], field: str) -> None:
    body = assert_problem(client.get("/v1/reports/effect", query_string=query, headers={"X-API-Key": ADMIN_KEY}), 400, field)
    assert body["type"] == "/docs#problem-invalid-parameter"


def test_a_period_that_ends_before_it_starts_is_empty_and_says_so(client: FlaskClient) -> None:
    """Schema-valid, so answered (the published spec cannot say `to` >= `from`), never a made-up figure."""
    response = client.get("/v1/reports/effect", query_string={"from": "2024-03-10", "to": "2024-03-01"},
                          headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 200
    report = response.get_json()
    assert report["notes"][0] == "`to` is before `from`: the period is empty"
    assert report["variants"]["control"]["clients"] == 0 and report["effects"] == []


def test_the_report_compares_every_variant_with_control_and_the_arms_with_each_other(client: FlaskClient) -> None:
    response = client.get("/v1/reports/effect", query_string=PERIOD, headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 200, response.get_data(as_text=True)
    report = response.get_json()
    assert report["period"] == {"from": "2024-03-01T00:00:00+00:00", "to": "2024-03-29T00:00:00+00:00"}
    assert set(report["variants"]) == {"control", "champion", "candidate"}
    assert sum(v["clients"] for v in report["variants"].values()) == SHOP.clients
    assert {(e["variant"], e["against"]) for e in report["effects"]} == {("champion", "control"), ("candidate", "control")}
    assert len(report["between_variants"]) == 1 and report["between_variants"][0]["method"] == "welch"
    assert set(report["by_kind"]) == {"cross_sell", "upsell"}
    assert report["attribution"]["match"] == "item or product group" and report["notes"] == []
    effect = report["effects"][0]
    assert effect["per_client"]["ci_low"] < effect["per_client"]["estimate"] < effect["per_client"]["ci_high"]
    assert effect["total"]["estimate"] == pytest.approx(effect["per_client"]["estimate"] * effect["n_treatment"], rel=1e-5)
    assert effect["mde_per_client"] > 0 and 0 <= effect["p_value"] <= 1
    assert "NaN" not in response.get_data(as_text=True)


def test_kind_and_channel_filter_the_whole_report(client: FlaskClient) -> None:
    admin = {"X-API-Key": ADMIN_KEY}
    whole = client.get("/v1/reports/effect", query_string=PERIOD, headers=admin).get_json()
    upsell = client.get("/v1/reports/effect", query_string={**PERIOD, "kind": "upsell"}, headers=admin).get_json()
    assert list(upsell["by_kind"]) == ["upsell"] and upsell["filters"]["kind"] == "upsell"
    assert upsell["variants"]["champion"]["clients"] == whole["by_kind"]["upsell"]["variants"]["champion"]["clients"]
    assert upsell["variants"]["champion"]["attributed_purchases"] < whole["variants"]["champion"]["attributed_purchases"]
    push = client.get("/v1/reports/effect", query_string={**PERIOD, "channel": "push"}, headers=admin).get_json()
    assert all(v["clients"] == 0 for v in push["variants"].values()) and push["notes"]


def test_without_product_groups_the_report_attributes_by_item_and_says_so(tmp_path: Path, events_url: str) -> None:
    app = make_app(tmp_path, events_url, CatalogueRecommender())
    report = app.test_client().get("/v1/reports/effect", query_string=PERIOD,
                                   headers={"X-API-Key": ADMIN_KEY}).get_json()
    assert report["attribution"]["match"] == "item only" and any("exact item" in n for n in report["notes"])


def test_an_unreachable_store_is_a_503_problem(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/events"
    app = make_app(tmp_path, url, GroupedDouble())
    response = app.test_client().get("/v1/reports/effect", query_string=PERIOD, headers={"X-API-Key": ADMIN_KEY})
    body = assert_problem(response, 503)
    assert body["type"] == "/docs#problem-store-unavailable" and response.headers["Retry-After"]


def test_the_openapi_document_describes_the_report(tmp_path: Path, events_url: str) -> None:
    app = make_app(tmp_path, events_url)
    operation = build_spec(app, app.extensions["crm"].settings)["paths"]["/v1/reports/effect"]["get"]
    assert operation["x-required-scope"] == "admin"
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["from"]["required"] and params["to"]["required"] and not params["kind"]["required"]
    assert {"200", "400", "401", "403", "503"} <= set(operation["responses"])


# ---- the command line ----

def run_report(tmp_path: Path, events_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONPATH=str(ROOT), EVENTS_DB_URL=events_url, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db",
               MODEL_CACHE_DIR=str(tmp_path / "model-cache"), MODEL_NAME="crm-effect-none")
    return subprocess.run([sys.executable, "-m", "service", "report", *args], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)


def test_the_command_writes_json_and_a_png_and_says_when_it_has_no_model(tmp_path: Path, events_url: str) -> None:
    done = run_report(tmp_path, events_url, "--from", "2024-03-01", "--to", "2024-03-28", "--out", "out/report.json",
                      "--plot", "out/report.png")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(report["variants"]) == {"control", "champion", "candidate"} and len(report["effects"]) == 2
    assert report["attribution"]["match"] == "item only" and report["attribution"]["groups_from"] is None
    assert any("no model reachable" in note for note in report["notes"])
    assert "item only" in done.stderr and "champion vs control" in done.stderr
    png = (tmp_path / "out" / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_the_command_refuses_bad_dates(tmp_path: Path, events_url: str) -> None:
    done = run_report(tmp_path, events_url, "--from", "2024-03-10", "--to", "2024-03-01", "--no-model")
    assert done.returncode == 2 and "--to: must not be before `from`" in done.stderr
