"""The model's answers for one client when the model's clients live in Redis (`CLIENT_STATE=redis`).

A model trained with `CLIENT_STATE=redis` holds the item side only (`scoring.contract.ClientStateInRedis`):
each request brings its client's stored value, read in the Redis round trip it already makes
(`service.redis.trips`), or fetched here for the endpoints that make none (profile, tasks, the client
search). A client whose value is not there is answered as a client the model does not know (cold start), is
counted in crm_client_state_missing_total and logged: never an error. With a model that holds its clients,
every function here hands the model back unchanged.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from scoring.contract import ClientStateInRedis, client_state_of
from service.metrics import CLIENT_STATE_MISSING
from service.redis.core import RedisConnection, RedisUnavailable

logger = logging.getLogger(__name__)

#: crm_client_state_missing_total's reasons
MISSING, UNREADABLE, UNAVAILABLE = "missing", "unreadable", "unavailable"


def key_of(recommender: Any, client_id: str | None) -> str | None:
    """The Redis key a request reads with its client's state, or None (no client, or clients in the model)."""
    model = client_state_of(recommender)
    return model.client_state_key(client_id) if model is not None and client_id is not None else None


def view(recommender: Any, client_id: str | None, value: bytes | None, *, read: bool = True) -> Any:
    """The model answering `client_id` from its stored `value` (`read` False: Redis could not be read).
    The model itself when its clients are in it or there is no client."""
    model = client_state_of(recommender)
    if model is None or client_id is None:
        return recommender
    if value is None:
        return _cold(model, client_id, MISSING if read else UNAVAILABLE)
    try:
        return model.with_client_state(client_id, value)
    except ValueError as error:
        logger.error("client state unreadable: answered as cold start",
                     extra={"client_id": client_id, "error": str(error)[:300]})
        return _cold(model, client_id, UNREADABLE)


def _cold(model: ClientStateInRedis, client_id: str, reason: str) -> Any:
    CLIENT_STATE_MISSING.labels(reason).inc()
    logger.info("no client state: answered as cold start", extra={"client_id": client_id, "reason": reason,
                                                                  "client_state_of": model.client_state_models()})
    return model.with_client_state(client_id, None)


def fetch(connection: RedisConnection, recommender: Any, client_id: str) -> Any:
    """`view` of a client whose state no round trip brought: one GET."""
    return fetch_many(connection, recommender, [client_id])[client_id]


def fetch_many(connection: RedisConnection, recommender: Any, client_ids: Sequence[str]) -> dict[str, Any]:
    """`view` of each client, their states read in one pipelined round trip (one GET each: on Redis Cluster
    an MGET would span slots)."""
    unique = list(dict.fromkeys(client_ids))
    keys = [key_of(recommender, client_id) for client_id in unique]
    if not unique or keys[0] is None:
        return dict.fromkeys(unique, recommender)

    def read(r: Any) -> list[bytes | None]:
        pipe = r.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
        return pipe.execute()

    try:
        values: list[bytes | None] = connection.run("client_state", read, binary=True)
        ok = True
    except RedisUnavailable:
        values, ok = [None] * len(unique), False
    return {client_id: view(recommender, client_id, value, read=ok) for client_id, value in zip(unique, values,
                                                                                                  strict=True)}


def eviction_policy_warning(connection: RedisConnection) -> str | None:
    """A sentence when Redis may evict keys (client state would turn into cold starts unseen), else None."""
    try:
        policy = connection.run("config_get", lambda r: r.config_get("maxmemory-policy")).get("maxmemory-policy")
    except RedisUnavailable as error:
        return f"could not read Redis's maxmemory-policy ({error}): client state needs noeviction"
    if policy != "noeviction":
        return (f"Redis runs with maxmemory-policy {policy!r}: it may evict client state, which then answers as "
                "cold start (crm_client_state_missing_total); set maxmemory-policy noeviction")
    return None
