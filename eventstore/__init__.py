"""The event store: what the CRM loop must not lose (events, exposures, reactions, erasures, task
outcomes), shared by the service (writes) and the trainer and effect report (reads).

A package of its own so that imports run one way: `service` and `training` may import it; it
imports neither (nor `scoring`, `features` or `envconfig`). See `eventstore.store.EventStore`.
"""
from __future__ import annotations

from eventstore.engine import StoreUnavailable
from eventstore.folder import purchase_keys
from eventstore.store import ClientErased, EventStore

__all__ = ["ClientErased", "EventStore", "StoreUnavailable", "purchase_keys"]
