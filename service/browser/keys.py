"""What a key may do when a browser sends it.

A publishable key (PUBLISHABLE_KEYS) is public by design: it sits in the shop's HTML. So it opens
only cart suggestions, similar items and the `shown`/`clicked` reactions, only from an allowed
origin, is rate-limited per visitor (address) on top of the per-key limit, and names a client
only with a client token from the shop's backend (`client_token`). A secret or admin key sent by
a page of another origin is refused: it would have leaked to every visitor of that page (the
service's own pages, /docs/interactive, may send one a person typed in).
"""
from __future__ import annotations

from typing import Any

from flask import Request
from werkzeug.exceptions import ClientDisconnected

from service.auth import key_in, presented_key
from service.browser.client_token import InvalidClientToken, verify_client_token
from service.browser.origins import origin_allowed, own_origin
from service.config import Settings
from service.metrics import RATE_LIMIT_FAIL_OPEN
from service.problems import Problem
from service.rate_limit import identity_digest
from service.redis.core import RedisUnavailable
from service.redis.store import RedisStore

#: Flask endpoints a publishable key opens.
PUBLISHABLE_ENDPOINTS = frozenset({"v1.cart_suggestions", "v1.similar_items", "loop.post_reaction"})
PUBLISHABLE_REACTIONS = frozenset({"shown", "clicked"})
CLIENT_TOKEN_HEADER = "X-Client-Token"


def is_publishable(key: str | None, settings: Settings) -> bool:
    return key is not None and bool(settings.publishable_keys) and key_in(key, settings.publishable_keys)


def admit(request: Request, settings: Settings, redis: RedisStore) -> bool:
    """True when a publishable key has opened this request (the caller then skips `authorize`);
    raise a 403/429 problem when a browser may not make it; False to authorize as usual."""
    key = presented_key(request)
    origin = request.headers.get("Origin")
    if not is_publishable(key, settings):
        # the own origin is built only when there is an Origin to compare (host_url costs a server's request)
        if origin is not None and key is not None and origin != own_origin(request) \
                and key_in(key, settings.read_keys):
            raise Problem(403, "secret-key-in-browser", "Secret and admin keys are refused from a browser (the "
                          "request has an Origin): keep them on servers, and give pages a publishable key.",
                          errors=[{"field": "X-API-Key", "message": "a secret key sent by a browser"}])
        return False
    if request.endpoint not in PUBLISHABLE_ENDPOINTS:
        raise Problem(403, "publishable-key-scope", "A publishable key opens only POST /v1/cart/suggestions, "
                      "GET /v1/items/{item_id}/similar and shown/clicked reactions.")
    if not origin_allowed(request, settings):
        raise Problem(403, "origin-not-allowed", f"A publishable key answers only to ALLOWED_ORIGINS, not to "
                      f"{origin!r}.", errors=[{"field": "Origin", "message": "not an allowed origin"}])
    _count_visitor(request, settings, redis, key)
    body = _body(request) if request.method == "POST" else None
    if request.endpoint == "loop.post_reaction" and isinstance(body, dict) \
            and body.get("reaction") not in PUBLISHABLE_REACTIONS:
        raise Problem(403, "publishable-key-scope", "A publishable key may post only shown and clicked reactions.",
                      errors=[{"field": "reaction", "message": "shown or clicked with a publishable key"}])
    if request.endpoint == "v1.cart_suggestions" and isinstance(body, dict) and body.get("client_id") is not None:
        _check_client_token(request, settings, str(body["client_id"]))
    return True


def _body(request: Request) -> Any:
    """The JSON body, read once and cached for the handler (which reports malformed JSON itself)."""
    if request.mimetype != "application/json":
        return None
    try:
        return request.get_json(silent=True, cache=True)
    except (OSError, ClientDisconnected):
        raise Problem(408, "request-timeout", "The body did not arrive in time.",
                      headers={"Connection": "close"}) from None


def _check_client_token(request: Request, settings: Settings, client_id: str) -> None:
    token = request.headers.get(CLIENT_TOKEN_HEADER)
    if not settings.widget_token_secret or not token:
        raise Problem(403, "client-token-required", "With a publishable key a cart names a client_id only with a "
                      "client token from the shop's backend (X-Client-Token); omit client_id for an anonymous cart.",
                      errors=[{"field": "client_id", "message": "needs an X-Client-Token for this client"}])
    try:
        verify_client_token(settings.widget_token_secret, token, client_id, settings.widget_token_max_age_seconds)
    except InvalidClientToken as error:
        raise Problem(403, "client-token-required", f"The client token is not valid: {error}.",
                      errors=[{"field": CLIENT_TOKEN_HEADER, "message": str(error)}]) from None


def _count_visitor(request: Request, settings: Settings, redis: RedisStore, key: str | None) -> None:
    """The per-visitor limit: one counter per key and address (fail open when Redis is down)."""
    limit = settings.visitor_rate_limit_per_minute
    if limit <= 0 or not redis.configured:
        return
    window = settings.rate_limit_window_seconds
    allowance = max(1, round(limit * window / 60))
    counter = redis.keys.rate("visitor:" + identity_digest(f"{key}|{request.remote_addr}", None))
    try:
        count, seconds_left = redis.limits.count_request(counter, window)
    except RedisUnavailable:
        RATE_LIMIT_FAIL_OPEN.inc()
        return
    if count > allowance:
        raise Problem(429, "rate-limited", f"This visitor made more than {allowance} requests in {window} s; "
                      f"retry in {seconds_left} s.", headers={"Retry-After": str(seconds_left)})
