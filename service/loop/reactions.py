"""Reactions: checked against the answer they name, stored once, and applied to the next answer.

A reaction is refused (a problem naming the field) when its recommendation id is unknown, when
the item was not in that answer, when the answer is older than REACTION_MAX_AGE_DAYS, or when its
client was erased after it was shown (410: the answer went with the client, even while Redis's
hot copy still names it; a reaction racing the erasure is dropped by the store). It is
stored in the event store first (durable; the same reaction twice is stored once, and the second
answer says `duplicate: true`), then applied to the subject's state in Redis
(`service.redis.loop_state`), which changes the next answer at once. With Redis down the reaction
is kept but the next answers do not reflect it yet (crm_loop_state_missed_total).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from eventstore import ClientErased, EventStore
from service.config import Settings
from service.loop.assignment import subject_of
from service.loop.schemas import ReactionRequest
from service.metrics import LOOP_STATE_MISSED, REACTIONS
from service.problems import Problem
from service.redis.core import RedisUnavailable
from service.redis.store import RedisStore

logger = logging.getLogger(__name__)


def find_exposure(store: RedisStore, events: EventStore, tenant: str, recommendation_id: str) -> dict[str, Any] | None:
    """The answer's exposure: the hot copy while the drainer may not have stored it yet, else the store.

    With Redis unavailable an answer the store does not have yet may still be in Redis's buffer:
    that is a 503 to retry, not a 404 (a CRM does not retry a 404, and the reaction would be lost)."""
    try:
        hot = store.exposures.hot(recommendation_id)
    except RedisUnavailable as error:
        stored = events.exposure(tenant, recommendation_id)
        if stored is None and store.configured:
            raise Problem(503, "store-unavailable", f"Redis is unavailable ({error}), and the answer "
                          f"{recommendation_id} may still be in its buffer: retry.", headers={"Retry-After": "5"}) from None
        return stored
    if hot is not None:
        return {**hot, "shown_at": datetime.fromisoformat(hot["shown_at"])}
    return events.exposure(tenant, recommendation_id)


def _checked(exposure: dict[str, Any] | None, body: ReactionRequest, max_age_days: int) -> dict[str, Any]:
    """The exposed item the reaction is about, or a problem saying what is wrong."""
    if exposure is None:
        raise Problem(404, "unknown-recommendation", f"No answer has recommendation_id {body.recommendation_id!r}.",
                      errors=[{"field": "recommendation_id", "message": "unknown recommendation"}])
    shown_at = exposure["shown_at"]
    shown_at = shown_at if shown_at.tzinfo else shown_at.replace(tzinfo=timezone.utc)
    if datetime.now(timezone.utc) - shown_at > timedelta(days=max_age_days):
        raise Problem(410, "recommendation-expired", f"The answer {body.recommendation_id} is from "
                      f"{shown_at.isoformat(timespec='seconds')}, older than REACTION_MAX_AGE_DAYS ({max_age_days}).",
                      errors=[{"field": "recommendation_id", "message": "too old to react to"}])
    for item in exposure["items"]:
        if item["item_id"] == body.item_id:
            return item
    raise Problem(404, "item-not-in-answer", f"Item {body.item_id!r} was not in the answer {body.recommendation_id}.",
                  errors=[{"field": "item_id", "message": "not in that answer"}])


def react(store: RedisStore, events: EventStore, settings: Settings, body: ReactionRequest) -> dict[str, Any]:
    """Check, store and apply one reaction. StoreUnavailable reaches the handler (503)."""
    exposure = find_exposure(store, events, settings.tenant, body.recommendation_id)
    item = _checked(exposure, body, settings.reaction_max_age_days)
    assert exposure is not None
    snooze = body.snooze_days if body.reaction == "snoozed" else None
    try:
        stored = events.add_reaction(settings.tenant, {
            "recommendation_id": body.recommendation_id, "item_id": body.item_id, "reaction": body.reaction,
            "reason": body.reason, "snooze_days": snooze, "channel": body.channel or exposure.get("channel"),
            "client_id": exposure.get("client_id"), "visitor_id": exposure.get("visitor_id"),
            "reacted_at": datetime.now(timezone.utc)}, shown_at=exposure["shown_at"])
    except ClientErased:
        raise Problem(410, "recommendation-erased", f"The answer {body.recommendation_id} was erased with its "
                      "client.", errors=[{"field": "recommendation_id", "message": "erased with its client"}]) from None
    REACTIONS.labels(body.reaction, "false" if stored else "true").inc()
    changed = stored and _apply(store, settings, exposure, item, body.reaction, snooze)
    return {"recommendation_id": body.recommendation_id, "item_id": body.item_id, "reaction": body.reaction,
            "duplicate": not stored, "changes_next_answer": changed}


def _apply(store: RedisStore, settings: Settings, exposure: dict[str, Any], item: dict[str, Any], reaction: str,
           snooze_days: int | None) -> bool:
    subject = subject_of(exposure.get("client_id"), exposure.get("visitor_id"))
    if subject is None:
        return False
    days = settings.reject_suppress_days if reaction == "rejected" else (snooze_days or 0)
    try:
        return store.loop.react(subject, exposure["recommendation_id"], reaction, item["item_id"],
                                group=item.get("group"), kind=item.get("kind"), max_shows=settings.fatigue_max_shows,
                                window_days=settings.fatigue_window_days, suppress_days=days)
    except RedisUnavailable:
        LOOP_STATE_MISSED.inc()
        logger.warning("reaction stored, but Redis is unavailable: the next answers do not reflect it yet",
                       extra={"recommendation_id": exposure["recommendation_id"], "reaction": reaction})
        return False


def record_from_event(store: RedisStore, events: EventStore, settings: Settings, recommendation_id: str,
                      item_id: str, reaction: str) -> bool:
    """An `impression` or `click` event naming its answer, recorded as `shown` or `clicked`.
    False when the answer or item is unknown (the event is then stored as a plain event)."""
    body = ReactionRequest(recommendation_id=recommendation_id, item_id=item_id, reaction=reaction)
    try:
        react(store, events, settings, body)
    except Problem:
        return False
    return True
