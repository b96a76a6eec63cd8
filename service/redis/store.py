"""`RedisStore`: what the app holds, one part per idea over one shared connection.

`store.cache` (cached answers), `store.events` (event stream, recent purchases, erasure),
`store.limits` (rate-limit counters), `store.updates` (model-update notices), `store.exposures`
(answers on their way to the event store), `store.loop` (reactions' suppressions and fatigue), `store.trips` (a suggestion request's one or two
round trips); `status()` and
`close()` concern the connection itself.
"""
from __future__ import annotations

from service.config import Settings
from service.redis.cache import AnswerCache
from service.redis.core import RedisConnection
from service.redis.events import EventLog
from service.redis.exposures import ExposureBuffer
from service.redis.limits import RequestCounter
from service.redis.loop_state import LoopState
from service.redis.trips import AnswerTrips
from service.redis.updates import ModelUpdates


class RedisStore:
    """Every Redis operation of the service; each raises RedisUnavailable instead of redis errors."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connection = RedisConnection(settings)
        self.keys = self.connection.keys
        self.cache = AnswerCache(self.connection)
        self.events = EventLog(self.connection)
        self.limits = RequestCounter(self.connection)
        self.updates = ModelUpdates(self.connection)
        self.exposures = ExposureBuffer(self.connection)
        self.loop = LoopState(self.connection)
        self.trips = AnswerTrips(self.connection)

    @property
    def configured(self) -> bool:
        return self.connection.configured

    def status(self) -> str:
        """"up", "down" or "not-configured"."""
        return self.connection.status()

    def close(self) -> None:
        self.connection.close()
