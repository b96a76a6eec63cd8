"""The fixed-window request counter in Redis behind per-key rate limiting (service/rate_limit.py).

One Lua script INCRements the caller's counter and starts its TTL when the window opens (or when
the TTL got lost), atomically and in one round trip; the TTL left is the seconds until the
window closes, sent back as Retry-After.
"""
from __future__ import annotations

from service.redis.core import RedisConnection

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


class RequestCounter:
    """Requests per caller and window, shared by every worker and replica of one tenant."""

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self._count_in_window = connection.script(_COUNT_IN_WINDOW)

    def count_request(self, key: str, window_seconds: int) -> tuple[int, int]:
        """Count one request in its fixed window (`key`: the caller's counter): (requests so far, seconds left)."""
        count, ttl = self.connection.run(
            "rate_limit", lambda r: self._count_in_window(keys=[key], args=[window_seconds], client=r))  # type: ignore[misc]
        return int(count), max(1, int(ttl))
