"""Cached answers in Redis: their keys, and the longer path's reads and writes.

A client's answers live in one hash per client, a field per (model identity, endpoint,
parameters); answers that belong to no client (anonymous carts, similar items) in a key each.
The request path reads and writes them in its one or two round trips (`service.redis.trips`,
which also says what an entry holds); `shared_answer` and `store_shared_answer` serve the rarer
path of a subject whose suppressions need a longer shared answer. An entry is never parsed to
be served: a hit returns the answer's JSON text as it was stored.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from service.redis.core import RedisConnection


def digest(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:24]


def answer_field(model_version: str, endpoint: str, params: dict[str, Any]) -> str:
    """Cache field of one answer: the model version, the endpoint and a digest of its parameters."""
    return f"{model_version}|{endpoint}|{digest(params)}"


class AnswerCache:
    """Cached answers of one tenant, younger than CACHE_TTL_SECONDS."""

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self.keys = connection.keys
        self.ttl_seconds = connection.settings.cache_ttl_seconds

    def shared_answer(self, model_version: str, params: dict[str, Any]) -> tuple[str, str | None]:
        """(key, cached answer) of an answer that belongs to no client (anonymous cart, similar items)."""
        key = self.keys.shared(model_version, digest(params))
        return key, self._fresh(self.connection.run("shared_answer", lambda r: r.get(key)))

    def store_shared_answer(self, key: str, body: str) -> None:
        value = f"{time.time():.3f} {body}"
        self.connection.run("store_shared", lambda r: r.set(key, value, ex=max(1, self.ttl_seconds)))

    def _fresh(self, raw: str | None) -> str | None:
        """The cached answer's JSON text if it is younger than the TTL; the text is not parsed."""
        if raw is None or self.ttl_seconds <= 0:
            return None
        if raw.startswith("{"):  # written by an earlier version: {"at": ..., "body": {...}}
            entry = json.loads(raw)
            at, body = float(entry["at"]), json.dumps(entry["body"])
        else:
            stamp, _, body = raw.partition(" ")
            at = float(stamp)
            if "\n" in body:  # the exposure items cached in front of the answer (service.redis.trips)
                body = body.split("\n", 1)[1]
        if time.time() - at > self.ttl_seconds:
            return None
        return body
