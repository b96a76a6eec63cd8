"""The /app blueprint: its security policy and the gate every screen passes.

Pages are server-rendered Jinja templates with a little plain JS from /app/static; every answer
carries a strict Content-Security-Policy (no inline script or style). The gate opens a screen only
to a signed-in session (`sessions`), checks the CSRF token of every POST, and keeps admin screens
for admin sessions; with AUTH_DISABLED it opens a demo session instead, and every page says so.
The demo shop and the sign-in page are open to anyone.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, after_this_request, redirect, request, url_for

from service.pages import sessions
from service.problems import Problem
from service.runtime import runtime

#: The policy of every /app page: what works under it works on a shop with the same policy.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
#: Screens anyone may open (the shop is a shop's page; signing in must be reachable).
OPEN = frozenset({"screens.static", "screens.demo_shop", "screens.sign_in", "screens.sign_in_post"})
#: Screens for admin sessions only.
ADMIN_ONLY = frozenset({"screens.effect_dashboard"})

screens = Blueprint("screens", __name__, url_prefix="/app", template_folder="templates",
                    static_folder="static/app", static_url_path="/static")


@screens.before_request
def _gate() -> Response | None:
    rt = runtime()
    if request.endpoint in OPEN:
        return None
    session = sessions.current_session(rt.redis, request)
    if session is None and rt.settings.auth_disabled:
        session_id, session = sessions.store_session(rt.redis, rt.settings, sessions.DEMO_WHO, "admin")

        @after_this_request
        def _cookie(response: Response) -> Response:
            sessions.set_cookie(response, rt.settings, session_id, request.is_secure)
            return response
    if session is None:
        return redirect(url_for("screens.sign_in", next=request.full_path.rstrip("?")))
    if request.endpoint in ADMIN_ONLY and session.scope != "admin":
        raise Problem(403, "forbidden", "This screen needs a session signed in with an admin key.")
    if request.method == "POST":
        sessions.check_csrf(session)
    return None


@screens.after_request
def _policy(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def page_context() -> dict[str, Any]:
    """What every /app template needs: who is signed in, their CSRF token, whether auth is off."""
    rt = runtime()
    session = sessions.current_session(rt.redis, request) if request.endpoint not in OPEN else None
    return {"auth_disabled": rt.settings.auth_disabled, "session": session}
