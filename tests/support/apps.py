"""In-process service apps for tests: built from an environment, loaded, and stopped afterwards."""
from __future__ import annotations

from collections.abc import Callable, Iterator

from flask import Flask
from flask.testing import FlaskClient

from service.app import create_app
from service.config import Settings
from support.service_model_double import CatalogueRecommender


def app_maker(env: dict[str, str], load: Callable[[Flask], object]) -> Iterator[Callable[..., Flask]]:
    """A fixture's body: yields `make(watch=False, refresh=True, **overrides)`, which builds an app
    on `env` and, unless it watches the registry itself, loads its model with `load(app)`; every
    app made is stopped (watchers of every arm, Redis, the event store) when the test ends."""
    apps: list[Flask] = []

    def make(watch: bool = False, refresh: bool = True, **overrides: str) -> Flask:
        app = create_app(Settings.from_env({**env, **overrides}), watch=watch)
        apps.append(app)
        if refresh and not watch:
            load(app)
        return app

    yield make
    for app in apps:
        runtime = app.extensions["crm"]
        runtime.arms.stop()  # the primary alias's store is one of the arms
        runtime.redis.close()
        runtime.events.close()


def double_clients(env: dict[str, str]) -> Iterator[Callable[..., FlaskClient]]:
    """A fixture's body: yields `make(**overrides)`, a test client of an app on `env` serving the catalogue
    double (support/service_model_double.py) as version 7; every app made is stopped when the test ends."""
    makers = app_maker(env, lambda app: app.extensions["crm"].models.install(CatalogueRecommender(), "7"))
    make = next(makers)
    try:
        yield lambda **overrides: make(**overrides).test_client()
    finally:
        next(makers, None)
