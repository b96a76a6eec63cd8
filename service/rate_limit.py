"""Per-key rate limiting on /v1, counted in Redis so the limit holds across workers and replicas.

A fixed window per API key: one Lua script INCRements the key's counter and starts its TTL when
the window opens, atomically and in one round trip (`service.redis.limits`). Each window of
RATE_LIMIT_WINDOW_SECONDS allows RATE_LIMIT_PER_MINUTE x window / 60 requests; above that the
answer is a 429 problem with Retry-After, the seconds until the window closes.

Why a fixed window rather than GCRA or a sliding log: one integer per key and one round trip,
and its one flaw (a burst of up to twice the allowance across a window boundary) does not matter
for a limit that protects capacity rather than bills anyone.

The suggestion endpoints count their request inside the one Redis script that also reads their
cached answer (`service.redis.trips`, `Endpoint.rate_in_trip`): `pending_count` names the counter
before that trip and `settle` reads the verdict after it. Such a request is counted once it is
valid and its model is loaded; a refusal before that (400, 404, 503) costs no Redis call.

Keys are identified by a digest: the key itself is never written to Redis or to a log. With
AUTH_DISABLED and no key, the client address stands in. When Redis is unavailable the request
is let through (the shop must still sell) and counted in crm_rate_limit_fail_open_total.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from service.config import Settings
from service.metrics import RATE_LIMIT_FAIL_OPEN, RATE_LIMITED
from service.problems import Problem
from service.redis.core import RedisUnavailable
from service.redis.store import RedisStore
from service.redis.trips import RateCount, Read


@dataclass(frozen=True)
class Allowance:
    """What is left of the caller's window, sent back as X-RateLimit-* headers."""

    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset_seconds)}


def allowance_per_window(settings: Settings) -> int:
    """Requests one key may make in one window."""
    return max(1, round(settings.rate_limit_per_minute * settings.rate_limit_window_seconds / 60))


def identity_digest(api_key: str | None, remote_addr: str | None) -> str:
    """A stable, non-reversible name for the caller (the key's digest, or the address without a key)."""
    identity = f"key:{api_key}" if api_key else f"addr:{remote_addr or 'unknown'}"
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def check_rate_limit(store: RedisStore, settings: Settings, api_key: str | None,
                     remote_addr: str | None) -> Allowance | None:
    """Count this request; raise a 429 problem above the allowance. None when not limited
    (switched off, no Redis configured, or Redis unavailable: fail open)."""
    rate = pending_count(store, settings, api_key, remote_addr)
    if rate is None:
        return None
    try:
        count, seconds_left = store.limits.count_request(rate.key, rate.window_seconds)
    except RedisUnavailable:
        RATE_LIMIT_FAIL_OPEN.inc()
        return None
    return _verdict(rate, count, seconds_left)


def pending_count(store: RedisStore, settings: Settings, api_key: str | None,
                  remote_addr: str | None) -> RateCount | None:
    """The counter this request is to be counted in; None when the limit is off or Redis not configured."""
    if settings.rate_limit_per_minute <= 0 or not store.configured:
        return None
    return RateCount(store.keys.rate(identity_digest(api_key, remote_addr)), settings.rate_limit_window_seconds,
                     allowance_per_window(settings))


def settle(rate: RateCount | None, read: Read | None) -> Allowance | None:
    """The verdict on a request counted inside its read (`read` None: Redis was unavailable, fail open)."""
    if rate is None:
        return None
    if read is None:
        RATE_LIMIT_FAIL_OPEN.inc()
        return None
    return _verdict(rate, read.count, max(1, read.ttl))


def _verdict(rate: RateCount, count: int, seconds_left: int) -> Allowance:
    """The allowance left, or a 429 problem once the count is above it."""
    limit = rate.allowance
    allowance = Allowance(limit, max(0, limit - count), seconds_left)
    if count > limit:
        RATE_LIMITED.inc()
        raise Problem(429, "rate-limited", f"This API key made more than {limit} requests in "
                      f"{rate.window_seconds} s; retry in {seconds_left} s.",
                      headers={"Retry-After": str(seconds_left), **allowance.headers()})
    return allowance
