"""The event store the effect report reads, one per process and URL, made on first use.

Why lazily and per process: a SQLAlchemy engine must not cross a fork (gunicorn forks its
workers after the app is built), and a service that never serves a report never opens the
database. `create_all` runs once with it (idempotent), so a report on a fresh database reads
empty tables rather than failing on missing ones.
"""
from __future__ import annotations

import os
import threading

from eventstore import EventStore

_STORES: dict[tuple[str, int], EventStore] = {}
_LOCK = threading.Lock()


def events_store(url: str) -> EventStore:
    """The process's `EventStore` for `url` (EVENTS_DB_URL). Raises `eventstore.StoreUnavailable`
    when the database cannot be reached; the next call tries again."""
    key = (url, os.getpid())
    with _LOCK:
        store = _STORES.get(key)
        if store is None:
            store = EventStore(url)
            try:
                store.create_all()
            except Exception:
                store.close()
                raise
            _STORES[key] = store
        return store


def close_stores() -> None:
    """Close every store this process opened (tests; shutdown)."""
    with _LOCK:
        for store in _STORES.values():
            store.close()
        _STORES.clear()
