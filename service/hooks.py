"""What every request goes through before and after its handler, whichever way it came in.

Flask's before/after hooks (`service.app`) and the fast path (`service.fast_path`) both call
these, with the request they have and an app context pushed (`g` holds the request's id, start
time and rate-limit state): one copy of the request id, the model watcher's start, CORS, browser
keys, authentication, the rate limit, metrics and the access log.
"""
from __future__ import annotations

import logging
import random
import re
import time
import uuid
from typing import Any

from flask import Request, Response, g

from service.auth import authorize, presented_key
from service.browser import keys as browser_keys
from service.browser.origins import add_cors, preflight
from service.metrics import LATENCY, REQUESTS, child
from service.openapi import Endpoint
from service.rate_limit import check_rate_limit, pending_count
from service.runtime import Runtime

logger = logging.getLogger("service.app")  # the access log's logger name, as before the fold
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def begin(request: Request, rt: Runtime) -> None:
    """Start the clock, take the caller's request id (or make one), start the model watcher."""
    g.started = time.perf_counter()
    presented = request.headers.get("X-Request-ID", "")
    g.request_id = presented if _REQUEST_ID.match(presented) else uuid.uuid4().hex
    if rt.watch:
        rt.arms.ensure_started()  # lazily, so each gunicorn worker follows the aliases after its fork


def gate(request: Request, rt: Runtime, endpoint: Endpoint | None) -> Response | None:
    """A CORS preflight's answer, a 401/403/429 problem raised, or None: the handler may answer."""
    answered = preflight(request, rt.settings)  # before auth: a browser sends no key with one
    if answered is not None:
        return answered
    if not browser_keys.admit(request, rt.settings, rt.redis):
        authorize(request, endpoint, rt.settings)
    if endpoint is not None and endpoint.auth != "none":
        if endpoint.rate_in_trip:  # counted by the handler, in the round trip that reads its answer
            g.rate = pending_count(rt.redis, rt.settings, presented_key(request), request.remote_addr)
        else:
            g.allowance = check_rate_limit(rt.redis, rt.settings, presented_key(request), request.remote_addr)
    return None


def finish(request: Request, response: Response, rt: Runtime, rule: str) -> Response:
    """Request id, CORS and rate-limit headers; metrics labelled by `rule` (the Flask rule or
    "unmatched"); the access log line (sampled below 400)."""
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers["X-Request-ID"] = request_id
    add_cors(request, response, rt.settings)
    allowance = g.get("allowance")
    if allowance is not None:
        response.headers.update(allowance.headers())
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    status = response.status_code
    child(REQUESTS, rule, request.method, str(status)).inc()
    child(LATENCY, rule, str(status)).observe(elapsed)
    sample = rt.settings.access_log_sample
    if status >= 400 or sample >= 1.0 or random.random() < sample:
        log: dict[str, Any] = {"method": request.method, "path": request.path, "status": status,
                               "duration_ms": round(elapsed * 1000, 2)}
        if "X-Cache" in response.headers:
            log["cache"] = response.headers["X-Cache"]
        logger.info("request", extra=log)
    return response
