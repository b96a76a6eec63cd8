"""Redis as answer cache, event store, recent-purchase memory and erasure record.

Keys (TENANT namespaces all but the erasure set, which the trainer reads):

  crm:{tenant}:events            stream of events, XADD MAXLEN ~ EVENTS_STREAM_MAXLEN
  crm:{tenant}:recent:{client}   list of item ids bought since training (newest first, TTL)
  crm:{tenant}:gen:{client}      generation of the client's answers; +1 on each purchase
  crm:{tenant}:answers:{client}  hash "{model_version}|{endpoint}|{params digest}" -> cached answer
  crm:{tenant}:shared:{model_version}:{digest}  cached answers that belong to no client
  crm:{tenant}:rate:{key digest}  requests of one API key in the current rate-limit window (TTL)
  erasures (erasures:{tenant} for other tenants)  set of erased client ids

A cached client answer is written only if the client's generation is still the one read before
computing it (a small Lua compare-and-set), so an answer computed while a purchase arrived is
never cached. Every command has a short socket timeout; after a connection failure the circuit
breaker skips Redis for REDIS_RETRY_SECONDS, so a dead Redis costs one timeout, not one per
request. redis-py reconnects on the next command once the breaker lets it through; a timed-out
command is not retried, so a slow Redis costs a request at most REDIS_TIMEOUT_SECONDS.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.config import Settings
from service.metrics import REDIS_FAILURES

logger = logging.getLogger(__name__)

#: Channel the trainer publishes to when it moves an alias: {"name", "alias", "version"}.
MODEL_UPDATES_CHANNEL = "crm-recommender:model-updates"
_ERASE_SCAN_BATCH = 1000
T = TypeVar("T")

_STORE_IF_GENERATION = """
local current = redis.call('GET', KEYS[1]) or '0'
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""

#: Fixed-window counter: INCR, and EXPIRE when the window opens (or the TTL got lost), in one step.
_COUNT_IN_WINDOW = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


class RedisUnavailable(Exception):
    """Redis is not configured, unreachable, or skipped by the open circuit breaker."""


class CircuitBreaker:
    """Open for `cooldown` seconds after a failure; the first call after that tries again."""

    def __init__(self, cooldown: float) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def failure(self) -> None:
        self._open_until = time.monotonic() + self.cooldown

    def success(self) -> None:
        self._open_until = 0.0


@dataclass(frozen=True)
class Keys:
    tenant: str

    @property
    def events(self) -> str:
        return f"crm:{self.tenant}:events"

    @property
    def erasures(self) -> str:
        return "erasures" if self.tenant == "default" else f"erasures:{self.tenant}"

    def recent(self, client_id: str) -> str:
        return f"crm:{self.tenant}:recent:{client_id}"

    def generation(self, client_id: str) -> str:
        return f"crm:{self.tenant}:gen:{client_id}"

    def answers(self, client_id: str) -> str:
        return f"crm:{self.tenant}:answers:{client_id}"

    def shared(self, model_version: str, digest: str) -> str:
        return f"crm:{self.tenant}:shared:{model_version}:{digest}"

    def rate(self, identity_digest: str) -> str:
        return f"crm:{self.tenant}:rate:{identity_digest}"


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


