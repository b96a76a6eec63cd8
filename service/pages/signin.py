"""Signing in to the /app screens with a key (and a name that reactions record), and signing out.

The sign-in form is itself protected against cross-site posting: a random value in a short-lived
SameSite cookie must come back in the form (a session's CSRF token does not exist yet).
"""
from __future__ import annotations

import hmac
import secrets

from flask import Response, make_response, redirect, render_template, request

from service.pages import sessions
from service.pages.blueprint import page_context, screens
from service.runtime import runtime

SIGN_IN_COOKIE = "crm_app_sign_in"


def _next_path() -> str:
    """Where to go after signing in: a path of the screens only (never another site)."""
    target = request.values.get("next", "")
    return target if target.startswith("/app/") and not target.startswith("//") else "/app/clients"


def _form(error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = make_response(render_template("sign_in.html", token=token, next=_next_path(), error=error,
                                             **page_context()), status)
    response.set_cookie(SIGN_IN_COOKIE, token, max_age=900, httponly=True, samesite="Strict",
                        secure=request.is_secure, path="/app")
    return response


@screens.get("/sign-in")
def sign_in() -> Response:
    return _form()


@screens.post("/sign-in")
def sign_in_post() -> Response:
    rt = runtime()
    sent, expected = request.form.get("csrf", ""), request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _form("The form expired: try again.", 403)
    key = request.form.get("key", "").strip()
    scope = sessions.scope_of(key, rt.settings) if key else None
    if scope is None:
        return _form("That key does not open the screens (publishable keys do not).", 403)
    session_id, _ = sessions.store_session(rt.redis, rt.settings, sessions.who_of(request.form.get("name", ""), key),
                                           scope)
    response = redirect(_next_path(), 303)
    sessions.set_cookie(response, rt.settings, session_id, request.is_secure)
    response.delete_cookie(SIGN_IN_COOKIE, path="/app")
    return response


@screens.post("/sign-out")
def sign_out() -> Response:
    response = redirect("/app/sign-in", 303)
    sessions.close_session(runtime().redis, request, response)
    return response
