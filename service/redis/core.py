"""The service's Redis connection: short timeouts, a circuit breaker, and every key name.

Keys (TENANT namespaces all of them; the erasure set's name is shared with the trainer):

  crm:{tenant}:events            stream of events, XADD MAXLEN ~ EVENTS_STREAM_MAXLEN
  crm:{tenant}:recent:{client}   list of item ids bought since training (newest first, TTL)
  crm:{tenant}:gen:{client}      generation of the client's answers; +1 on each purchase and erasure
  crm:{tenant}:answers:{client}  hash "{model_version}|{endpoint}|{params digest}" -> cached answer
  crm:{tenant}:shared:{model_version}:{digest}  cached answers that belong to no client
  crm:{tenant}:rate:{key digest}  requests of one API key in the current rate-limit window (TTL)
  crm:{tenant}:loop:{subject}    hash of the client's (or visitor's) suppressions and fatigue counts
  crm:{tenant}:kshown:{rec}:{kind}  marker: this answer's kind was counted shown once (TTL)
  crm:{tenant}:exposures         stream of answers not yet written to the event store
  crm:{tenant}:rec:{rec}         an answer's exposure while it may still be in the stream (TTL)
  cs:{model id}:{{client}}       a client's state for one model (CLIENT_STATE=redis, written by the trainer;
                                 the client id between literal braces, its Redis Cluster hash tag:
                                 `scoring.contract.client_state_key`)
  crm:{tenant}:client-state-models:{model name}  the model identities whose client state may be in Redis
  scoring.contract.erasures_key(tenant)  set of erased client ids (`erasures` for the default tenant)

With REDIS_CLUSTER=true the connection is redis-py's cluster client, and every key of one client (or
visitor) carries the subject's id as its hash tag, as its client state key does: `crm:{tenant}:recent:{{client}}`,
`...:gen:{{client}}`, `...:answers:{{client}}`, `...:loop:{{subject}}`, `...:kshown:{{subject}}:{rec}:{kind}`
(literal braces), so the request's script reads them, and the client's state, in one slot. The exposure
stream keeps its name; an answer's hot copy takes the stream's name as its tag
(`crm:{tenant}:rec:{{crm:{tenant}:exposures}}:{rec}`), so the entry and its hot copy are written together. On a
single Redis the names stay untagged: no key is renamed for a deployment that does not turn the cluster on.

Every command has a short socket timeout; after a connection failure the circuit breaker skips
Redis for REDIS_RETRY_SECONDS, so a dead Redis costs one timeout, not one per request. redis-py
reconnects on the next command once the breaker lets it through; a timed-out command is not
retried, so a slow Redis costs a request at most REDIS_TIMEOUT_SECONDS.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from scoring.contract import erasures_key
from service.config import Settings
from service.metrics import REDIS_FAILURES

logger = logging.getLogger(__name__)

T = TypeVar("T")


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
    """The name of every Redis key of one tenant; `cluster`: a subject's keys tagged with its id (one slot)."""

    tenant: str
    cluster: bool = False

    def _of(self, subject: str) -> str:
        return f"{{{subject}}}" if self.cluster else subject

    @property
    def events(self) -> str:
        return f"crm:{self.tenant}:events"

    @property
    def erasures(self) -> str:
        return erasures_key(self.tenant)

    def recent(self, client_id: str) -> str:
        return f"crm:{self.tenant}:recent:{self._of(client_id)}"

    def generation(self, client_id: str) -> str:
        return f"crm:{self.tenant}:gen:{self._of(client_id)}"

    def answers(self, client_id: str) -> str:
        return f"crm:{self.tenant}:answers:{self._of(client_id)}"

    def shared(self, model_version: str, digest: str) -> str:
        return f"crm:{self.tenant}:shared:{model_version}:{digest}"

    def rate(self, identity_digest: str) -> str:
        return f"crm:{self.tenant}:rate:{identity_digest}"

    def loop(self, subject: str) -> str:
        return f"crm:{self.tenant}:loop:{self._of(subject)}"

    def kind_shown(self, subject: str, recommendation_id: str, kind: str) -> str:
        tag = f"{{{subject}}}:" if self.cluster else ""
        return f"crm:{self.tenant}:kshown:{tag}{recommendation_id}:{kind}"

    @property
    def exposures(self) -> str:
        return f"crm:{self.tenant}:exposures"

    def recommendation(self, recommendation_id: str) -> str:
        tag = f"{{{self.exposures}}}:" if self.cluster else ""
        return f"crm:{self.tenant}:rec:{tag}{recommendation_id}"

    @property
    def purge_lock(self) -> str:
        return f"crm:{self.tenant}:purge-lock"


def connect(url: str, cluster: bool, **options: Any) -> redis.Redis:
    """A client of `url`: redis-py's cluster client when `cluster` (it finds the other nodes from this one).
    One immediate retry reconnects a pooled socket that a Redis restart closed; a timeout is not retried (a
    slow Redis would cost twice the timeout)."""
    retry = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
    if cluster:
        return RedisCluster.from_url(url, retry=retry, **options)  # type: ignore[return-value]
    return redis.Redis.from_url(url, retry=retry, **options)


class RedisConnection:
    """One pooled client behind the breaker: `run` turns redis errors into RedisUnavailable."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.tenant, settings.redis_cluster)
        self.cluster = settings.redis_cluster
        self.breaker = CircuitBreaker(settings.redis_retry_seconds)
        self.client: redis.Redis | None = None
        #: the same Redis answering bytes, for what holds binary values (client state, `scoring.client_state`)
        self.binary: redis.Redis | None = None
        if settings.redis_url:
            self.client, self.binary = (connect(settings.redis_url, settings.redis_cluster, decode_responses=decode,
                                                socket_timeout=settings.redis_timeout_seconds,
                                                socket_connect_timeout=settings.redis_timeout_seconds)
                                        for decode in (True, False))

    @property
    def configured(self) -> bool:
        return self.client is not None

    def script(self, source: str) -> Callable[..., object] | None:
        """A Lua script registered on this connection (None without Redis)."""
        return self.client.register_script(source) if self.client is not None else None

    def run(self, operation: str, action: Callable[[redis.Redis], T], *, binary: bool = False) -> T:
        """`action(client)` (the client answering bytes with `binary`), unless Redis is not configured or
        the breaker is open."""
        client = self.binary if binary else self.client
        if client is None:
            raise RedisUnavailable("REDIS_URL is not set")
        if self.breaker.is_open:
            REDIS_FAILURES.labels(operation).inc()
            raise RedisUnavailable("Redis failed recently; skipping it for a moment")
        try:
            result = action(client)
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

    def status(self) -> str:
        """"up", "down" or "not-configured" (one PING, or none while the breaker is open)."""
        if not self.configured:
            return "not-configured"
        try:
            self.run("ping", lambda r: r.ping())
        except RedisUnavailable:
            return "down"
        return "up"

    def close(self) -> None:
        for client in (self.client, self.binary):
            if client is not None:
                client.close()
