"""Operations endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document and docs."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from service.metrics import exposition
from service.openapi import Endpoint, api_route, build_spec, render_docs
from service.problems import Problem
from service.runtime import runtime
from service.schemas import Health, Ready

ops = Blueprint("ops", __name__)


def _spec() -> dict:
    spec = current_app.extensions.get("crm_openapi")
    if spec is None:
        spec = current_app.extensions["crm_openapi"] = build_spec(current_app, runtime().settings)
    return spec


@api_route(ops, "/healthz", "GET", Endpoint(summary="The process is alive", tag="operations", auth="none",
                                            response=Health))
def healthz() -> Response:
    return jsonify({"status": "ok"})


@api_route(ops, "/readyz", "GET", Endpoint(summary="A model is loaded (which version, from where; each arm's); Redis and the event store",
                                           tag="operations", auth="none", response=Ready, errors=(503,)))
def readyz() -> Response:
    rt = runtime()
    model = rt.models.current
    if model is None:
        raise Problem(503, "no-model", f"No version of {rt.settings.model_uri} is loaded yet.",
                      headers={"Retry-After": "5"}, extra={"redis": rt.redis.status()})
    return jsonify({"status": "ready", "model": model.info(), "arms": rt.arms.describe(), "redis": rt.redis.status(),
                    "event_store": rt.events.status()})


@api_route(ops, "/metrics", "GET", Endpoint(summary="Prometheus metrics", tag="operations", auth="none",
                                            extra_responses={}))
def metrics() -> Response:
    body, content_type = exposition()
    return Response(body, content_type=content_type)


@api_route(ops, "/openapi.json", "GET", Endpoint(summary="This API as OpenAPI 3.1", tag="operations",
                                                 auth="none"))
def openapi() -> Response:
    return jsonify(_spec())


@api_route(ops, "/docs", "GET", Endpoint(summary="This API as a page to read", tag="operations", auth="none"))
def docs() -> Response:
    return Response(render_docs(_spec()), mimetype="text/html")
