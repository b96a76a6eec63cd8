"""What a request needs besides itself: settings, the model store and the Redis store of its app."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from service.config import Settings
from service.model.store import LoadedModel, ModelStore
from service.problems import Problem
from service.redis.store import RedisStore


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    models: ModelStore
    redis: RedisStore
    watch: bool

    def serving_model(self) -> LoadedModel:
        """The model this request uses from start to end (read once), or a 503 problem."""
        model = self.models.current
        if model is None:
            raise Problem(503, "no-model", f"No version of {self.settings.model_uri} is loaded yet.",
                          headers={"Retry-After": "5"})
        return model


def runtime() -> Runtime:
    return current_app.extensions["crm"]