class RedisStore:
    """Every Redis operation of the service; each raises RedisUnavailable instead of redis errors."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.tenant)
        self.breaker = CircuitBreaker(settings.redis_retry_seconds)
        self._client: redis.Redis | None = None
        self._store_if_generation = None
        self._count_in_window = None
        if settings.redis_url:
            self._client = redis.Redis.from_url(
                settings.redis_url, decode_responses=True,
                socket_timeout=settings.redis_timeout_seconds,
                socket_connect_timeout=settings.redis_timeout_seconds,
                # One immediate retry reconnects a pooled socket that a Redis restart closed; a
                # timeout is not retried (a slow Redis would cost twice the timeout).
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))
            self._store_if_generation = self._client.register_script(_STORE_IF_GENERATION)
            self._count_in_window = self._client.register_script(_COUNT_IN_WINDOW)

    @property
    def configured(self) -> bool:
        return self._client is not None

    def _run(self, operation: str, action: Callable[[redis.Redis], T]) -> T:
        if self._client is None:
            raise RedisUnavailable("REDIS_URL is not set")
        if self.breaker.is_open:
            REDIS_FAILURES.labels(operation).inc()
            raise RedisUnavailable("Redis failed recently; skipping it for a moment")
        try:
            result = action(self._client)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            REDIS_FAILURES.labels(operation).inc()
            if not self.breaker.is_open:
                logger.warning("redis unreachable; skipping it for %.1fs", self.breaker.cooldown,
                               extra={"operation": operation, "error": type(error).__name__})
            self.breaker.failure()
            raise RedisUnavailable(f"Redis unreachable ({type(error).__name__})") from error
        except redis.RedisError as error:
            REDIS_FAILURES.labels(operation).inc()
            logger.error("redis command failed", extra={"operation": operation, "error": str(error)})
            raise RedisUnavailable(f"Redis command failed ({type(error).__name__})") from error
        self.breaker.success()
        return result

    # ---- health ----

    def status(self) -> str:
        """"up", "down" or "not-configured" (one PING, or none while the breaker is open)."""
        if not self.configured:
            return "not-configured"
        try:
            self._run("ping", lambda r: r.ping())
        except RedisUnavailable:
            return "down"
        return "up"

    # ---- client answers ----

    def client_context(self, client_id: str, field: str | None) -> ClientContext:
        """Cached answer (if `field`), recent purchases and generation of a client, in one round trip."""

        def read(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            pipe.get(self.keys.generation(client_id))
            pipe.lrange(self.keys.recent(client_id), 0, -1)
            if field is not None:
                pipe.hget(self.keys.answers(client_id), field)
            return pipe.execute()

        generation, recent, *cached = self._run("client_context", read)
        return ClientContext(cached=self._fresh(cached[0] if cached else None),
                             recent_purchases=list(dict.fromkeys(recent)), generation=generation or "0")

    def store_client_answer(self, client_id: str, field: str, body: str, generation: str) -> bool:
        """Cache a client's answer (JSON text) unless a purchase changed the client since
        `generation` was read."""
        value = _cache_entry(body)
        keys = [self.keys.generation(client_id), self.keys.answers(client_id)]
        args = [generation, field, value, max(1, self.settings.cache_ttl_seconds)]
        stored = self._run("store_answer", lambda r: self._store_if_generation(keys=keys, args=args, client=r))
        return bool(stored)

    def shared_answer(self, model_version: str, params: dict[str, Any]) -> tuple[str, str | None]:
        """(key, cached answer) of an answer that belongs to no client (anonymous cart, similar items)."""
        key = self.keys.shared(model_version, digest(params))
        return key, self._fresh(self._run("shared_answer", lambda r: r.get(key)))

    def store_shared_answer(self, key: str, body: str) -> None:
        value = _cache_entry(body)
        self._run("store_shared", lambda r: r.set(key, value, ex=max(1, self.settings.cache_ttl_seconds)))

    def _fresh(self, raw: str | None) -> str | None:
        """The cached answer's JSON text if it is younger than the TTL; the text is not parsed."""
        if raw is None or self.settings.cache_ttl_seconds <= 0:
            return None
        if raw.startswith("{"):  # written by an earlier version: {"at": ..., "body": {...}}
            entry = json.loads(raw)
            at, body = float(entry["at"]), json.dumps(entry["body"])
        else:
            stamp, _, body = raw.partition(" ")
            at = float(stamp)
        if time.time() - at > self.settings.cache_ttl_seconds:
            return None
        return body

    # ---- events ----

    def add_events(self, events: Sequence[dict[str, Any]]) -> list[str]:
        """Append events to the tenant's stream; purchases update the buyers' recent purchases and
        drop their cached answers, in one MULTI/EXEC. Returns the stream ids."""
        buyers: dict[str, list[str]] = {}
        for event in events:
            if event["type"] == "purchase":
                buyers.setdefault(event["client_id"], []).append(event["item_id"])

        def write(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=True)
            for event in events:
                fields = {key: str(value) for key, value in event.items() if value is not None}
                pipe.xadd(self.keys.events, fields, maxlen=self.settings.events_stream_maxlen, approximate=True)
            ttl = self.settings.recent_purchases_ttl_seconds
            for client_id, items in buyers.items():
                pipe.lpush(self.keys.recent(client_id), *items)
                pipe.ltrim(self.keys.recent(client_id), 0, self.settings.recent_purchases_max - 1)
                pipe.expire(self.keys.recent(client_id), ttl)
                pipe.incr(self.keys.generation(client_id))
                pipe.expire(self.keys.generation(client_id), ttl)
                pipe.delete(self.keys.answers(client_id))
            return pipe.execute()

        results = self._run("add_events", write)
        return [str(stream_id) for stream_id in results[: len(events)]]

    def client_events(self, client_id: str) -> list[dict[str, str]]:
        """Every event of a client still in the stream (scans the bounded stream)."""
        return [fields for _, fields in self._scan_client(client_id)]

    def _scan_client(self, client_id: str) -> list[tuple[str, dict[str, str]]]:
        def scan(r: redis.Redis) -> list[tuple[str, dict[str, str]]]:
            found: list[tuple[str, dict[str, str]]] = []
            start = "-"
            while True:
                batch = r.xrange(self.keys.events, min=start, max="+", count=_ERASE_SCAN_BATCH)
                found.extend((sid, fields) for sid, fields in batch if fields.get("client_id") == client_id)
                if len(batch) < _ERASE_SCAN_BATCH:
                    return found
                start = "(" + batch[-1][0]

        return self._run("scan_events", scan)

    # ---- erasure ----

    def erase_client(self, client_id: str) -> dict[str, int]:
        """Delete a client's events, cached answers and recent purchases; add it to the erasure set."""
        ids = [sid for sid, _ in self._scan_client(client_id)]

        def erase(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=True)
            for start in range(0, len(ids), _ERASE_SCAN_BATCH):
                pipe.xdel(self.keys.events, *ids[start:start + _ERASE_SCAN_BATCH])
            pipe.hlen(self.keys.answers(client_id))
            pipe.llen(self.keys.recent(client_id))
            pipe.delete(self.keys.answers(client_id), self.keys.recent(client_id),
                        self.keys.generation(client_id))
            pipe.sadd(self.keys.erasures, client_id)
            return pipe.execute()

        results = self._run("erase_client", erase)
        deleted_events = sum(int(n) for n in results[: len(results) - 4])
        return {"events_deleted": deleted_events, "cached_answers_deleted": int(results[-4]),
                "recent_purchases_deleted": int(results[-3])}

    def is_erased(self, client_id: str) -> bool:
        return bool(self._run("is_erased", lambda r: r.sismember(self.keys.erasures, client_id)))

    # ---- rate limiting ----

    def count_request(self, identity_digest: str, window_seconds: int) -> tuple[int, int]:
        """Count one request of `identity_digest` in its fixed window: (requests so far, seconds left)."""
        key = self.keys.rate(identity_digest)
        count, ttl = self._run("rate_limit", lambda r: self._count_in_window(keys=[key], args=[window_seconds],
                                                                             client=r))
        return int(count), max(1, int(ttl))

    # ---- model updates ----

    def publish_model_update(self, name: str, alias: str, version: str) -> None:
        message = json.dumps({"name": name, "alias": alias, "version": version})
        self._run("publish", lambda r: r.publish(MODEL_UPDATES_CHANNEL, message))

    def subscriber(self) -> redis.client.PubSub:
        """A pub/sub on its own connection, subscribed to the model-updates channel."""
        if not self.settings.redis_url:
            raise RedisUnavailable("REDIS_URL is not set")
        client = redis.Redis.from_url(self.settings.redis_url, decode_responses=True,
                                      socket_connect_timeout=max(self.settings.redis_timeout_seconds, 0.5),
                                      socket_timeout=10, retry=Retry(NoBackoff(), 0))
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(MODEL_UPDATES_CHANNEL)
        return pubsub

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
