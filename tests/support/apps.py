"""In-process service apps for tests: built from an environment, loaded, and stopped afterwards."""
from __future__ import annotations

from collections.abc import Callable, Iterator

from flask import Flask

from service.app import create_app
from service.config import Settings


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
