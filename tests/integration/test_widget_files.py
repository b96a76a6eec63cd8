"""The widget's files and the demo shop page, over the real app: size budget, SRI, versions, CSP."""
from __future__ import annotations

import base64
import gzip
import hashlib
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from support.service_model_double import CatalogueRecommender

from service.app import create_app
from service.config import Settings
from service.pages.widget import WIDGET_VERSION

#: The issue's budget for the widget script, gzipped.
WIDGET_BUDGET_BYTES = 30 * 1024


@pytest.fixture()
def client(tmp_path: Path, redis_url: str) -> FlaskClient:
    settings = Settings.from_env({
        "API_KEYS": "sk-0123456789", "PUBLISHABLE_KEYS": "pk_demo_0123", "REDIS_URL": redis_url,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db", "MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "SERVICE_STATE_DIR": str(tmp_path / "state"), "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db"})
    app = create_app(settings, watch=False)
    app.extensions["crm"].models.install(CatalogueRecommender(), "7")
    yield app.test_client()
    app.extensions["crm"].redis.close()
    app.extensions["crm"].events.close()


def test_widget_is_under_its_size_budget_and_has_its_texts(client: FlaskClient) -> None:
    script = client.get("/widget.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert len(gzip.compress(script.data, 9)) < WIDGET_BUDGET_BYTES
    assert b"__TEXTS__" not in script.data and b"Complete your basket" in script.data
    assert b"eval(" not in script.data and b"new Function" not in script.data and b"innerHTML" not in script.data


def test_versioned_widget_is_immutable_and_its_sri_hash_is_published(client: FlaskClient) -> None:
    published = client.get("/widget/integrity.json").get_json()
    versioned = client.get(published["url"])
    assert published["version"] == WIDGET_VERSION and versioned.status_code == 200
    digest = "sha384-" + base64.b64encode(hashlib.sha384(versioned.data).digest()).decode()
    assert published["integrity"] == digest
    assert "immutable" in versioned.headers["Cache-Control"]
    assert versioned.headers["Access-Control-Allow-Origin"] == "*"  # SRI across origins needs CORS
    assert client.get(f"/widget/{WIDGET_VERSION}/widget.css").status_code == 200
    assert client.get("/widget/0.0.1/widget.js").status_code == 404


def test_demo_shop_lists_real_items_under_a_strict_policy(client: FlaskClient) -> None:
    page = client.get("/app/demo-shop")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Coffee beans 500 g" in html and 'data-key="pk_demo_0123"' in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
    assert " style=" not in html and "<style" not in html
    assert "AUTH_DISABLED" not in html


def test_app_pages_say_when_authentication_is_off(tmp_path: Path, redis_url: str) -> None:
    settings = Settings.from_env({"AUTH_DISABLED": "true", "REDIS_URL": redis_url,
                                  "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db",
                                  "MODEL_CACHE_DIR": str(tmp_path / "cache"),
                                  "SERVICE_STATE_DIR": str(tmp_path / "state"),
                                  "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db"})
    app = create_app(settings, watch=False)
    try:
        assert "AUTH_DISABLED=true" in app.test_client().get("/app/demo-shop").get_data(as_text=True)
    finally:
        app.extensions["crm"].redis.close()
        app.extensions["crm"].events.close()
