"""What a request needs besides itself: settings, the model store, Redis and the event store."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from eventstore import EventStore
from service.config import Settings
from service.loop.assignment import CONTROL, assign
from service.loop.drain import ExposureDrain
from service.loop.recording import Serving
from service.model.store import LoadedModel, ModelStore
from service.problems import Problem
from service.redis.store import RedisStore


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    models: ModelStore
    redis: RedisStore
    events: EventStore
    drain: ExposureDrain
    watch: bool

    def serving_model(self) -> LoadedModel:
        """The model this request uses from start to end (read once), or a 503 problem."""
        model = self.models.current
        if model is None:
            raise Problem(503, "no-model", f"No version of {self.settings.model_uri} is loaded yet.",
                          headers={"Retry-After": "5"})
        return model

    def model_for(self, subject: str | None) -> tuple[str, LoadedModel]:
        """(variant, model) of a subject: `control` (answered from the primary model), or its arm.
        A request with no subject (an anonymous cart without a visitor id) gets the primary arm."""
        model = self.serving_model()
        if subject is None:
            return self.settings.model_alias, model
        variant = assign(self.settings.tenant, self.settings.assignment_salt, subject, self.settings.control_share,
                         self.settings.arms)
        return (CONTROL if variant == CONTROL else self.settings.model_alias), model

    def serving(self, subject: str | None) -> Serving:
        """What one request answers with, chosen once at its start."""
        variant, model = self.model_for(subject)
        return Serving(variant, model, self.redis, self.events, self.settings)


def runtime() -> Runtime:
    return current_app.extensions["crm"]
