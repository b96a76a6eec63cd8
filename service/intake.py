"""What must not be lost: posted events and erasures, committed to the event store before the answer.

The event store (`eventstore`, SQLite or PostgreSQL) is written first and in the request: once
`POST /v1/events` answers 2xx the events are committed, whatever is killed afterwards; when the
store is unavailable the answer is 503 and the caller retries (an `event_id` makes the retry
harmless). Redis comes second, for what makes the next answer change at once (recent purchases,
cached answers dropped); with Redis down the events are still stored and the answer says
`live: false`. `impression` and `click` events that name their recommendation are recorded as the
reactions `shown` and `clicked` (`service.loop.reactions`).
"""
from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eventstore import EventStore
from eventstore.schema import EVENT_REACTIONS
from service.config import Settings
from service.loop import reactions
from service.metrics import ERASURES, EVENTS
from service.redis.core import RedisUnavailable
from service.redis.store import RedisStore
from service.schemas import EventBatch

logger = logging.getLogger(__name__)

_erasure_file_lock = threading.Lock()


def record_events(store: RedisStore, events: EventStore, settings: Settings, batch: EventBatch) -> dict[str, Any]:
    """Commit a batch of events to the event store, then let purchases reach the buyers' next answers.

    StoreUnavailable reaches the handler (503: nothing was stored, retry)."""
    received = datetime.now(timezone.utc)
    rows, reacted = [], 0
    for event in batch.events:
        if event.type in EVENT_REACTIONS and event.recommendation_id is not None and reactions.record_from_event(
                store, events, settings, event.recommendation_id, event.item_id, EVENT_REACTIONS[event.type]):
            reacted += 1
            continue
        rows.append({"event_id": event.event_id, "type": event.type, "client_id": event.client_id,
                     "visitor_id": event.visitor_id, "item_id": event.item_id, "quantity": event.quantity, "price": event.price,
                     "order_id": event.order_id, "occurred_at": event.timestamp, "received_at": received,
                     "source": "api"})
    inserted, duplicates = events.add_events(settings.tenant, rows) if rows else (0, 0)
    for event in batch.events:
        EVENTS.labels(event.type).inc()
    live = True
    try:
        ids = store.events.add_events([_stream_fields(row, received) for row in rows])
    except RedisUnavailable:
        ids, live = [], False
        logger.warning("events stored, but Redis is unavailable: purchases reach answers after it is back "
                       "or at the next training", extra={"events": len(rows)})
    purchases = sum(1 for event in batch.events if event.type == "purchase")
    return {"accepted": inserted + reacted, "duplicates": duplicates, "purchases": purchases, "ids": ids,
            "live": live}


def _stream_fields(row: dict[str, Any], received: datetime) -> dict[str, Any]:
    """An event as the Redis stream keeps it (recent purchases, the live view of a client)."""
    fields = {key: value for key, value in row.items() if value is not None and key not in ("occurred_at",
                                                                                          "received_at", "source")}
    return {**fields, "timestamp": row["occurred_at"].isoformat(),
            "received_at": received.isoformat(timespec="milliseconds")}


def append_erasure(state_dir: Path, record: dict[str, Any]) -> None:
    """Append one erasure to SERVICE_STATE_DIR/erasures.jsonl and fsync it (Redis may be ephemeral)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with _erasure_file_lock, open(state_dir / "erasures.jsonl", "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def erase_client(store: RedisStore, events: EventStore, state_dir: Path, tenant: str, client_id: str,
                 request_id: str | None) -> dict[str, Any]:
    """Record the erasure durably first (the local file, then the event store, which also loses the
    client's events, exposures and reactions), then drop the client's state in Redis.

    The local record is written even when the store or Redis is down (StoreUnavailable or
    RedisUnavailable then reaches the handler), so the next training excludes the client either
    way; repeating the call is safe.
    """
    now = datetime.now(timezone.utc)
    erased_at = now.isoformat(timespec="seconds")
    append_erasure(state_dir, {"client_id": client_id, "tenant": tenant, "erased_at": erased_at,
                               "request_id": request_id})
    stored = events.erase_client(tenant, client_id, request_id)
    counts = store.events.erase_client(client_id)
    store.loop.forget(client_id)
    ERASURES.inc()
    logger.info("client erased", extra={"erased": counts, "stored_deleted": stored})
    return {"client_id": client_id, "erased_at": erased_at, **counts, "stored_deleted": stored}
