"""What a client's reactions changed, in Redis: suppressed items and groups, resting kinds, fatigue.

One hash per subject (client, or `visitor:<id>`), read in the same round trip as the cached
answer, holds:

  x:<item>   until when the item is not offered (rejected, snoozed, or shown too often)
  g:<group>  the same for the item's product group (a rejection covers every size and brand)
  k:<kind>   until when a whole kind rests (shown FATIGUE_MAX_SHOWS times, never clicked)
  f:<item>   "<window start> <shows>": shows without a click in the current fatigue window
  fk:<kind>  the same for a kind; one answer counts once per kind (a marker key per answer)

Every change is one Lua script, so two workers reacting at once cannot lose a count. A change that
removes something from the next answer also bumps the client's generation and drops its cached
answers, as a purchase does, so "rejected" is gone from the very next answer.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis

from service.redis.core import RedisConnection

#: KEYS: loop hash, kind-shown marker, generation, cached answers.
#: ARGV: now, reaction, item, group, kind, max shows, window seconds, suppress seconds, hash ttl.
#: Returns 1 when the next answer changes (something newly suppressed, or a kind's rest lifted by a
#: click on one of its items: it was not ignored after all), else 0.
_REACT = """
local now = tonumber(ARGV[1])
local reaction, item, group, kind = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local max_shows, window, suppress = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local changed = 0
local function rest(field, until_at)
  local current = tonumber(redis.call('HGET', KEYS[1], field) or '0')
  if until_at > current then
    redis.call('HSET', KEYS[1], field, until_at)
    changed = 1
  end
end
local function count(field, rest_field)
  local raw = redis.call('HGET', KEYS[1], field)
  local start, shows = now, 0
  if raw then
    local s, n = string.match(raw, '^(%S+) (%S+)$')
    start, shows = tonumber(s), tonumber(n)
    if now - start > window then start, shows = now, 0 end
  end
  shows = shows + 1
  redis.call('HSET', KEYS[1], field, start .. ' ' .. shows)
  if shows >= max_shows then rest(rest_field, start + window) end
end
if reaction == 'shown' then
  count('f:' .. item, 'x:' .. item)
  if kind ~= '' and redis.call('SET', KEYS[2], '1', 'NX', 'EX', window) then
    count('fk:' .. kind, 'k:' .. kind)
  end
elseif reaction == 'clicked' or reaction == 'accepted' then
  redis.call('HDEL', KEYS[1], 'f:' .. item)
  if kind ~= '' then
    redis.call('HDEL', KEYS[1], 'fk:' .. kind)
    if redis.call('HDEL', KEYS[1], 'k:' .. kind) == 1 then changed = 1 end
  end
elseif reaction == 'rejected' or reaction == 'snoozed' then
  rest('x:' .. item, now + suppress)
  if group ~= '' then rest('g:' .. group, now + suppress) end
end
redis.call('EXPIRE', KEYS[1], ARGV[9])
if changed == 1 then
  redis.call('INCR', KEYS[3])
  redis.call('DEL', KEYS[4])
end
return changed
"""


@dataclass(frozen=True)
class Suppressions:
    """What the next answer to one subject must leave out, as of `now` (epoch seconds)."""

    items: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    kinds: dict[str, float] = field(default_factory=dict)  # resting kind -> until (epoch seconds)

    @property
    def empty(self) -> bool:
        return not (self.items or self.groups or self.kinds)


NOTHING = Suppressions()


def parse_state(raw: dict[str, str] | None, now: float | None = None) -> Suppressions:
    """The live suppressions in a loop hash (expired entries are ignored; counts are not suppressions)."""
    if not raw:
        return NOTHING
    now = time.time() if now is None else now
    items, groups, kinds = set(), set(), {}
    for name, value in raw.items():
        prefix, _, key = name.partition(":")
        if prefix not in ("x", "g", "k"):
            continue
        try:
            until = float(value)
        except ValueError:
            continue
        if until <= now:
            continue
        if prefix == "x":
            items.add(key)
        elif prefix == "g":
            groups.add(key)
        else:
            kinds[key] = until
    return Suppressions(frozenset(items), frozenset(groups), kinds)


class LoopState:
    """Applies reactions to a subject's hash; `service.redis.cache` reads it with the answer."""

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self.keys = connection.keys
        self._react = connection.script(_REACT)

    def react(self, subject: str, recommendation_id: str, reaction: str, item_id: str, *, group: str | None,
              kind: str | None, max_shows: int, window_days: int, suppress_days: float) -> bool:
        """Apply one reaction; True when the subject's next answer changes (cached answers dropped)."""
        return self.react_all(subject, recommendation_id, reaction, [(item_id, group, kind)], max_shows=max_shows,
                              window_days=window_days, suppress_days=suppress_days)

    def react_all(self, subject: str, recommendation_id: str, reaction: str,
                  items: list[tuple[str, str | None, str | None]], *, max_shows: int, window_days: int,
                  suppress_days: float) -> bool:
        """Apply one reaction to each (item, group, kind) of an answer in one round trip (a
        campaign sent shows them all); True when the subject's next answer changes."""
        window = int(window_days * 86_400)
        hash_ttl = int(max(window, suppress_days * 86_400)) + 86_400
        now = f"{time.time():.3f}"

        def apply(r: redis.Redis) -> list[Any]:
            # redis-py's cluster client refuses scripts in a pipeline: there, one call per item (same slot)
            pipe = r if self.connection.cluster else r.pipeline(transaction=False)
            called = []
            for item_id, group, kind in items:
                keys = [self.keys.loop(subject), self.keys.kind_shown(subject, recommendation_id, kind or ""),
                        self.keys.generation(subject), self.keys.answers(subject)]
                args = [now, reaction, item_id, group or "", kind or "", max_shows, window,
                        int(suppress_days * 86_400), hash_ttl]
                called.append(self._react(keys=keys, args=args, client=pipe))  # type: ignore[misc]
            return called if self.connection.cluster else pipe.execute()

        return any(bool(changed) for changed in self.connection.run("react", apply))

    def suppressions(self, subject: str) -> Suppressions:
        return parse_state(self.connection.run("loop_state", lambda r: r.hgetall(self.keys.loop(subject))))

    def forget(self, subject: str) -> int:
        """Drop a subject's state (erasure)."""
        return int(self.connection.run("loop_forget", lambda r: r.delete(self.keys.loop(subject))))
