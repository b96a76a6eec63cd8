"""Clients erased on request, and the data without them: what the trainer must never learn from.

Three sources, all written by the service when `DELETE /v1/clients/{id}` is called for a tenant:
the durable file (ERASURES_FILE: JSON lines `{"client_id", "tenant", ...}`), the event store's
erasures (EVENTS_DB_URL) and, when REDIS_URL is set, the Redis set
`scoring.contract.erasures_key(tenant)`. The file is the erasing replica's own: with several
service replicas (docs/replicas.md) only the shared store and Redis hold every replica's. The trainer trains one tenant's data
(TENANT), so it honours exactly that tenant's erasures: a line of another tenant names another
shop's client, who may share an id with one of ours. A line without a tenant was written for the
default tenant (the service wrote no tenant before it had several).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from eventstore import EventStore
from eventstore.engine import sqlite_path
from features.loader import Dataset
from features.schema import CLIENT
from scoring.contract import erasures_key
from training.config import TrainConfig

log = logging.getLogger(__name__)

#: The tenant of an erasure line that names none.
DEFAULT_TENANT = "default"


def erased_in_file(path: Path, tenant: str) -> set[str]:
    """Client ids the erasure file records for `tenant` (unreadable lines are skipped, with a warning)."""
    erased: set[str] = set()
    if not path.exists():
        return erased
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            record = json.loads(line)
            if str(record.get("tenant") or DEFAULT_TENANT) == tenant:
                erased.add(str(record["client_id"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("skipping unreadable line %d of %s", number, path)
    return erased


def erased_in_redis(redis_url: str, tenant: str, cluster: bool = False) -> set[str]:
    """Members of the tenant's Redis erasure set (raises redis errors: the caller decides); `cluster`: the URL
    names a node of a Redis Cluster."""
    from training.client_state import redis_client

    with redis_client(redis_url, cluster, socket_timeout=2, socket_connect_timeout=2) as r:
        return {member.decode() for member in r.smembers(erasures_key(tenant))}


def erased_in_store(events_db_url: str, tenant: str) -> set[str]:
    """Clients the event store records as erased for `tenant` (none when the store is a SQLite file
    that does not exist: it is never created here). An unreachable store raises StoreUnavailable:
    it is durable, so training does not go on without it."""
    path = sqlite_path(events_db_url)
    if path is not None and not path.exists():
        return set()
    with EventStore(events_db_url) as store:
        store.create_all()
        return store.erased_clients(tenant)


def erased_clients(config: TrainConfig) -> set[str]:
    """Clients of `config.tenant` erased on request: the service's durable file, the event store,
    and Redis when configured (a mirror: when it cannot be read, the others still count)."""
    path = Path(config.erasures_file)
    erased = erased_in_file(path, config.tenant) | erased_in_store(config.events_db_url, config.tenant)
    if config.redis_url:
        try:
            erased |= erased_in_redis(config.redis_url, config.tenant, config.redis_cluster)
        except Exception as exc:  # noqa: BLE001 - the file and the store are durable; Redis is a mirror
            log.warning("could not read erasures from Redis (%s); using %s and the event store only", exc, path)
    return erased


def without_clients(dataset: Dataset, clients: set[str]) -> Dataset:
    """The dataset without any line of `clients`."""
    if not clients:
        return dataset
    keep = ~dataset.transactions[CLIENT].isin(clients)
    log.info("excluding %d erased clients (%d lines)", len(clients), int((~keep).sum()))
    return dataset.with_transactions(dataset.transactions[keep].reset_index(drop=True))
