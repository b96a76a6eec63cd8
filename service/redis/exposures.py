"""Exposures on their way to the event store: a Redis stream drained in batches, and a hot copy.

Why a buffer: an exposure is written for every answer, so writing it to the database inside the
request would put a commit on the hot path. The request instead adds it to the tenant's
`exposures` stream (one XADD in a pipeline), and `service.loop.drain` moves the stream into the
event store in batches through a consumer group, acknowledging entries only after the commit. An
entry read but never acknowledged (its writer, a process or a worker's thread, was killed) is
claimed by another writer after CLAIM_IDLE_MS. What a `kill -9` of Redis can lose is what Redis had not yet written to its
append-only file: with `appendonly yes` and `appendfsync everysec`, at most about one second.

The hot copy (`rec:<id>`, for HOT_SECONDS at most: the writer deletes it with the entry once the
row is stored) lets a reaction to an answer a moment old be checked before the drainer has written
it. It holds the id of the answer's stream entry, not a second copy of the row: the row is read
from the stream while it is there, and once the writer has stored it (and deleted the entry) from
the event store, which `service.loop.reactions` asks next. (A hot copy written by an earlier
version holds the row itself, and is read as such.)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
import redis

from service.redis.core import RedisConnection

T = TypeVar("T")

#: How long an answer's exposure is kept in Redis besides the stream (the store has it after that).
HOT_SECONDS = 900
GROUP = "writers"
#: Entries a writer read and did not acknowledge for this long are taken over by another writer.
CLAIM_IDLE_MS = 5_000


#: KEYS: stream, hot copy; ARGV: row, hot seconds. The entry, and the hot copy pointing at it.
_ADD = """
redis.call('SET', KEYS[2], redis.call('XADD', KEYS[1], '*', 'row', ARGV[1]), 'EX', ARGV[2])
"""
#: KEYS: hot copy, stream. The row its entry holds (false once drained); an earlier version's copy as is.
_HOT = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
if string.sub(id, 1, 1) == '{' then return id end
local found = redis.call('XRANGE', KEYS[2], id, id)
if #found == 0 then return false end
local fields = found[1][2]
for i = 1, #fields, 2 do
  if fields[i] == 'row' then return fields[i + 1] end
end
return false
"""


#: How a buffered row names its items and the field after them (`service.loop.exposures.exposure_row`'s order).
_ITEMS_KEY = '"items":'
_AFTER_ITEMS = ',"shown_at":'


def parse_row(text: str | bytes) -> dict[str, Any]:
    """A buffered row, its items left as the JSON text they were buffered as (an `orjson.Fragment`,
    which the store writes as it is).

    Why: the writer only moves the items from Redis to the store, and parsing them into ten dicts
    to encode them again was most of a row's parsing. A JSON string cannot hold `"items":` or
    `,"shown_at":` unescaped, so the first is the row's own key and the last is the field after
    it; a row of another form is parsed whole."""
    if isinstance(text, bytes):
        text = text.decode()
    start, end = text.find(_ITEMS_KEY), text.rfind(_AFTER_ITEMS)
    if start > 1 and end > start and text[start - 1] == ",":
        row = orjson.loads(text[:start] + text[end + 1:])
        row["items"] = orjson.Fragment(text[start + len(_ITEMS_KEY):end])
        return row
    return orjson.loads(text)


class ExposureBuffer:
    """The tenant's stream of exposures not yet in the event store."""

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self.keys = connection.keys
        self._add = connection.script(_ADD)
        self._hot = connection.script(_HOT)

    def add(self, row: dict[str, Any]) -> None:
        """Buffer one exposure (JSON-ready row of `eventstore.schema.exposures`)."""
        keys = [self.keys.exposures, self.keys.recommendation(row["recommendation_id"])]
        args = [orjson.dumps(row).decode(), HOT_SECONDS]
        self.connection.run("exposure", lambda r: self._add(keys=keys, args=args, client=r))  # type: ignore[misc]

    def hot(self, recommendation_id: str) -> dict[str, Any] | None:
        """The answer's row while its entry is in the stream; None once the writer has stored it."""
        keys = [self.keys.recommendation(recommendation_id), self.keys.exposures]
        text = self.connection.run("exposure_hot", lambda r: self._hot(keys=keys, client=r))  # type: ignore[misc]
        return orjson.loads(text) if text else None

    # ---- the drainer's side ----

    def _with_group(self, r: redis.Redis, command: Callable[[], T]) -> T:
        """Run a consumer-group command, creating the group first if the stream or group is not
        there (a new Redis, or one restarted without its files)."""
        try:
            return command()
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
        try:
            r.xgroup_create(self.keys.exposures, GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        return command()

    def read(self, consumer: str, count: int, block_ms: int, pending: bool) -> list[tuple[str, dict[str, Any]]]:
        """Entries for `consumer`: its own unacknowledged ones (`pending`) or new ones (waits `block_ms`)."""
        def read(r: redis.Redis) -> Any:
            return self._with_group(r, lambda: r.xreadgroup(
                GROUP, consumer, {self.keys.exposures: "0" if pending else ">"}, count=count,
                block=None if pending else block_ms))

        answer = self.connection.run("exposure_read", read)
        return [(entry_id, parse_row(fields["row"])) for _, entries in (answer or []) for entry_id, fields in entries
                if fields and "row" in fields]

    def claim_stale(self, consumer: str, count: int) -> int:
        """Take over entries another (dead) worker read and never acknowledged; returns how many."""
        def claim(r: redis.Redis) -> Any:
            return self._with_group(r, lambda: r.xautoclaim(self.keys.exposures, GROUP, consumer, CLAIM_IDLE_MS,
                                                            start_id="0-0", count=count, justid=True))

        answer = self.connection.run("exposure_claim", claim)
        return len(answer) if answer else 0  # with justid redis-py answers the claimed ids alone

    def acknowledge(self, entry_ids: list[str], recommendation_ids: Sequence[str]) -> None:
        """Done with these entries, their rows stored: acknowledge and delete them, and their answers'
        hot copies, which would only point at deleted entries now (a reaction finds the row in the
        store). Why delete the copies and not leave them to expire: at 2,000 answers a second,
        HOT_SECONDS of them are 1.8 million keys that Redis keeps in memory, rewrites into its
        append-only file again and again, and expires one by one."""
        def ack(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=True)
            pipe.xack(self.keys.exposures, GROUP, *entry_ids)
            pipe.xdel(self.keys.exposures, *entry_ids)
            if recommendation_ids:  # UNLINK needs one key at least
                pipe.unlink(*(self.keys.recommendation(rid) for rid in recommendation_ids))
            return pipe.execute()

        if entry_ids:
            self.connection.run("exposure_ack", ack)

    def backlog(self) -> int:
        return int(self.connection.run("exposure_backlog", lambda r: r.xlen(self.keys.exposures)))
