"""The OpenAPI 3.1 document and the /docs page, generated from the routes themselves.

Every view is registered with `api_route(blueprint, rule, method, ...)`, which adds the Flask
URL rule and attaches an `Endpoint` describing it (auth scope, query, body and answer models,
error statuses). `build_spec(app)` walks the app's URL map, reads those descriptions and the
pydantic models' JSON schemas: nothing here is written by hand per endpoint, so the document
cannot drift from the code.
"""
from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from flask import Blueprint, Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from service.config import Settings
from service.openapi_examples import add_examples
from service.problems import PROBLEM_TYPES, problem_type_uri
from service.schemas import ID_PATTERN, MAX_ID_LENGTH, ProblemDetails

Scope = Literal["none", "read", "admin"]
REF = "#/components/schemas/{model}"

_ERROR_TEXT = {
    400: "Invalid parameter or malformed JSON", 401: "Missing API key", 403: "Key unknown or not allowed",
    404: "Not found", 405: "Method not allowed", 408: "The body did not arrive within REQUEST_READ_TIMEOUT_SECONDS",
    409: "Conflicts with the model (a version that failed its checks; an objective it has no data for)",
    410: "Too old: the answer reacted to is older than REACTION_MAX_AGE_DAYS", 413: "Body too large",
    415: "Body is not application/json", 422: "Body does not match the schema",
    429: "This API key made too many requests; retry after Retry-After seconds", 500: "Internal error",
    503: "Not available now",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.", "required": True,
                                "schema": {"type": "integer", "minimum": 1}}}


@dataclass(frozen=True)
class Endpoint:
    """What the OpenAPI document says about one route; attached to its view as `.api`."""

    summary: str
    tag: str
    auth: Scope = "read"
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_also_array_of: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    description: str = ""
    extra_responses: dict[int, str] = field(default_factory=dict)
    #: the handler counts the request against the rate limit in its one Redis round trip
    #: (`service.redis.trips`) instead of the request hook's own call
    rate_in_trip: bool = False


def api_route(blueprint: Blueprint, rule: str, method: str, endpoint: Endpoint) -> Callable:
    """Register a view on `blueprint` and describe it for the OpenAPI document."""

    def decorator(view: Callable) -> Callable:
        view.api = endpoint  # type: ignore[attr-defined]
        blueprint.add_url_rule(rule, view_func=view, methods=[method])
        return view

    return decorator


def endpoint_of(view: Callable | None) -> Endpoint | None:
    return getattr(view, "api", None)


def _openapi_path(rule: str) -> tuple[str, list[str]]:
    names = re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", rule)
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule), names


def _models(app: Flask) -> list[tuple[type[BaseModel], Literal["validation", "serialization"]]]:
    wanted: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (ProblemDetails, "serialization")]
    for view in app.view_functions.values():
        meta = endpoint_of(view)
        if meta is None:
            continue
        for model, mode in ((meta.body, "validation"), (meta.body_also_array_of, "validation"),
                            (meta.response, "serialization")):
            if model is not None and (model, mode) not in wanted:
                wanted.append((model, mode))  # type: ignore[arg-type]
    return wanted


def _parameters(meta: Endpoint, path_names: list[str], settings: Settings) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": ID_PATTERN}}
        for name in path_names]
    if meta.query is None:
        return params
    schema = meta.query.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        if name == "limit":
            prop["maximum"] = settings.max_limit
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        if prop.get("type") == "array":
            param.update(style="form", explode=False)
        params.append(param)
    return params


def _operation(meta: Endpoint, path_names: list[str], refs: dict, settings: Settings, op_id: str) -> dict:
    operation: dict[str, Any] = {"operationId": op_id, "summary": meta.summary, "tags": [meta.tag],
                                 "parameters": _parameters(meta, path_names, settings), "responses": {}}
    if meta.description:
        operation["description"] = meta.description
    if meta.body is not None:
        schema = refs[(meta.body, "validation")]
        if meta.body_also_array_of is not None:
            schema = {"oneOf": [schema, {"type": "array", "items": refs[(meta.body_also_array_of, "validation")],
                                         "minItems": 1, "maxItems": settings.max_events_per_batch}]}
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    ok: dict[str, Any] = {"description": "OK"}
    if meta.response is not None:
        ok["content"] = {"application/json": {"schema": refs[(meta.response, "serialization")]}}
    operation["responses"][str(meta.status)] = ok
    for status, text in meta.extra_responses.items():
        operation["responses"][str(status)] = {"description": text}
    statuses = set(meta.errors) | {500}
    if meta.body is not None:
        statuses |= {400, 408, 413, 415, 422}
    if meta.query is not None or path_names:
        statuses.add(400)
    if meta.auth != "none":
        statuses |= {401, 403, 429}
        operation["security"] = [{"ApiKeyHeader": []}, {"BearerAuth": []}]
        operation["x-required-scope"] = meta.auth
    else:
        operation["security"] = []
    problem = {"application/problem+json": {"schema": refs[(ProblemDetails, "serialization")]}}
    for status in sorted(statuses):
        answer = {"description": _ERROR_TEXT.get(status, "Error"), "content": problem}
        if status == 429:
            answer["headers"] = _RETRY_AFTER
        operation["responses"].setdefault(str(status), answer)
    return operation


