"""What a request needs besides itself: settings, the model stores, Redis and the event store."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from eventstore import EventStore
from service.config import Settings
from service.loop.assignment import CONTROL, assign
from service.loop.drain import ExposureDrain
from service.loop.recording import Serving
from service.model.arms import ModelArms
from service.model.store import LoadedModel, ModelStore
from service.problems import Problem
from service.redis.store import RedisStore


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    models: ModelStore  # the primary model (MODEL_ALIAS): control, anonymous answers and fallbacks
    redis: RedisStore
    events: EventStore
    drain: ExposureDrain
    watch: bool
    #: every alias of EXPERIMENT (the primary included); None builds one around `models`
    arms: ModelArms = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.arms is None:
            object.__setattr__(self, "arms", ModelArms(self.settings, self.models))

    def serving_model(self) -> LoadedModel:
        """The model this request uses from start to end (read once), or a 503 problem."""
        model = self.models.current
        if model is None:
            raise Problem(503, "no-model", f"No version of {self.settings.model_uri} is loaded yet.",
                          headers={"Retry-After": "5"})
        return model

    def model_for(self, subject: str | None) -> tuple[str, LoadedModel]:
        """(variant, model) for a client or visitor (`service.loop.assignment.subject_of`), read once.

        variant is "control" (the primary model; the answer is business as usual), or the alias
        whose version answers: the subject's arm, or the primary alias when that arm serves no
        version. No subject (an anonymous cart) gets the primary model and alias, never control.
        A 503 problem when the primary model is not loaded."""
        primary = self.serving_model()
        if subject is None:
            return primary.alias, primary
        settings = self.settings
        variant = assign(settings.tenant, settings.assignment_salt, subject, settings.control_share, self.arms.arms)
        if variant == CONTROL:
            return CONTROL, primary
        return self.arms.serving(variant, primary)

    def serving(self, subject: str | None) -> Serving:
        """What one request answers with, chosen once at its start."""
        variant, model = self.model_for(subject)
        return Serving(variant, model, self.redis, self.events, self.settings)


def runtime() -> Runtime:
    return current_app.extensions["crm"]
