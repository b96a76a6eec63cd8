"""The gunicorn master's side of EXPOSURE_WRITER=process: one writer process, kept running.

`service/gunicorn.conf.py` starts a `WriterSupervisor` when the master is ready and stops it on
exit. A thread of the master starts `python -m service.loop.writer` and starts it again, after a
short backoff, whenever it exits, until the master stops. The writer's entries left pending by a
crash are claimed by its successor (service/loop/drain.py), so a restart loses nothing.

Why it watches with `Popen.poll()` and ignores exit statuses: gunicorn's master reaps every child
with `waitpid(-1)` on SIGCHLD, the writer included, and discards what it does not know; `poll()`
then finds no child (ECHILD) and reports 0, which is enough to know it is gone. The writer runs
in a session of its own, so a Ctrl-C or a signal to the master's process group reaches the
master and its workers only: the master stops the writer last (`stop`), after the workers have
finished their requests, whose exposures it then still stores.

Why forks wait while a writer starts: `Popen` waits on a close-on-exec pipe until the new
process has exec'd. A worker the master forks meanwhile (at start, or replacing a dead one)
inherits that pipe and, never exec'ing, holds it open: `Popen` would block for the worker's whole
life. So the master's forks wait for `_SPAWNING` (`os.register_at_fork`) while a writer starts.

The writer sets no gauge, so unlike a dead worker it has nothing to be marked dead in
PROMETHEUS_MULTIPROC_DIR: its counters (crm_exposures_total) stay in the aggregate, as they should.

This module imports nothing heavy: it is loaded in the master, before the workers fork.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

#: First wait before a restart; it doubles after each quick exit up to BACKOFF_MAX_SECONDS.
BACKOFF_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
#: A writer that ran this long before exiting restarts after BACKOFF_SECONDS again.
HEALTHY_SECONDS = 60.0
POLL_SECONDS = 0.5
#: How long `stop` lets the writer finish its batch and flush before killing it.
STOP_GRACE_SECONDS = 20.0

#: Held while a writer process is being started; the master's os.fork() waits for it.
_SPAWNING = threading.Lock()
_forks_guarded = False


def _guard_forks() -> None:
    global _forks_guarded
    if not _forks_guarded:
        _forks_guarded = True
        os.register_at_fork(before=_SPAWNING.acquire, after_in_parent=_SPAWNING.release,
                            after_in_child=_SPAWNING.release)


class WriterSupervisor:
    """Starts the exposure writer process and restarts it until `stop`."""

    def __init__(self, log: Any, command: list[str] | None = None) -> None:
        self.log = log  # gunicorn's error logger (server.log): its lines are the master's
        self.command = command or [sys.executable, "-m", "service.loop.writer", "--parent", str(os.getpid())]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        _guard_forks()
        self._thread = threading.Thread(target=self._supervise, name="exposure-writer-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        with self._lock, _SPAWNING:  # `stop` sees this process or stops us first; no fork meanwhile
            if self._stop.is_set():
                return None
            try:
                self._proc = subprocess.Popen(self.command, env=os.environ, start_new_session=True)
            except OSError as error:
                self.log.error("exposure writer could not be started: %s", error)
                return None
        self.log.info("exposure writer started (pid %s)", self._proc.pid)
        return self._proc

    def _supervise(self) -> None:
        backoff = BACKOFF_SECONDS
        while not self._stop.is_set():
            started = time.monotonic()
            proc = self._spawn()
            while proc is not None and proc.poll() is None and not self._stop.is_set():
                self._stop.wait(POLL_SECONDS)
            if self._stop.is_set():
                return
            if time.monotonic() - started > HEALTHY_SECONDS:
                backoff = BACKOFF_SECONDS
            self.log.warning("exposure writer (pid %s) exited; starting another in %.0f s",
                             proc.pid if proc is not None else "-", backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop restarting, then SIGTERM the writer and wait `grace` seconds before SIGKILL."""
        with self._lock:
            self._stop.set()
            proc = self._proc
        if self._thread is not None:
            self._thread.join(POLL_SECONDS * 4)
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.log.warning("exposure writer (pid %s) did not stop in %.0f s; killed", proc.pid, grace)
                proc.kill()
                proc.wait(5)
        self.log.info("exposure writer (pid %s) stopped", proc.pid)

