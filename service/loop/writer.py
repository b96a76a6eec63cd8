"""`python -m service.loop.writer --parent PID`: the exposure writer as a process of its own.

Why a process: under gunicorn a writer thread in every worker competes for that worker's GIL
with its request threads; measured (2 workers x 4 threads, cached answers) the same service
answers about 14% more requests a second when one process beside the workers does the writing.
With EXPOSURE_WRITER=process (the default) the gunicorn master starts this module when it is
ready and restarts it if it exits (`service.loop.supervisor`); the workers start no writer.

It runs the same `ExposureDrain` as the thread does, so every guarantee is the drain's: entries
are acknowledged only after their commit, and the entries of a writer killed mid-batch stay
pending until the next writer claims them (CLAIM_IDLE_MS). It stops on SIGTERM or SIGINT, or
when its parent (the master) is gone: it finishes the batch in hand, stores what is still in the
stream for up to FLUSH_SECONDS, and exits 0. Its logs are the service's JSON lines on stderr.

Exit statuses: 0 when stopped, 1 on a failure at start or a drain thread that died. Never 3 or
4: gunicorn's master reaps every child and shuts itself down on those (a worker that could not
boot or load the app), and this process is its child.
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import time

from eventstore import EventStore, StoreUnavailable
from service.config import Settings
from service.logs import configure_logging
from service.loop.drain import BATCH, ExposureDrain
from service.redis.core import RedisUnavailable

logger = logging.getLogger("service.loop.writer")  # not __name__: run with -m, that is "__main__"

#: How long a stopping writer waits for the batch in hand to be stored.
STOP_SECONDS = 10.0
#: After that, how long it goes on storing what is left in the stream (none left: it exits at once).
FLUSH_SECONDS = 5.0
#: How often it checks that its parent is still there.
CHECK_SECONDS = 0.5
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def wait_for_stop(drain: ExposureDrain, parent: int) -> str:
    """Block until a stop signal, the parent's exit, or the drain thread's death; say which."""
    while True:
        received = signal.sigtimedwait(STOP_SIGNALS, CHECK_SECONDS)
        if received is not None:
            return signal.Signals(received.si_signo).name
        if os.getppid() != parent:
            return "parent gone"
        if not drain.running:
            return "drain thread died"


def flush(drain: ExposureDrain, seconds: float = FLUSH_SECONDS) -> int:
    """Store what is left in the stream now, for at most `seconds` (other writers may go on)."""
    deadline, stored = time.monotonic() + seconds, 0
    try:
        while time.monotonic() < deadline:
            n = drain.drain_once(block_ms=1)
            stored += n
            if n < BATCH:
                break
    except (RedisUnavailable, StoreUnavailable) as error:  # left in the stream for the next writer
        logger.warning("exposures not flushed at stop", extra={"error": str(error)[:200]})
    return stored


def settle_heap() -> None:
    """Take what start-up built (modules, settings, the engine: over 100,000 objects) out of the
    garbage collector's sight. A batch of rows in hand sets off collections, and every full one
    walked all of it: 14 us a row of the writer's 40 (measured, tests/bench/exposure_writer.py)."""
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.loop.writer", description=__doc__.splitlines()[0])
    parser.add_argument("--parent", type=int, default=os.getppid(),
                        help="pid whose exit stops the writer (default: the parent at start)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    events = EventStore(settings.events_db_url)
    try:
        events.create_all()
    except StoreUnavailable as error:  # the drain retries until the store is back
        logger.error("event store unavailable at start", extra={"error": str(error)[:300]})
    drain = ExposureDrain(settings, events)
    if not drain.connection.configured:
        logger.error("exposure writer: REDIS_URL is not set, nothing to drain")
        return 1
    # Blocked before the drain thread starts, so the thread inherits the mask and only
    # `sigtimedwait` in this thread takes the signals: no handler runs in the middle of a batch.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    settle_heap()
    drain.ensure_started()
    logger.info("exposure writer started", extra={"writer_pid": os.getpid(), "parent_pid": args.parent,
                                                  "consumer": drain.consumer})
    reason = wait_for_stop(drain, args.parent)
    ended = drain.stop(STOP_SECONDS)
    flushed = flush(drain) if ended else 0
    events.close()
    logger.info("exposure writer stopped", extra={"writer_pid": os.getpid(), "reason": reason,
                                                  "flushed": flushed, "batch_finished": ended})
    return 0 if reason != "drain thread died" else 1


if __name__ == "__main__":
    raise SystemExit(main())
