"""API keys: X-API-Key or Authorization: Bearer on every /v1 path.

Read keys (API_KEYS, and ADMIN_API_KEYS too) open suggestions and events; only admin keys open
reload and erasure. A /v1 path that matches no endpoint (404, 405) asks for a read key too, so
an anonymous caller learns nothing about which paths exist. Keys are compared in constant time
and never logged. AUTH_DISABLED=true opens everything: an explicit choice for a local demo.
"""
from __future__ import annotations

import hmac

from flask import Request

from service.config import Settings
from service.openapi import Endpoint
from service.problems import Problem

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="crm-recommender"'}


def presented_key(request: Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _matches(key: str, allowed: tuple[str, ...]) -> bool:
    """Constant time per key, and every key compared: timing says nothing about which matched."""
    presented = key.encode()
    found = False
    for candidate in allowed:
        found |= hmac.compare_digest(presented, candidate.encode())
    return found


def key_in(key: str, allowed: tuple[str, ...]) -> bool:
    """Whether `key` is one of `allowed`, in constant time (for `service.browser.keys`)."""
    return _matches(key, allowed)


def _scope(request: Request, endpoint: Endpoint | None) -> str:
    if endpoint is not None:
        return endpoint.auth
    return "read" if request.path == "/v1" or request.path.startswith("/v1/") else "none"


def authorize(request: Request, endpoint: Endpoint | None, settings: Settings) -> None:
    """Raise a 401/403 problem unless the request may call `endpoint`."""
    scope = _scope(request, endpoint)
    if scope == "none" or settings.auth_disabled:
        return
    key = presented_key(request)
    if key is None:
        raise Problem(401, "unauthenticated", "This path needs an API key: send X-API-Key or "
                      "Authorization: Bearer <key>.", headers=_CHALLENGE)
    if scope == "admin":
        if _matches(key, settings.admin_api_keys):
            return
        detail = ("This path needs an admin key." if _matches(key, settings.api_keys)
                  else "The API key is not valid.")
        raise Problem(403, "forbidden", detail)
    if not _matches(key, settings.read_keys):
        raise Problem(403, "forbidden", "The API key is not valid.")
