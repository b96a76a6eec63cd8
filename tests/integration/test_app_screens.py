"""The /app screens over the real app and real Redis: sign-in sessions, CSRF, the client card and
its reactions (who made them is recorded), the control group, and AUTH_DISABLED said on every page."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from support.apps import double_clients
from support.problems import assert_problem

READ_KEY = "sk-read-0123456789"
ADMIN_KEY = "sk-admin-0123456789"
PK = "pk_screens_0123456789"


@pytest.fixture()
def make_client(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., FlaskClient]]:
    yield from double_clients({"API_KEYS": READ_KEY, "ADMIN_API_KEYS": ADMIN_KEY, "PUBLISHABLE_KEYS": PK, "REDIS_URL": redis_url,
                "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db", "MODEL_CACHE_DIR": str(tmp_path / "cache"),
                "SERVICE_STATE_DIR": str(tmp_path / "state"), "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db",
                "CONTROL_SHARE": "0"})


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client: FlaskClient, key: str, name: str = "Ana") -> FlaskClient:
    form = client.get("/app/sign-in").get_data(as_text=True)
    answer = client.post("/app/sign-in", data={"csrf": csrf_of(form), "key": key, "name": name,
                                               "next": "/app/clients/c1"})
    assert answer.status_code == 303 and answer.headers["Location"] == "/app/clients/c1", answer.get_data(as_text=True)
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/app" in cookie
    assert key not in cookie
    return client


def test_screens_need_a_session(make_client) -> None:
    client = make_client()
    answer = client.get("/app/clients/c1")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/app/sign-in?next=")
    assert client.get("/app/demo-shop").status_code == 200  # the shop is a shop's page


@pytest.mark.parametrize("key", [PK, "not-a-key"])
def test_publishable_and_unknown_keys_do_not_open_the_screens(make_client, key: str) -> None:
    client = make_client()
    form = client.get("/app/sign-in").get_data(as_text=True)
    refused = client.post("/app/sign-in", data={"csrf": csrf_of(form), "key": key})
    assert refused.status_code == 403 and "does not open the screens" in refused.get_data(as_text=True)


def test_sign_in_needs_its_form_token(make_client) -> None:
    client = make_client()
    client.get("/app/sign-in")
    refused = client.post("/app/sign-in", data={"csrf": "forged", "key": READ_KEY})
    assert refused.status_code == 403
    assert "crm_app_session" not in " ".join(refused.headers.getlist("Set-Cookie"))


def test_card_rejects_an_item_which_is_gone_and_records_who(make_client) -> None:
    client = sign_in(make_client(), READ_KEY, name="Ana Lopez")
    card = client.get("/app/clients/c1").get_data(as_text=True)
    assert "Segment" in card and 'id="client-value"' in card and 'id="client-tasks"' in card
    assert "the serving model has no value model" in card and "No task for this client" in card  # the double has neither
    assert "Signed in as Ana Lopez (key:" in card
    rec_id = re.search(r'name="recommendation_id" value="([^"]+)"', card).group(1)
    item = re.search(r'<li class="suggestion" data-item-id="([^"]+)"', card).group(1)
    form = {"recommendation_id": rec_id, "item_id": item, "reaction": "rejected", "reason": "too_expensive"}
    assert_problem(client.post("/app/clients/c1/reactions", data=form), 403, "csrf")
    done = client.post("/app/clients/c1/reactions", data={**form, "csrf": csrf_of(card)})
    assert done.status_code == 303
    again = client.get(done.headers["Location"]).get_data(as_text=True)
    assert f'data-item-id="{item}"' not in again and "Recorded: rejected" in again
    events = client.application.extensions["crm"].events
    assert events.reaction_actor("default", rec_id, item, "rejected").startswith("Ana Lopez (key:")
    bad = client.post("/app/clients/c1/reactions", data={**form, "reaction": "liked", "csrf": csrf_of(card)})
    assert_problem(bad, 422, "reaction")


def test_sign_out_ends_the_session(make_client) -> None:
    client = sign_in(make_client(), READ_KEY)
    card = client.get("/app/clients/c1").get_data(as_text=True)
    assert client.post("/app/sign-out", data={"csrf": csrf_of(card)}).status_code == 303
    assert client.get("/app/clients/c1").status_code == 302


def test_search_opens_a_known_client_and_says_when_unknown(make_client) -> None:
    client = sign_in(make_client(), READ_KEY)
    assert client.get("/app/clients?q=c2").headers["Location"] == "/app/clients/c2"
    unknown = client.get("/app/clients?q=nobody").get_data(as_text=True)
    assert "does not know a client nobody" in unknown


def test_control_group_clients_are_shown_as_such(make_client) -> None:
    client = sign_in(make_client(CONTROL_SHARE="1"), READ_KEY)
    assert 'id="control-group"' in client.get("/app/clients/c1").get_data(as_text=True)


def test_with_auth_disabled_screens_open_and_say_so(make_client) -> None:
    client = make_client(AUTH_DISABLED="true")
    card = client.get("/app/clients/c1")
    html = card.get_data(as_text=True)
    assert card.status_code == 200 and "AUTH_DISABLED=true" in html and "local demo" in html
    assert "HttpOnly" in card.headers["Set-Cookie"]


def test_effect_dashboard_is_for_admin_sessions_and_draws_the_report(make_client) -> None:
    reader = sign_in(make_client(), READ_KEY)
    assert_problem(reader.get("/app/effect"), 403)
    admin = sign_in(make_client(CONTROL_SHARE="0.5"), ADMIN_KEY)
    for client_id in ("c1", "c2", "c3", "x1", "x2", "x3"):  # answers in both groups, then a reaction
        admin.get(f"/app/clients/{client_id}")
    card = admin.get("/app/clients/c2").get_data(as_text=True)
    rec_id = re.search(r'name="recommendation_id" value="([^"]+)"', card)
    if rec_id:
        item = re.search(r'<li class="suggestion" data-item-id="([^"]+)"', card).group(1)
        admin.post("/app/clients/c2/reactions", data={"recommendation_id": rec_id.group(1), "item_id": item,
                                                      "reaction": "accepted", "csrf": csrf_of(card)})
    page = admin.get("/app/effect")
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html[-2000:]
    assert html.count("<svg") == 3 and 'id="variants"' in html and "control" in html
    assert_problem(admin.get("/app/effect?from=yesterday"), 400, "from")
