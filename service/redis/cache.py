"""Cached answers in Redis, and the one round trip that reads what a request needs about a client.

A client's answers live in one hash per client, a field per (model version, endpoint, parameters);
answers that belong to no client (anonymous carts, similar items) in a key each. An entry is the
time it was written, a space, and the answer's JSON text kept as is, so a hit returns the stored
text without parsing it.

The read-through: `client_context` reads the cached answer, the client's recent purchases, its
generation and its reaction state (`service.redis.loop_state`) in one pipeline; on a miss the
caller computes the answer and hands it back with that generation. It is written only if the generation is still the one read (a small Lua
compare-and-set), so an answer computed while a purchase arrived is never cached.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from service.redis.core import RedisConnection
from service.redis.loop_state import NOTHING, Suppressions, parse_state

#: HSET the answer only if the client's generation is still ARGV[1]; then refresh the hash's TTL.
_STORE_IF_GENERATION = """
local current = redis.call('GET', KEYS[1]) or '0'
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""


def digest(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:24]


def answer_field(model_version: str, endpoint: str, params: dict[str, Any]) -> str:
    """Cache field of one answer: the model version, the endpoint and a digest of its parameters."""
    return f"{model_version}|{endpoint}|{digest(params)}"


def _cache_entry(body: str) -> str:
    """A cached answer: the time it was written, a space, its JSON text (kept as is)."""
    return f"{time.time():.3f} {body}"


@dataclass(frozen=True)
class ClientContext:
    """What one round trip tells about a client: a cached answer, recent purchases, generation."""

    cached: str | None  # the answer's JSON text
    recent_purchases: list[str]
    generation: str
    suppressions: Suppressions = NOTHING  # what the client's reactions and fatigue leave out


class AnswerCache:
    """Cached answers of one tenant, younger than CACHE_TTL_SECONDS."""

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self.keys = connection.keys
        self.ttl_seconds = connection.settings.cache_ttl_seconds
        self._store_if_generation = connection.script(_STORE_IF_GENERATION)

    def client_context(self, client_id: str, field: str | None) -> ClientContext:
        """Cached answer (if `field`), recent purchases, generation and reaction state of a client
        (or of a visitor: `client_id` is then `visitor:<id>`), in one round trip."""

        def read(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            pipe.get(self.keys.generation(client_id))
            pipe.lrange(self.keys.recent(client_id), 0, -1)
            pipe.hgetall(self.keys.loop(client_id))
            if field is not None:
                pipe.hget(self.keys.answers(client_id), field)
            return pipe.execute()

        generation, recent, state, *cached = self.connection.run("client_context", read)
        return ClientContext(cached=self._fresh(cached[0] if cached else None),
                             recent_purchases=list(dict.fromkeys(recent)), generation=generation or "0",
                             suppressions=parse_state(state))

    def store_client_answer(self, client_id: str, field: str, body: str, generation: str) -> bool:
        """Cache a client's answer (JSON text) unless a purchase changed the client since
        `generation` was read."""
        keys = [self.keys.generation(client_id), self.keys.answers(client_id)]
        args = [generation, field, _cache_entry(body), max(1, self.ttl_seconds)]
        stored = self.connection.run(
            "store_answer", lambda r: self._store_if_generation(keys=keys, args=args, client=r))  # type: ignore[misc]
        return bool(stored)

    def shared_answer(self, model_version: str, params: dict[str, Any]) -> tuple[str, str | None]:
        """(key, cached answer) of an answer that belongs to no client (anonymous cart, similar items)."""
        key = self.keys.shared(model_version, digest(params))
        return key, self._fresh(self.connection.run("shared_answer", lambda r: r.get(key)))

    def store_shared_answer(self, key: str, body: str) -> None:
        value = _cache_entry(body)
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
        if time.time() - at > self.ttl_seconds:
            return None
        return body
