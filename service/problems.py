"""RFC 9457 problem details: every 4xx and 5xx of the service is one of these.

A problem is `application/problem+json` with type, title, status, detail and, for input
errors, `errors: [{"field", "message"}]` naming what to fix. Handlers raise `Problem`; Flask's
own HTTP errors (404, 405, 413...) and unexpected exceptions are turned into problems by the
two handlers registered in `register_error_handlers`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Request, Response, current_app, json, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

#: Problem types: slug -> (title, what it means). Their URIs point into the docs page.
PROBLEM_TYPES: dict[str, tuple[str, str]] = {
    "invalid-parameter": ("Invalid request parameter", "A path or query parameter is malformed or out of range."),
    "malformed-json": ("Malformed JSON body", "The body is not valid JSON (UTF-8)."),
    "invalid-body": ("Invalid request body", "The JSON body does not match the schema of the endpoint."),
    "unsupported-media-type": ("Unsupported media type", "Send the body as application/json."),
    "body-too-large": ("Request body too large", "The body is larger than MAX_BODY_BYTES."),
    "unknown-item": ("Unknown item", "The item is not in the catalogue of the model serving."),
    "objective-unavailable": ("Objective unavailable", "The model serving has no data for this objective "
                              "(objective=margin needs a margin column in the items it was trained on)."),
    "unauthenticated": ("Missing API key", "Send X-API-Key or Authorization: Bearer <key>."),
    "forbidden": ("Key not allowed", "The key is unknown or lacks the admin scope for this path."),
    "no-model": ("No model loaded", "No model version has been loaded yet; try again shortly."),
    "model-check-failed": ("Model version rejected", "The new version failed its checks; the last good "
                           "version keeps serving."),
    "registry-unavailable": ("Model registry unavailable", "The registry could not say which version the "
                             "alias points to; the serving model is unchanged."),
    "store-unavailable": ("Event store unavailable", "The event store (the database) is unreachable: nothing "
                          "was stored; retry (an event_id makes a retry harmless)."),
    "unknown-recommendation": ("Unknown recommendation", "No answer carried this recommendation_id."),
    "item-not-in-answer": ("Item not in that answer", "Reactions name an item the answer suggested."),
    "recommendation-expired": ("Recommendation too old", "Reactions to answers older than REACTION_MAX_AGE_DAYS "
                               "are refused."),
    "recommendation-erased": ("Recommendation erased", "The answer's client was erased after it was shown: "
                              "the answer went with the client."),
    "request-timeout": ("Request timeout", "The request did not arrive within REQUEST_READ_TIMEOUT_SECONDS."),
    "origin-not-allowed": ("Origin not allowed", "Browsers may call the API only from ALLOWED_ORIGINS (and the "
                           "service's own origin)."),
    "secret-key-in-browser": ("Secret key sent by a browser", "Secret and admin keys stay on servers; pages use a "
                              "publishable key."),
    "publishable-key-scope": ("Not open to a publishable key", "A publishable key opens cart suggestions, similar "
                              "items and shown/clicked reactions only."),
    "client-token-required": ("Client token required", "With a publishable key a cart names a client only with a "
                              "valid X-Client-Token from the shop's backend."),
    "csrf-failed": ("CSRF check failed", "A form of the /app screens came without its session's CSRF token."),
    "rate-limited": ("Too many requests", "This API key used up its RATE_LIMIT_PER_MINUTE allowance; "
                     "retry after Retry-After seconds."),
    "not-found": ("Not found", "No endpoint at this path; see /openapi.json."),
    "method-not-allowed": ("Method not allowed", "The path exists but not with this method."),
    "http-error": ("HTTP error", "A protocol-level error; the detail says which."),
    "internal-error": ("Internal error", "Something failed on our side; the request id finds it in the logs."),
}


def problem_type_uri(slug: str) -> str:
    return f"/docs#problem-{slug}"


@dataclass(eq=False)
class Problem(Exception):
    """Raise from anywhere in a request to answer with this problem."""

    status: int
    slug: str
    detail: str
    errors: list[dict[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.slug}: {self.detail}"


def problem_response(problem: Problem, req: Request | None = None) -> Response:
    """The problem as a response; `req` is the request when no request context holds it (the fast path)."""
    req = req if req is not None else request
    title = PROBLEM_TYPES.get(problem.slug, PROBLEM_TYPES["http-error"])[0]
    body: dict[str, Any] = {"type": problem_type_uri(problem.slug), "title": title, "status": problem.status,
                            "detail": problem.detail, "instance": req.path, **problem.extra}
    if problem.errors:
        body["errors"] = problem.errors
    response = current_app.response_class(json.dumps(body), status=problem.status, mimetype=PROBLEM_JSON)
    response.headers.update(problem.headers)
    return response


def field_name(location: tuple[Any, ...]) -> str:
    """("events", 3, "item_id") -> "events[3].item_id"."""
    name = ""
    for part in location:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "body"


def validation_problem(error: ValidationError, status: int, slug: str, what: str) -> Problem:
    """A pydantic error as a problem whose `errors` name each field and what is wrong with it."""
    errors = []
    for item in error.errors(include_url=False, include_context=False, include_input=False):
        message = item["msg"].removeprefix("Value error, ")
        errors.append({"field": field_name(tuple(item["loc"])), "message": message})
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return Problem(status, slug, f"Invalid {what}: {fields}.", errors=errors)


_HTTP_SLUGS = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large", 415: "unsupported-media-type"}


def http_problem(error: HTTPException, req: Request | None = None) -> Response:
    req = req if req is not None else request
    status = error.code or 500
    slug = _HTTP_SLUGS.get(status, "http-error")
    detail = error.description or error.name
    if status == 404:
        detail = f"No endpoint at {req.path}."
    elif status == 405:
        detail = f"{req.method} is not allowed on {req.path}."
    headers = {}
    allow = error.get_response().headers.get("Allow")
    if allow:
        headers["Allow"] = allow
    return problem_response(Problem(status, slug, detail, headers=headers), req)


def unexpected_problem(error: Exception, req: Request | None = None) -> Response:
    """A 500 problem for an error no handler expected; logged with its traceback (call it while handling)."""
    req = req if req is not None else request
    logger.exception("unhandled error on %s %s", req.method, req.path)
    return problem_response(Problem(500, "internal-error", "The request failed; the request id "
                                    "(X-Request-ID) finds it in the service logs."), req)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(Problem, problem_response)
    app.register_error_handler(HTTPException, http_problem)
    app.register_error_handler(Exception, unexpected_problem)
