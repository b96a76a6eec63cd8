"""Writing what an answer showed: to the Redis buffer, else straight to the event store.

`Serving` is what one request chose at its start (the variant, the arm's model) with the stores
it writes to. An exposure goes to the Redis stream that `service.loop.drain` empties into the
event store; with Redis down it is written to the store in the request (slower, nothing lost);
with both down it is counted lost (crm_exposures_total{fate="lost"}) and the answer still goes
out: an exposure is telemetry, and a suggestion block must not fail for want of it.
An answer on a channel that shows it by definition (email, push) counts as shown for fatigue.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from eventstore import EventStore, StoreUnavailable
from eventstore.schema import SHOWING_CHANNELS
from service.config import Settings
from service.loop.exposures import stored_row
from service.metrics import EXPOSURES
from service.model.store import LoadedModel
from service.redis.core import RedisUnavailable
from service.redis.store import RedisStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    """One request's variant and model, and where its traces go."""

    variant: str
    model: LoadedModel
    redis: RedisStore
    events: EventStore
    settings: Settings


def record_exposure(serving: Serving, row: dict[str, Any]) -> str:
    """Record one answer's exposure; returns its fate (buffered, stored or lost)."""
    fate = "buffered"
    try:
        serving.redis.exposures.add(row)
    except RedisUnavailable:
        try:
            serving.events.add_exposures(serving.settings.tenant, [stored_row(row)])
            fate = "stored"
        except StoreUnavailable as error:
            fate = "lost"
            logger.error("exposure lost: neither Redis nor the event store took it",
                         extra={"recommendation_id": row["recommendation_id"], "error": str(error)[:200]})
    EXPOSURES.labels(fate).inc()
    if row.get("channel") in SHOWING_CHANNELS and row["items"]:
        _count_shown(serving, row)
    return fate


def _count_shown(serving: Serving, row: dict[str, Any]) -> None:
    """A campaign sent shows every item it holds: each counts towards its item's and kind's fatigue."""
    subject = row.get("client_id") or (f"visitor:{row['visitor_id']}" if row.get("visitor_id") else None)
    if subject is None:
        return
    settings = serving.settings
    try:
        serving.redis.loop.react_all(subject, row["recommendation_id"], "shown",
                                     [(item["item_id"], item.get("group"), item.get("kind")) for item in row["items"]],
                                     max_shows=settings.fatigue_max_shows, window_days=settings.fatigue_window_days,
                                     suppress_days=0)
    except RedisUnavailable:
        logger.warning("campaign shows not counted for fatigue: Redis unavailable")
