"""The application factory: reads like a table of contents of the service."""
from __future__ import annotations

import logging

from flask import Flask, Response, current_app, request
from flask.json.provider import DefaultJSONProvider

from eventstore import EventStore, StoreUnavailable
from service.api import v1
from service.client_state import eviction_policy_warning
from service.config import Settings
from service.crm.api import crm
from service.effect.api import effect
from service.encoding import json_default
from service.fast_path import FastPath
from service.hooks import begin, finish, gate
from service.logs import configure_logging
from service.loop.api import loop
from service.loop.drain import ExposureDrain
from service.model.arms import ModelArms
from service.model.store import ModelStore
from service.openapi import endpoint_of
from service.ops import ops
from service.pages.api_docs import api_docs
from service.pages.routes import screens
from service.pages.widget import widget
from service.problems import register_error_handlers
from service.redis.store import RedisStore
from service.runtime import Runtime, runtime

logger = logging.getLogger(__name__)


class JSONProvider(DefaultJSONProvider):
    """Answers keep the model's order of keys and accept numpy numbers."""

    sort_keys = False
    default = staticmethod(json_default)  # type: ignore[assignment]


def create_app(settings: Settings | None = None, *, model_store: ModelStore | None = None,
               redis_store: RedisStore | None = None, watch: bool = True) -> Flask:
    """Build the service. `watch=False` leaves the model watcher off (tests drive `refresh`)."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    app = Flask(__name__)
    app.json = JSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    register_extensions(app, settings, model_store, redis_store, watch)
    register_blueprints(app)
    register_request_hooks(app)
    register_error_handlers(app)
    if settings.fast_path:  # the hot endpoints skip Flask's request machinery; the rest goes through it
        app.wsgi_app = FastPath(app, app.wsgi_app)  # type: ignore[method-assign]
    if not settings.auth_disabled and not settings.read_keys:
        logger.warning("no API keys configured and AUTH_DISABLED is not true: every /v1 request is refused")
    return app


def register_extensions(app: Flask, settings: Settings, model_store: ModelStore | None,
                        redis_store: RedisStore | None, watch: bool) -> None:
    redis = redis_store or RedisStore(settings)
    subscriber = redis.updates.subscriber if redis.configured else None
    models = model_store or ModelStore(settings, subscriber=subscriber)
    arms = ModelArms(settings, models, subscriber=subscriber)  # the primary and each other alias of EXPERIMENT
    events = EventStore(settings.events_db_url)
    try:
        events.create_all()
    except StoreUnavailable as error:  # served anyway: events answer 503 until the store is back
        logger.error("event store unavailable at start", extra={"error": str(error)[:300]})
    if settings.client_state == "redis":
        warning = eviction_policy_warning(redis.connection)
        if warning:
            logger.warning(warning)
    drain = ExposureDrain(settings, events)  # started by serving processes only (gunicorn.conf, __main__)
    app.extensions["crm"] = Runtime(settings=settings, models=models, redis=redis, events=events, drain=drain,
                                    watch=watch, arms=arms)


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(ops)
    app.register_blueprint(v1)
    app.register_blueprint(loop)
    app.register_blueprint(effect)
    app.register_blueprint(widget)
    app.register_blueprint(screens)
    app.register_blueprint(api_docs)
    app.register_blueprint(crm)


def register_request_hooks(app: Flask) -> None:
    app.before_request(_start_request)
    app.after_request(_finish_request)


def _start_request() -> Response | None:
    rt = runtime()
    begin(request, rt)
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    return gate(request, rt, endpoint_of(view))


def _finish_request(response: Response) -> Response:
    return finish(request, response, runtime(), request.url_rule.rule if request.url_rule is not None else "unmatched")
