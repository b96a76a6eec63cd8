"""Gunicorn settings: `gunicorn -c service/gunicorn.conf.py` serves `service:create_app()`.

HOST, PORT (default 127.0.0.1:8000) and WORKERS (default 2) come from the environment through
`service.config.Settings`. The app is not preloaded: each worker builds it after the fork and
starts its own model watcher. With several workers, Prometheus multiprocess mode is switched on
(PROMETHEUS_MULTIPROC_DIR: a fresh temporary folder unless set).

Slow clients, timeouts and shutdown (docs/reliability.md has the measurements):
- worker_class `service.workers.BufferingThreadWorker`: gthread (GUNICORN_THREADS threads per
  worker, default 4) whose event loop reads each whole request before a thread sees it, so a
  slow or stalled client holds no thread; a request not complete within
  REQUEST_READ_TIMEOUT_SECONDS (default 10) is answered 408 and closed, and an answer the client
  does not read within that time is abandoned. Idle kept-alive connections close after
  `keepalive` seconds; `worker_connections` bounds open connections (and buffered bytes).
- `timeout`: a worker that stops heart-beating this long (stuck, not merely busy) is killed and
  replaced; a worker killed by anything else is replaced at once.
- `graceful_timeout`: on SIGTERM the master stops accepting and each worker finishes the requests
  it has in flight, for up to this long, before it exits.

Exposures (EXPOSURE_WRITER): with `process` (the default) the master starts one writer process
when it is ready (`service.loop.writer`, kept running by `service.loop.supervisor`) and stops it
last on exit, after the workers; the workers start no writer thread. With `thread` each worker
starts its own writer thread after the fork.
"""
from __future__ import annotations

import os
import shutil
import tempfile

from service.config import Settings, apply_serving_defaults
from service.loop.supervisor import WriterSupervisor

_settings = Settings.from_env()
apply_serving_defaults()

wsgi_app = "service:create_app()"
bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = "service.workers.BufferingThreadWorker"
threads = _settings.gunicorn_threads
worker_connections = 200
# No request-line limit of gunicorn's own (it cannot exceed 8190 bytes, less than a valid query of
# 100 excluded ids needs): the worker caps request line and headers together at 256 KiB (431).
limit_request_line = 0
timeout = 60
graceful_timeout = 20
keepalive = 5
preload_app = False
accesslog = None  # the app logs each request as JSON with its request id
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "WARNING", "handlers": []},
    "formatters": {"json": {"()": "service.logs.JsonFormatter"}},
    "handlers": {"json_stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": "ext://sys.stderr"}},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["json_stderr"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
    },
}

if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="crm-prometheus-")
_multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
# Imported here, once PROMETHEUS_MULTIPROC_DIR is set (the workers inherit the module as imported):
# `child_exit` runs inside the master's SIGCHLD handler, and an import begun there is re-entered
# when two workers exit together, failing half done and taking the master down.
from prometheus_client import multiprocess  # noqa: E402

_writer: WriterSupervisor | None = None


def on_starting(server: object) -> None:
    """Start from empty metric files: values of a previous run would be summed in."""
    if _multiproc_dir:
        shutil.rmtree(_multiproc_dir, ignore_errors=True)
        os.makedirs(_multiproc_dir, exist_ok=True)


def when_ready(server: object) -> None:
    """EXPOSURE_WRITER=process: start the one exposure writer process (nothing to drain without Redis)."""
    global _writer
    if _settings.exposure_writer == "process" and _settings.redis_url:
        _writer = WriterSupervisor(server.log)  # type: ignore[attr-defined]
        _writer.start()


def on_exit(server: object) -> None:
    """The workers are gone: stop the writer, which stores the batch in hand and what is left."""
    if _writer is not None:
        _writer.stop()


def post_worker_init(worker: object) -> None:
    """Start this worker's model watchers (and with EXPOSURE_WRITER=thread its exposure writer) now,
    and give the models' first loads a head start before the worker accepts requests (bounded well
    below `timeout`, so a slow registry cannot get the worker killed; it then answers 503 until
    the model is there)."""
    app = getattr(worker, "wsgi", None)
    extensions = getattr(app, "extensions", {})
    if "crm" in extensions:
        arms = extensions["crm"].arms  # the primary model and each other alias of EXPERIMENT
        arms.ensure_started()
        if _settings.exposure_writer == "thread":
            extensions["crm"].drain.ensure_started()  # buffered exposures -> the event store
        arms.wait_for_first_load(timeout / 2)


def child_exit(server: object, worker: object) -> None:
    """A dead worker's live gauges leave /metrics' aggregate."""
    if _multiproc_dir:
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
