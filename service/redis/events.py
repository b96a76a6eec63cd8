"""The tenant's event stream in Redis, the recent purchases it feeds, and erasing a client.

A batch of events is one MULTI/EXEC: each event is appended to the bounded stream, and a purchase
also goes to the front of the buyer's recent purchases (read by the model until the next
training has them), bumps the buyer's generation and drops the buyer's cached answers, so the
next answer sees the purchase. Erasing a client deletes its events, cached answers and recent
purchases and its stored state in every model version that may still have it (`CLIENT_STATE=redis`),
bumps its generation (so an answer computed before the erasure is not cached after it) and adds it
to the tenant's erasure set, which the trainer excludes.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from scoring.contract import client_state_key, client_state_models_key
from service.redis.core import RedisConnection

#: Stream entries read per XRANGE while looking for a client's events, and deleted per XDEL.
_SCAN_BATCH = 1000


class EventLog:
    """Events, recent purchases and erasures of one tenant."""

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self.keys = connection.keys
        self.settings = connection.settings

    def add_events(self, events: Sequence[dict[str, Any]]) -> list[str]:
        """Append events to the tenant's stream; purchases update the buyers' recent purchases and
        drop their cached answers, in one MULTI/EXEC (a plain pipeline on Redis Cluster, where the keys span
        slots: the generation bump still keeps an answer computed before it out of the cache). Returns the stream
        ids."""
        buyers: dict[str, list[str]] = {}
        for event in events:
            if event["type"] == "purchase":
                buyers.setdefault(event["client_id"], []).append(event["item_id"])

        def write(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=not self.connection.cluster)  # on Redis Cluster the keys span slots
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

        results = self.connection.run("add_events", write)
        return [str(stream_id) for stream_id in results[: len(events)]]

    def client_events(self, client_id: str) -> list[dict[str, str]]:
        """Every event of a client still in the stream (scans the bounded stream)."""
        return [fields for _, fields in self._scan_client(client_id)]

    def _scan_client(self, client_id: str) -> list[tuple[str, dict[str, str]]]:
        def scan(r: redis.Redis) -> list[tuple[str, dict[str, str]]]:
            found: list[tuple[str, dict[str, str]]] = []
            start = "-"
            while True:
                batch = r.xrange(self.keys.events, min=start, max="+", count=_SCAN_BATCH)
                found.extend((sid, fields) for sid, fields in batch if fields.get("client_id") == client_id)
                if len(batch) < _SCAN_BATCH:
                    return found
                start = "(" + batch[-1][0]

        return self.connection.run("scan_events", scan)

    def erase_client(self, client_id: str) -> dict[str, int]:
        """Delete a client's events, cached answers, recent purchases and stored state under every model
        identity that may still have it (`scoring.contract.client_state_models_key`), bump its
        generation; add it to the erasure set."""
        ids = [sid for sid, _ in self._scan_client(client_id)]
        models = self.connection.run("client_state_models", lambda r: r.zrange(
            client_state_models_key(self.settings.tenant, self.settings.model_name), 0, -1))
        states = [client_state_key(model_id, client_id) for model_id in models]

        def erase(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=not self.connection.cluster)  # on Redis Cluster the keys span slots
            for group in self._deletions(states):
                pipe.delete(*group)
            for start in range(0, len(ids), _SCAN_BATCH):
                pipe.xdel(self.keys.events, *ids[start:start + _SCAN_BATCH])
            pipe.hlen(self.keys.answers(client_id))
            pipe.llen(self.keys.recent(client_id))
            for group in self._deletions([self.keys.answers(client_id), self.keys.recent(client_id)]):
                pipe.delete(*group)
            # Bumped, not deleted: an answer computed before the erasure read the generation (absent:
            # '0'), and a deleted counter reads '0' again, so FINISH would cache that answer.
            pipe.incr(self.keys.generation(client_id))
            pipe.expire(self.keys.generation(client_id), self.settings.recent_purchases_ttl_seconds)
            pipe.sadd(self.keys.erasures, client_id)
            return pipe.execute()

        results = self.connection.run("erase_client", erase)
        state_results = len(self._deletions(states))
        states_deleted = sum(int(n) for n in results[:state_results])
        tail = 5 + len(self._deletions(["answers", "recent"]))  # hlen, llen, the deletions, incr, expire, sadd
        deleted_events = sum(int(n) for n in results[state_results: len(results) - tail])
        return {"events_deleted": deleted_events, "cached_answers_deleted": int(results[-tail]),
                "recent_purchases_deleted": int(results[-tail + 1]), "client_state_deleted": states_deleted}

    def _deletions(self, keys: list[str]) -> list[list[str]]:
        """The DELs deleting `keys`: one, or one a key on Redis Cluster (its pipeline deletes one key a command)."""
        if not keys:
            return []
        return [[key] for key in keys] if self.connection.cluster else [keys]

    def is_erased(self, client_id: str) -> bool:
        return bool(self.connection.run("is_erased", lambda r: r.sismember(self.keys.erasures, client_id)))
