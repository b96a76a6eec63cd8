"""The event store's tables: what must not be lost, in SQLAlchemy Core (SQLite or PostgreSQL).

Why a package of its own: the service writes these rows and the trainer and the effect report read
them, and imports run one way (service and training may both import `eventstore`; it imports
neither). Timestamps are stored as timezone-aware UTC datetimes.

- `events`: client events posted through the API (view, cart, purchase), and purchases imported
  from a retraining data folder (`source = "folder"`) so that attribution sees them too. An
  `event_id`, when the caller gives one, is unique per tenant: a retried batch is not counted twice.
- `exposures`: one row per answer (the `recommendation_id`): who (client or visitor), which
  variant and model version, which endpoint, kind and channel, and `items`, the JSON list of
  `{"item_id", "group", "kind", "position"}` shown.
- `reactions`: shown / clicked / accepted / rejected / snoozed, one row per (recommendation,
  item, reaction): the same reaction twice is stored once.
- `erasures`: every erased client, for the trainer and for the record.
- `task_outcomes`: what a manager did with a task (`done` or `dismissed`, who, when; `POST /v1/tasks/{id}`):
  the latest row of a task is its state.
"""
from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

_ID = 128  # the API's longest id (service.schemas.Id)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("event_id", String(_ID), nullable=True),
    Column("type", String(16), nullable=False),
    Column("client_id", String(_ID), nullable=True),
    Column("visitor_id", String(_ID), nullable=True),
    Column("item_id", String(_ID), nullable=False),
    Column("quantity", Float, nullable=True),
    Column("price", Float, nullable=True),
    Column("order_id", String(_ID), nullable=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("source", String(16), nullable=False, default="api"),
    UniqueConstraint("tenant", "event_id", name="uq_events_event_id"),
    Index("ix_events_client_time", "tenant", "client_id", "occurred_at"),
    Index("ix_events_type_time", "tenant", "type", "occurred_at"),
)

exposures = Table(
    "exposures", metadata,
    Column("recommendation_id", String(32), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("client_id", String(_ID), nullable=True),
    Column("visitor_id", String(_ID), nullable=True),
    Column("variant", String(64), nullable=False),
    Column("model_version", String(32), nullable=True),
    Column("endpoint", String(16), nullable=False),
    Column("kind", String(32), nullable=True),
    Column("channel", String(16), nullable=True),
    Column("items", JSON, nullable=False),
    Column("shown_at", DateTime(timezone=True), nullable=False),
    Index("ix_exposures_client_time", "tenant", "client_id", "shown_at"),
    Index("ix_exposures_time", "tenant", "shown_at"),
)

reactions = Table(
    "reactions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("recommendation_id", String(32), nullable=False),
    Column("item_id", String(_ID), nullable=False),
    Column("reaction", String(16), nullable=False),
    Column("reason", String(32), nullable=True),
    Column("snooze_days", Integer, nullable=True),
    Column("channel", String(16), nullable=True),
    Column("client_id", String(_ID), nullable=True),
    Column("visitor_id", String(_ID), nullable=True),
    Column("reacted_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant", "recommendation_id", "item_id", "reaction", name="uq_reactions_once"),
    Index("ix_reactions_time", "tenant", "reacted_at"),
)

erasures = Table(
    "erasures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("client_id", String(_ID), nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=False),
    Column("request_id", String(_ID), nullable=True),
    Index("ix_erasures_client", "tenant", "client_id"),
)

#: Who made a reaction from the /app screens (a signed-in person's name and key digest). Its own table,
#: so stores created before it get it from `create_all`. Erasure (by the client's answers) and retention
#: purge it like the reactions.
reaction_actors = Table(
    "reaction_actors", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("recommendation_id", String(32), nullable=False),
    Column("item_id", String(_ID), nullable=False),
    Column("reaction", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant", "recommendation_id", "item_id", "reaction", name="uq_reaction_actors_once"),
)

task_outcomes = Table(
    "task_outcomes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("task_id", String(_ID), nullable=False),
    Column("client_id", String(_ID), nullable=True),
    Column("outcome", String(32), nullable=False),
    Column("note", Text, nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(_ID), nullable=True),  # who (the manager's id), issue 13
    Column("trigger", String(32), nullable=True),       # the change the task was raised for
    Index("ix_task_outcomes_task", "tenant", "task_id"),
)

#: The reactions a caller may post, and what an `impression` / `click` event is recorded as.
REACTIONS = ("shown", "clicked", "accepted", "rejected", "snoozed")
EVENT_REACTIONS = {"impression": "shown", "click": "clicked"}
REACTION_REASONS = ("not_relevant", "already_have", "too_expensive", "later")
CHANNELS = ("crm", "crm_task", "cart", "email", "push")
#: Channels whose exposure shows the items by definition (a campaign sent), so it counts for fatigue.
SHOWING_CHANNELS = ("email", "push")
