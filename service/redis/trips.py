"""A suggestion request's whole conversation with Redis: one round trip warm, two cold.

Why one script and not three calls: a cached answer used to cost three round trips (the
rate-limit count, the read of the cached answer with the subject's state, the exposure write),
each as long as the answer itself once it is cached. `READ` does all of it in one Lua script:

  1. counts the request in its rate-limit window (skipped when the limit is off); above the
     allowance it stops there: nothing is read or written for a refused request;
  2. reads the subject's generation, recent purchases and reaction state, and the cached answer
     (a field of the client's hash, or a key of its own for an answer that belongs to no client);
     with the model's clients in Redis (`scoring.client_state`), a miss also brings the client's state,
     so scoring needs no trip of its own;
  3. on a fresh hit, appends the answer's exposure to the stream and points its hot copy at the
     entry (`service.redis.exposures`: the entry's id, not a second copy of the row). The row
     is composed from the request's own head and tail (its recommendation id, who, when) around
     the exposure items cached with the answer: Redis never parses JSON, and Python never parses
     the cached answer.

A miss returns what scoring needs, and `FINISH` then stores the answer with its exposure items
(a client's answer only if its generation is unchanged, so an answer computed while a purchase
arrived is never cached) and writes the exposure, in a second script: one more round trip.

A shared answer (anonymous cart, similar items) is the same for every subject, so a subject with
a live suppression cannot be answered from it as it is: the read then says `suppressed` and the
caller takes the longer path (`service.answers`). Scripts are called directly, not in a pipeline:
redis-py checks a pipeline's scripts with SCRIPT EXISTS first, which is a round trip of its own.

On Redis Cluster (REDIS_CLUSTER=true) every key of one script must be in one slot. A client's keys share
its hash tag (`service.redis.core.Keys`), so the same scripts still read the subject's state, its cached
answer and its client state in one call; what is not the client's leaves the script, at one round trip each:
the rate count (the API key's counter) runs first, on its own slot; an answer shared by every subject is read
from its own slot after the subject's state; and the exposure is written by the caller
(`service.redis.exposures`, the stream and its hot copy tagged into one slot). `logs_exposures` says which.
A client's warm answer then costs three round trips instead of one, a computed one four instead of two (a
shared answer asked for a visitor one more each: `tests/integration/test_redis_cluster.py` counts them).

Cache entries: `<written at> <exposure items JSON>\\n<answer JSON>` (JSON text holds no raw
newline). An entry of the earlier form, `<written at> <answer JSON>`, is still served; its
exposure is then written by the caller.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from service.redis.core import RedisConnection
from service.redis.exposures import HOT_SECONDS
from service.redis.loop_state import NOTHING, Suppressions, parse_state

#: KEYS: rate counter, generation, recent purchases, loop state, cached answers (hash or key),
#: exposure stream, hot copy. ARGV: window seconds (0: no limit), allowance, cache slot
#: ('field:<name>' in the hash, 'key', or 'none'), TTL seconds, now, '1' to log a hit's exposure,
#: row head, row tail, hot seconds, '1' when a live suppression forbids the cached answer, '1' when
#: there is a subject whose state to read, '1' when a miss returns the client's state (KEYS[8]).
#: Only KEYS[2..5] and KEYS[8] are the client's; the rate counter, the exposure stream and the hot copy
#: are not (on Redis Cluster the script would have to be split).
_READ = """
local count, ttl = 0, 0
local window = tonumber(ARGV[1])
if window > 0 then
  count = redis.call('INCR', KEYS[1])
  ttl = redis.call('TTL', KEYS[1])
  if count == 1 or ttl < 0 then
    redis.call('EXPIRE', KEYS[1], window)
    ttl = window
  end
  if count > tonumber(ARGV[2]) then return {count, ttl, 'limited'} end
end
local function client_state()
  if ARGV[12] == '1' then return redis.call('GET', KEYS[8]) end
  return false
end
local now = tonumber(ARGV[5])
local generation, recent, state = '0', {}, {}
if ARGV[11] == '1' then
  generation = redis.call('GET', KEYS[2]) or '0'
  recent = redis.call('LRANGE', KEYS[3], 0, -1)
  state = redis.call('HGETALL', KEYS[4])
end
if ARGV[10] == '1' then
  for i = 1, #state, 2 do
    local prefix = string.sub(state[i], 1, 2)
    if (prefix == 'x:' or prefix == 'g:' or prefix == 'k:') and (tonumber(state[i + 1]) or 0) > now then
      return {count, ttl, 'suppressed', generation, recent, state, client_state()}
    end
  end
