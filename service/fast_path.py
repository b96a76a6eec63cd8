"""A thin WSGI dispatcher in front of Flask for the hot endpoints (issue 16).

Flask spends most of a cache hit's time on its own machinery: the request context, URL
matching over every rule, the hook chains, signals. This dispatcher recognises `GET /healthz`,
`GET /v1/clients/<id>/suggestions`, `GET /v1/items/<id>/similar` and
`POST /v1/cart/suggestions` by their exact path and method, pushes only the app context (so
`g`, `current_app` and the logs' request id work as in a request) and runs the very functions
Flask's hooks and views run (`service.hooks`, `service.api.answer_*`, `service.ops.healthz`,
`service.problems`): the same checks, answers, problems, headers, metrics and access log.

Everything else goes to Flask unchanged: other paths and methods (HEAD and OPTIONS included, as
Flask answers those itself), a SCRIPT_NAME, a path that is not plain ASCII (Flask decodes it).
FAST_PATH=false leaves Flask alone in front (`service.app`).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from service import api, ops
from service.hooks import begin, finish, gate
from service.openapi import Endpoint, endpoint_of
from service.problems import Problem, http_problem, problem_response, unexpected_problem
from service.runtime import Runtime

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_SEGMENT = "([^/]+)"  # werkzeug's default converter: one path segment


class _Route:
    """One hot endpoint: its Flask rule (for the metrics' label and `request.endpoint`) and its work."""

    def __init__(self, app: Flask, endpoint: str, method: str, pattern: str,
                 handle: Callable[..., Response]) -> None:
        self.rule = next(rule for rule in app.url_map.iter_rules(endpoint))
        self.names = tuple(re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", self.rule.rule))  # in path order
        self.method = method
        self.pattern = re.compile(pattern)
        self.api: Endpoint | None = endpoint_of(app.view_functions[endpoint])
        self.handle = handle


class FastPath:
    """WSGI middleware: the hot endpoints answered here, every other request by `fallback` (Flask)."""

    def __init__(self, app: Flask, fallback: WSGIApp) -> None:
        self.app = app
        self.fallback = fallback
        self.routes = {
            "/healthz": _Route(app, "ops.healthz", "GET", r"/healthz", lambda req, rt: ops.healthz()),
            "/v1/cart/suggestions": _Route(app, "v1.cart_suggestions", "POST", r"/v1/cart/suggestions",
                                           api.answer_cart),
            "clients": _Route(app, "v1.client_suggestions", "GET", rf"/v1/clients/{_SEGMENT}/suggestions",
                              api.answer_client),
            "items": _Route(app, "v1.similar_items", "GET", rf"/v1/items/{_SEGMENT}/similar", api.answer_similar),
        }

    def _match(self, environ: dict[str, Any]) -> tuple[_Route, tuple[str, ...]] | None:
        path = environ.get("PATH_INFO", "")
        if environ.get("SCRIPT_NAME") or not path.isascii():
            return None
        route = self.routes.get(path) or self.routes.get(path.split("/", 3)[2] if path.startswith("/v1/") else "")
        if route is None or environ.get("REQUEST_METHOD") != route.method:
            return None
        found = route.pattern.fullmatch(path)
        return (route, found.groups()) if found is not None else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        matched = self._match(environ)
        if matched is None:
            return self.fallback(environ, start_response)
        route, args = matched
        app = self.app
        rt: Runtime = app.extensions["crm"]
        request = app.request_class(environ)
        request.url_rule = route.rule
        request.view_args = dict(zip(route.names, args, strict=True))
        with app.app_context():
            try:
                begin(request, rt)
                response = gate(request, rt, route.api) or route.handle(request, rt, *args)
            except Problem as problem:
                response = problem_response(problem, request)
            except HTTPException as error:
                response = http_problem(error, request)
            except Exception as error:  # noqa: BLE001 - answered as Flask answers it: a logged 500 problem
                response = unexpected_problem(error, request)
            response = finish(request, response, rt, route.rule.rule)
            try:
                return response(environ, start_response)
            finally:
                request.close()