def _apply_limits(schemas: dict[str, Any], settings: Settings) -> None:
    caps = {("CartRequest", "items"): settings.max_cart_items, ("EventBatch", "events"): settings.max_events_per_batch}
    for (model, prop), cap in caps.items():
        if model in schemas:
            schemas[model]["properties"][prop]["maxItems"] = cap
    for model in ("CartRequest",):
        if model in schemas:
            schemas[model]["properties"]["limit"]["maximum"] = settings.max_limit


def build_spec(app: Flask, settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of `app` that carries an `Endpoint`."""
    refs, top = models_json_schema(_models(app), ref_template=REF)
    schemas = top.get("$defs", {})
    _apply_limits(schemas, settings)
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        meta = endpoint_of(app.view_functions.get(rule.endpoint))
        if meta is None:
            continue
        path, names = _openapi_path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op_id = rule.endpoint.replace(".", "_")
            paths.setdefault(path, {})[method.lower()] = _operation(meta, names, refs, settings, op_id)
    add_examples(paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": "CRM recommender", "version": "1",
                 "description": "Cross-sell, upsell, service packages and cart suggestions for CRM systems. "
                                "Errors are RFC 9457 problem details (application/problem+json)."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "BearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
        "x-problem-types": {problem_type_uri(slug): title for slug, (title, _) in PROBLEM_TYPES.items()},
    }


def _param_rows(params: list[dict[str, Any]]) -> str:
    rows = []
    for p in params:
        schema = p.get("schema", {})
        kind = schema.get("type") or " | ".join(str(s.get("type", s.get("const", ""))) for s in schema.get("anyOf", []))
        if "enum" in schema:
            kind = " | ".join(map(str, schema["enum"]))
        rows.append(f"<li><code>{html.escape(p['name'])}</code> ({html.escape(p['in'])}, {html.escape(str(kind))}"
                    f"{', required' if p.get('required') else ''}) {html.escape(p.get('description', ''))}</li>")
    return "<ul>" + "".join(rows) + "</ul>" if rows else ""


def render_docs(spec: dict[str, Any]) -> str:
    """A small self-contained HTML page listing every endpoint of `spec` (no scripts, no CDN)."""
    parts = [f"<h1>{html.escape(spec['info']['title'])}</h1>",
             f"<p>{html.escape(spec['info']['description'])}</p>",
             '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). Try it: '
             '<a href="/docs/interactive">/docs/interactive</a>.</p>',
             "<h2>Endpoints</h2>"]
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            scope = op.get("x-required-scope", "none")
            auth = {"none": "no key", "read": "API key", "admin": "admin key"}[scope]
            statuses = ", ".join(op["responses"])
            parts.append(f'<section id="{html.escape(op["operationId"])}"><h3><code>{method.upper()} '
                         f"{html.escape(path)}</code></h3><p>{html.escape(op['summary'])} <em>({auth})</em></p>"
                         f"{'<p>' + html.escape(op['description']) + '</p>' if 'description' in op else ''}"
                         f"{_param_rows(op['parameters'])}<p>Statuses: {html.escape(statuses)}</p></section>")
    parts.append("<h2>Problem types</h2><dl>")
    for slug, (title, meaning) in PROBLEM_TYPES.items():
        parts.append(f'<dt id="problem-{slug}"><code>{html.escape(problem_type_uri(slug))}</code> '
                     f"{html.escape(title)}</dt><dd>{html.escape(meaning)}</dd>")
    parts.append("</dl>")
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
             "line-height:1.4}code{background:#f3f3f3;padding:0 .2em}section{border-top:1px solid #ddd}")
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"{html.escape(spec['info']['title'])} API</title><style>{style}</style></head><body>"
            + "".join(parts) + "</body></html>")