end
local slot, raw = ARGV[3], false
if slot == 'key' then
  raw = redis.call('GET', KEYS[5])
elseif string.sub(slot, 1, 6) == 'field:' then
  raw = redis.call('HGET', KEYS[5], string.sub(slot, 7))
end
local space = raw and string.find(raw, ' ', 1, true)
if not space or now - (tonumber(string.sub(raw, 1, space - 1)) or 0) > tonumber(ARGV[4]) then
  return {count, ttl, 'miss', generation, recent, state, client_state()}
end
local newline = string.find(raw, '\\n', space, true)
if not newline then
  return {count, ttl, 'hit', string.sub(raw, space + 1)}
end
if ARGV[6] == '1' then
  local row = ARGV[7] .. string.sub(raw, space + 1, newline - 1) .. ARGV[8]
  redis.call('SET', KEYS[7], redis.call('XADD', KEYS[6], '*', 'row', row), 'EX', ARGV[9])
  return {count, ttl, 'logged', string.sub(raw, newline + 1)}
end
return {count, ttl, 'hit', string.sub(raw, newline + 1)}
"""

#: KEYS: generation, cached answers (hash or key), exposure stream, hot copy. ARGV: cache slot
#: ('field:<name>', 'key' or 'none'), generation read, entry, TTL seconds, row ('' when none), hot
#: seconds. Returns 1 when the answer was cached.
_FINISH = """
local stored, slot = 0, ARGV[1]
if slot == 'key' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
  stored = 1
elseif string.sub(slot, 1, 6) == 'field:' and (redis.call('GET', KEYS[1]) or '0') == ARGV[2] then
  redis.call('HSET', KEYS[2], string.sub(slot, 7), ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  stored = 1
end
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[4], redis.call('XADD', KEYS[3], '*', 'row', ARGV[5]), 'EX', ARGV[6])
end
return stored
"""


@dataclass(frozen=True)
class RateCount:
    """The request's rate-limit counter, counted inside the read (see `service.rate_limit`)."""

    key: str
    window_seconds: int
    allowance: int


@dataclass(frozen=True)
class Slot:
    """Where an answer is cached: a field of a client's hash, or a key of its own (shared)."""

    key: str
    field: str | None = None

    @property
    def mode(self) -> str:
        return f"field:{self.field}" if self.field is not None else "key"


@dataclass(frozen=True)
class Exposure:
    """An answer's exposure row as JSON text around its items: `head + items + tail`."""

    recommendation_id: str
    head: str
    tail: str

    def row(self, items_json: str) -> str:
        return self.head + items_json + self.tail


@dataclass(frozen=True)
class Read:
    """What the read told: `status` is limited, miss, suppressed, hit (exposure not written) or
    logged (the exposure was written with the hit)."""

    status: str
    count: int
    ttl: int
    body: str | None = None
    generation: str = "0"
    recent_purchases: tuple[str, ...] = ()
    suppressions: Suppressions = NOTHING
    #: the client's stored state on a miss (None: not asked for, or no such key)
    client_state: bytes | None = None


def cache_entry(items_json: str, body: str, at: float | None = None) -> str:
    """A cached answer with its exposure items (see the module's docstring)."""
    return f"{time.time() if at is None else at:.3f} {items_json}\n{body}"


def _pairs(flat: list[bytes]) -> dict[str, str]:
    return dict(zip(_texts(flat[::2]), _texts(flat[1::2]), strict=True))


def _texts(values: list[bytes]) -> list[str]:
    return [v.decode() for v in values]


