"""A load loop for tests that change something under traffic (an alias move): threads sending requests in turn
until stopped, every result kept with when it was sent."""
from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import requests

T = TypeVar("T")


class LoadLoop(Generic[T]):
    """`threads` threads, each with its own session, calling `send(session, turn)` for turn = its index, its
    index + 1, ... until stopped or `max_seconds` pass (every loop is bounded), pausing `pause` s between
    requests; `results` holds what `send` returned, `started_of(result)` when it was sent (time.monotonic())."""

    def __init__(self, send: Callable[[requests.Session, int], T], *, threads: int = 3, pause: float = 0.01,
                 max_seconds: float = 120.0, started_of: Callable[[T], float] = lambda r: r.started  # type: ignore[attr-defined]
                 ) -> None:
        self.results: list[T] = []
        self._send, self._pause, self._max_seconds, self._started_of = send, pause, max_seconds, started_of
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def __enter__(self) -> LoadLoop[T]:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def _run(self, index: int) -> None:
        deadline = time.monotonic() + self._max_seconds
        with requests.Session() as session:
            for turn in itertools.count(index):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                result = self._send(session, turn)
                with self._lock:
                    self.results.append(result)
                self._stop.wait(self._pause)

    def count_since(self, start: float) -> int:
        """How many results were sent at or after `start`."""
        with self._lock:
            return sum(1 for r in self.results if self._started_of(r) >= start)
