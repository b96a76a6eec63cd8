"""The writer that moves buffered exposures from Redis into the event store, and purges old rows.

Under gunicorn it runs in one process of its own, `service.loop.writer`, which the master starts
and restarts (EXPOSURE_WRITER=process, the default), or as a thread in every worker, started
after the fork (`post_worker_init`, EXPOSURE_WRITER=thread); `python -m service` runs it as a
thread; an app built in-process (tests) drains only when told to. It has its own Redis
connection, whose timeout outlasts the blocking read, so waiting for new entries never trips the
request path's circuit breaker. It reads the exposure stream through the consumer group `writers`
(`service.redis.exposures`), writes a batch in one transaction, and acknowledges the entries only
after the commit: a worker killed between the two (or a writer process killed) leaves them
pending, and another writer claims them once they have been idle for CLAIM_IDLE_MS. The rows are
idempotent on their recommendation id, so an entry written twice (the commit went through, the
acknowledgement did not) is stored once. An answer shown to a client
erased since is dropped by the store in the same transaction (`EventStore.add_exposures`): the
erasure does not search the stream, whose entries a writer may already hold.

Why it waits GATHER_SECONDS after a batch smaller than BATCH: a blocking read returns as soon as
one entry is there, so under steady traffic the writer would commit a transaction (SQL compiled,
fsync) per answer or two (in thread mode, in a thread that shares the worker's GIL with the
requests); measured (tests/bench, serving_loop) that cost more than the requests themselves. Gathering for a moment
turns that into a few large batches a second. It delays only when exposures reach the store
(reactions to fresh answers are checked against the hot copy in Redis), not what a crash can lose.

Once an hour one process (whichever takes the Redis lock) purges rows older than
EVENTS_RETENTION_DAYS.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from eventstore import EventStore, StoreUnavailable
from service.config import Settings
from service.metrics import EXPOSURES
from service.redis.core import RedisConnection, RedisUnavailable
from service.redis.exposures import ExposureBuffer

logger = logging.getLogger(__name__)

BATCH = 500
BLOCK_MS = 1000
#: After a batch smaller than BATCH, the writer waits this long for more before the next read.
GATHER_SECONDS = 0.5
CLAIM_EVERY_SECONDS = 5.0
PURGE_EVERY_SECONDS = 3600


class ExposureDrain:
    """Drains the tenant's exposure stream into the event store while the process lives."""

    def __init__(self, settings: Settings, events: EventStore) -> None:
        self.connection = RedisConnection(settings.model_copy(
            update={"redis_timeout_seconds": BLOCK_MS / 1000 + 2.0, "redis_retry_seconds": 1.0}))
        self.buffer = ExposureBuffer(self.connection)
        self.events = events
        self.tenant = settings.tenant
        self.retention_days = settings.events_retention_days
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def consumer(self) -> str:
        return f"{os.uname().nodename}-{os.getpid()}"

    def ensure_started(self) -> None:
        if not self.connection.configured or (self._pid == os.getpid() and self._thread is not None):
            return
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="exposure-drain", daemon=True)
            self._pid = os.getpid()
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether this process's writer thread is alive."""
        return self._pid == os.getpid() and self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread after the batch in hand (stored and acknowledged); True once it has ended."""
        self._stop.set()
        ended = True
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout)
            ended = not self._thread.is_alive()
        self._thread = None
        return ended

    def drain_once(self, pending: bool = False, block_ms: int = BLOCK_MS) -> int:
        """Write one batch (this consumer's pending entries, or new ones) and acknowledge it."""
        buffer = self.buffer
        entries = buffer.read(self.consumer, BATCH, block_ms, pending)
        if not entries:
            return 0
        rows = [row for _, row in entries]  # as buffered: the store reads `shown_at`'s ISO text itself
        self.events.add_exposures(self.tenant, rows)  # StoreUnavailable: left pending, retried
        buffer.acknowledge([entry_id for entry_id, _ in entries], [row["recommendation_id"] for row in rows])
        EXPOSURES.labels("stored").inc(len(rows))
        return len(rows)

    def drain_all(self) -> int:
        """Everything buffered now, this consumer's pending first (tests, shutdown)."""
        total = 0
        while (n := self.drain_once(pending=True)) > 0:
            total += n
        while (n := self.drain_once(block_ms=1)) > 0:
            total += n
        return total

    def _run(self) -> None:
        last_claim = 0.0
        last_purge = 0.0
        pause = 0.0
        while not self._stop.is_set():
            if pause:
                self._stop.wait(pause)
            try:
                now = time.monotonic()
                if now - last_claim > CLAIM_EVERY_SECONDS:
                    last_claim = now
                    self.buffer.claim_stale(self.consumer, BATCH)
                    self.drain_once(pending=True)
                if now - last_purge > PURGE_EVERY_SECONDS:
                    last_purge = now
                    self._purge_if_first()
                if self.drain_once() < BATCH:
                    self._stop.wait(GATHER_SECONDS)
                pause = 0.0
            except (RedisUnavailable, StoreUnavailable) as error:
                if not pause:
                    logger.warning("exposures not drained yet; retrying", extra={"error": str(error)[:200]})
                pause = 1.0
            except Exception:  # never let the thread die: exposures would pile up unseen
                logger.exception("exposure drain failed; retrying")
                pause = 5.0

    def _purge_if_first(self) -> dict[str, Any] | None:
        got = self.connection.run(
            "purge_lock", lambda r: r.set(self.connection.keys.purge_lock, self.consumer, nx=True,
                                          ex=PURGE_EVERY_SECONDS))
        if not got:
            return None
        older_than = datetime.now(timezone.utc) - timedelta(days=self.retention_days)
        counts = self.events.purge(self.tenant, older_than)
        logger.info("event store purged", extra={"older_than": older_than.isoformat(), "purged": counts})
        return counts