class AnswerTrips:
    """The two scripts of a suggestion request, on the service's connection."""

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self.keys = connection.keys
        self.ttl_seconds = connection.settings.cache_ttl_seconds
        self._read = connection.script(_READ)  # run on the connection answering bytes (client state)
        self._finish = connection.script(_FINISH)
        #: whether the scripts write the answer's exposure (not on Redis Cluster: the stream has a slot of its own)
        self.logs_exposures = not connection.cluster

    def read(self, *, rate: RateCount | None, subject: str | None, slot: Slot | None,
             exposure: Exposure | None, shared: bool, client_state: str | None = None) -> Read:
        """Count, read and (on a fresh hit) log, in one round trip. `slot` None: no cache lookup
        (the cache is off); `exposure` None: nothing to log; `shared`: a live suppression of the
        subject forbids the cached answer; `client_state`: the key of the client's state, read on a miss."""
        if self.connection.cluster:
            return self._read_in_slots(rate, subject, slot, shared, client_state)
        keys = self.keys
        nobody = subject is None
        now = time.time()
        script_keys = [rate.key if rate else keys.rate("-"),
                       keys.generation(subject or "-"), keys.recent(subject or "-"), keys.loop(subject or "-"),
                       slot.key if slot else keys.answers("-"), keys.exposures,
                       keys.recommendation(exposure.recommendation_id if exposure else "-"),
                       client_state or keys.generation("-")]
        args = [rate.window_seconds if rate else 0, rate.allowance if rate else 0,
                slot.mode if slot is not None and self.ttl_seconds > 0 else "none", self.ttl_seconds, f"{now:.3f}",
                "1" if exposure else "0", exposure.head if exposure else "", exposure.tail if exposure else "",
                HOT_SECONDS, "1" if shared and not nobody else "0", "0" if nobody else "1",
                "1" if client_state else "0"]
        return self._run_read(script_keys, args, now)

    def _run_read(self, script_keys: list[str], args: list[Any], now: float) -> Read:
        answer: list[Any] = self.connection.run(
            "answer_read", lambda r: self._read(keys=script_keys, args=args, client=r),  # type: ignore[misc]
            binary=True)
        count, ttl, status = int(answer[0]), int(answer[1]), answer[2].decode()
        if status in ("hit", "logged"):
            return Read(status, count, ttl, body=answer[3].decode())
        if status == "limited":
            return Read(status, count, ttl)
        return Read(status, count, ttl, generation=answer[3].decode(),
                    recent_purchases=tuple(dict.fromkeys(_texts(answer[4]))),
                    suppressions=parse_state(_pairs(answer[5]), now), client_state=answer[6])

    def _read_in_slots(self, rate: RateCount | None, subject: str | None, slot: Slot | None, shared: bool,
                       client_state: str | None) -> Read:
        """`read` on Redis Cluster: the same script once per slot it needs (the rate counter's, the subject's,
        a shared answer's), every unused key of a call named in that call's slot. Never logs the exposure."""
        now = time.time()
        cache = slot is not None and self.ttl_seconds > 0
        count, ttl = 0, 0
        if rate is not None:
            counted = self._run_read([rate.key] * 8, [rate.window_seconds, rate.allowance, "none", self.ttl_seconds,
                                                      f"{now:.3f}", "0", "", "", HOT_SECONDS, "0", "0", "0"], now)
            if counted.status == "limited":
                return counted
            count, ttl = counted.count, counted.ttl
        own = cache and slot is not None and slot.field is not None  # the answer is a field of the subject's hash
        read = Read("miss", count, ttl)
        if subject is not None:
            g = self.keys.generation(subject)
            read = self._run_read(
                [g, g, self.keys.recent(subject), self.keys.loop(subject), slot.key if own and slot else g, g, g,
                 client_state or g],
                [0, 0, slot.mode if own and slot else "none", self.ttl_seconds, f"{now:.3f}", "0", "", "",
                 HOT_SECONDS, "1" if shared else "0", "1", "1" if client_state else "0"], now)
        if cache and not own and slot is not None and read.status == "miss":
            answer = self._run_read([slot.key] * 8, [0, 0, slot.mode, self.ttl_seconds, f"{now:.3f}", "0", "", "",
                                                     HOT_SECONDS, "0", "0", "0"], now)
            if answer.status == "hit":
                return Read("hit", count, ttl, body=answer.body)
        return Read(read.status, count, ttl, body=read.body, generation=read.generation,
                    recent_purchases=read.recent_purchases, suppressions=read.suppressions,
                    client_state=read.client_state)

    def finish(self, *, slot: Slot | None, generation: str, body: str, items_json: str,
               exposure: Exposure | None, subject: str | None) -> bool:
        """Cache the answer computed after a miss (a client's only if `generation` is still its
        generation) and write its exposure, in one round trip; True when it was cached."""
        keys = self.keys
        mode = slot.mode if slot is not None and self.ttl_seconds > 0 else "none"
        script_keys = [keys.generation(subject or "-"), slot.key if slot else keys.answers("-"), keys.exposures,
                       keys.recommendation(exposure.recommendation_id if exposure else "-")]
        if self.connection.cluster:  # one slot: the answer's; no exposure (`logs_exposures`)
            if exposure is not None:
                raise ValueError("on Redis Cluster the caller writes the exposure")
            script_keys = [script_keys[0] if slot is not None and slot.field is not None else script_keys[1]] * 4
            script_keys[1] = slot.key if slot else script_keys[0]
        args = [mode, generation, cache_entry(items_json, body), max(1, self.ttl_seconds),
                exposure.row(items_json) if exposure else "", HOT_SECONDS]
        stored = self.connection.run(
            "answer_finish", lambda r: self._finish(keys=script_keys, args=args, client=r))  # type: ignore[misc]
        return bool(stored)
