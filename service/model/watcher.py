"""The thread that follows MODEL_NAME@MODEL_ALIAS: pub/sub notices, polling, backoff.

One per process, started after gunicorn forks (threads do not survive a fork). It listens on the
Redis channel of "an alias moved" notices and, as a backstop, asks the registry every
RELOAD_POLL_SECONDS. While the registry cannot be reached it asks again after 1 s, 2 s, 4 s...
up to RELOAD_POLL_SECONDS; the serving model stays meanwhile.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from service.model.errors import ModelRejected, RegistryUnavailable

logger = logging.getLogger(__name__)

#: First pause before asking an unreachable registry again; it doubles up to RELOAD_POLL_SECONDS.
_FIRST_RETRY_SECONDS = 1.0


class Watcher:
    """Calls `refresh(trigger)` at start, on each notice for this model and alias, and on a timer."""

    def __init__(self, refresh: Callable[[str], Any], serving_version: Callable[[], str | None], *,
                 model_name: str, model_alias: str, poll_seconds: float,
                 subscriber: Callable[[], Any] | None = None) -> None:
        self._refresh = refresh
        self._serving_version = serving_version
        self.model_name = model_name
        self.model_alias = model_alias
        self.poll_seconds = poll_seconds
        self._subscriber = subscriber
        self._thread: threading.Thread | None = None
        self._thread_pid: int | None = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._first_attempt = threading.Event()
        self._retry_pause = 0.0

    def ensure_started(self) -> None:
        """Start the thread in this process (again after a fork: threads do not survive one)."""
        if self._thread_pid == os.getpid() and self._thread is not None:
            return
        with self._start_lock:
            if self._thread_pid == os.getpid() and self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name=f"model-watcher-{self.model_alias}", daemon=True)
            self._thread_pid = os.getpid()
            self._thread.start()

    def wait_for_first_load(self, timeout: float) -> bool:
        """Block until the first load attempt is over (True) or `timeout` passes."""
        return self._first_attempt.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread_pid == os.getpid():
            self._thread.join(timeout)
        self._thread = None

    def _refresh_quietly(self, trigger: str) -> float:
        """Refresh, log what kept the serving model, and return when to ask the registry next
        (sooner, with a doubling pause, while it is unreachable)."""
        poll = self.poll_seconds
        try:
            self._refresh(trigger)
        except RegistryUnavailable as error:
            self._retry_pause = min(poll, self._retry_pause * 2 if self._retry_pause else _FIRST_RETRY_SECONDS)
            logger.warning("registry unreachable; the serving model is unchanged, retrying",
                           extra={"trigger": trigger, "retry_in_seconds": self._retry_pause,
                                  "reason": str(error)[:500]})
            return time.monotonic() + self._retry_pause
        except ModelRejected as error:
            logger.warning("model refresh did not change the serving model",
                           extra={"trigger": trigger, "reason": str(error)[:500]})
        except Exception:
            logger.exception("model refresh failed", extra={"trigger": trigger})
        self._retry_pause = 0.0
        return time.monotonic() + poll

    def is_for_us(self, raw: Any) -> bool:
        """True when a notice names this model and alias and a version other than the serving one."""
        try:
            message = json.loads(raw)
        except (TypeError, ValueError):
            return False
        if not isinstance(message, dict) or message.get("name") != self.model_name:
            return False
        if message.get("alias", self.model_alias) != self.model_alias:
            return False
        serving = self._serving_version()
        return serving is None or str(message.get("version")) != serving

    def _watch(self) -> None:
        poll = self.poll_seconds
        self._retry_pause = 0.0
        try:
            next_poll = self._refresh_quietly("startup")
        finally:
            self._first_attempt.set()
        next_subscribe = 0.0
        pubsub = None
        while not self._stop.is_set():
            now = time.monotonic()
            if pubsub is None and self._subscriber is not None and now >= next_subscribe:
                try:
                    pubsub = self._subscriber()
                    # a message may have passed while unsubscribed
                    next_poll = min(next_poll, self._refresh_quietly("resubscribe"))
                except Exception as error:
                    logger.debug("model-updates channel unavailable: %s", type(error).__name__)
                    next_subscribe = now + min(poll, 5.0)
            wait = max(0.0, min(next_poll - time.monotonic(), 1.0))
            if pubsub is not None:
                try:
                    message = pubsub.get_message(timeout=wait)
                except Exception:
                    pubsub = _close(pubsub)
                    next_subscribe = time.monotonic() + min(poll, 5.0)
                    continue
                if message and message.get("type") == "message" and self.is_for_us(message.get("data")):
                    next_poll = min(next_poll, self._refresh_quietly("pubsub"))
            else:
                self._stop.wait(wait)
            if time.monotonic() >= next_poll:
                next_poll = self._refresh_quietly("retry" if self._retry_pause else "poll")
        if pubsub is not None:
            _close(pubsub)


def _close(pubsub: Any) -> None:
    try:
        pubsub.close()
    except Exception:
        pass
    return None
