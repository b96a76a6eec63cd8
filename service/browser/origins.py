"""CORS: which pages may call the API from a browser, preflights, and the headers on every answer.

One list, ALLOWED_ORIGINS, for every publishable key; the service's own origin (the demo shop,
the /app screens) always may. A preflight (OPTIONS with Access-Control-Request-Method) is answered
here, before authentication: browsers never send a key with one. An origin not on the list gets a
403 problem without CORS headers, so the browser refuses to let the page read anything.
"""
from __future__ import annotations

from flask import Request, Response

from service.config import Settings
from service.problems import Problem

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Content-Type, X-API-Key, X-Client-Token, X-Request-ID"
EXPOSED_HEADERS = "X-Request-ID, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
PREFLIGHT_MAX_AGE = "600"


def own_origin(request: Request) -> str:
    return request.host_url.rstrip("/")


def origin_allowed(request: Request, settings: Settings) -> bool:
    origin = request.headers.get("Origin")
    return origin is not None and (origin in settings.allowed_origins or origin == own_origin(request))


def cors_headers(origin: str) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": EXPOSED_HEADERS}


def preflight(request: Request, settings: Settings) -> Response | None:
    """The answer to a CORS preflight, or None when `request` is not one."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return None
    if not origin_allowed(request, settings):
        raise Problem(403, "origin-not-allowed", f"The origin {request.headers.get('Origin')!r} is not in "
                      "ALLOWED_ORIGINS.", errors=[{"field": "Origin", "message": "not an allowed origin"}])
    response = Response(status=204)
    response.headers.update({"Access-Control-Allow-Origin": request.headers["Origin"],
                             "Access-Control-Allow-Methods": ALLOWED_METHODS,
                             "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                             "Access-Control-Max-Age": PREFLIGHT_MAX_AGE})
    return response


def add_cors(request: Request, response: Response, settings: Settings) -> None:
    """Every answer to a /v1 path varies by Origin; an allowed origin may read it."""
    if request.path.startswith("/v1/") or request.method == "OPTIONS":
        if "Vary" in response.headers:
            response.vary.add("Origin")
        else:  # what vary.add writes on an answer without Vary, without parsing and rewriting the header
            response.headers["Vary"] = "Origin"
    if origin_allowed(request, settings) and "Access-Control-Allow-Origin" not in response.headers:
        response.headers.update(cors_headers(request.headers["Origin"]))
