"""Server-side sessions of the /app screens: sign in once with a key, never a key in JavaScript.

The session lives in Redis (`crm:<tenant>:app-session:<digest of its id>`) for APP_SESSION_TTL_SECONDS;
the browser holds only its random id in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS).
Each session carries a CSRF token that every form posting a change must send back, and the name
of who signed in, which every reaction made from the screens records. With AUTH_DISABLED a
session is opened for "local demo (AUTH_DISABLED)" on the first visit, so forms keep their CSRF
check; every page says that authentication is off.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass

from flask import Request, Response, g, request

from service.auth import key_in
from service.config import Settings
from service.problems import Problem
from service.redis.core import RedisUnavailable
from service.redis.store import RedisStore

COOKIE = "crm_app_session"
DEMO_WHO = "local demo (AUTH_DISABLED)"


@dataclass(frozen=True)
class Session:
    """Who is signed in, with which scope, and the CSRF token of their forms."""

    who: str
    scope: str  # "read" or "admin", as the key that opened it
    csrf: str


def _redis_key(redis: RedisStore, session_id: str) -> str:
    return f"crm:{redis.settings.tenant}:app-session:{hashlib.sha256(session_id.encode()).hexdigest()[:40]}"


def scope_of(key: str, settings: Settings) -> str | None:
    """"admin", "read" or None (unknown key; publishable keys do not open the screens)."""
    if settings.admin_api_keys and key_in(key, settings.admin_api_keys):
        return "admin"
    if settings.api_keys and key_in(key, settings.api_keys):
        return "read"
    return None


def who_of(name: str, key: str) -> str:
    """The name a person gave, with a digest of their key (the key itself is never stored)."""
    digest = "key:" + hashlib.sha256(key.encode()).hexdigest()[:8]
    name = " ".join(name.split())[:60]
    return f"{name} ({digest})" if name else digest


def _unavailable(error: RedisUnavailable) -> Problem:
    return Problem(503, "store-unavailable", f"Sessions of the screens live in Redis, which is unavailable ({error}).",
                   headers={"Retry-After": "5"})


def store_session(redis: RedisStore, settings: Settings, who: str, scope: str) -> tuple[str, Session]:
    """Store a new session: (its id for the cookie, the session)."""
    session_id = secrets.token_urlsafe(32)
    session = Session(who=who, scope=scope, csrf=secrets.token_urlsafe(24))
    try:
        redis.connection.run("app_session", lambda r: r.set(_redis_key(redis, session_id), json.dumps(asdict(session)),
                                                            ex=settings.app_session_ttl_seconds))
    except RedisUnavailable as error:
        raise _unavailable(error) from None
    g.app_session = session
    return session_id, session


def set_cookie(response: Response, settings: Settings, session_id: str, secure: bool) -> None:
    response.set_cookie(COOKIE, session_id, max_age=settings.app_session_ttl_seconds, httponly=True,
                        samesite="Strict", secure=secure, path="/app")


def current_session(redis: RedisStore, req: Request) -> Session | None:
    """The signed-in session of this request, or None."""
    if "app_session" in g:
        return g.app_session
    session_id = req.cookies.get(COOKIE)
    session = None
    if session_id and len(session_id) < 100:
        try:
            raw = redis.connection.run("app_session", lambda r: r.get(_redis_key(redis, session_id)))
        except RedisUnavailable as error:
            raise _unavailable(error) from None
        session = Session(**json.loads(raw)) if raw else None
    g.app_session = session
    return session


def close_session(redis: RedisStore, req: Request, response: Response) -> None:
    session_id = req.cookies.get(COOKIE)
    if session_id:
        try:
            redis.connection.run("app_session", lambda r: r.delete(_redis_key(redis, session_id)))
        except RedisUnavailable as error:
            raise _unavailable(error) from None
    response.delete_cookie(COOKIE, path="/app", httponly=True, samesite="Strict")


def check_csrf(session: Session | None) -> None:
    """Every change posted from a screen carries its session's CSRF token."""
    sent = request.form.get("csrf", "")
    if session is None or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise Problem(403, "csrf-failed", "The form's CSRF token is missing or not this session's: reload the "
                      "page and try again.", errors=[{"field": "csrf", "message": "missing or wrong"}])
