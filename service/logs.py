"""JSON logs: one object per line, each carrying the request id of the request that wrote it.

Only the `service` logger tree gets our handler (not the root logger); gunicorn's own loggers
use the same formatter through `gunicorn.conf.py`. API keys are never passed to a logger, and no
personal data beyond ids is written: requests are logged by path (ids only, never the query
string, headers or bodies), and the client addresses gunicorn puts in its warnings are redacted.
"""
from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

#: "ip=203.0.113.7" in gunicorn's "Invalid request from ip=..." warnings.
_CLIENT_ADDRESS = re.compile(r"\bip=\S+")
#: LogRecord attributes that are not extras given with `logger.info(..., extra={...})`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "request_id", "pid"}


def _redact(record: logging.LogRecord) -> str:
    message = record.getMessage()
    return _CLIENT_ADDRESS.sub("ip=<redacted>", message) if record.name.startswith("gunicorn") else message


def current_request_id() -> str | None:
    """The id of the request being served by this thread, if any."""
    from flask import g, has_app_context

    if has_app_context():  # a request context holds one; the fast path pushes only the app's
        return g.get("request_id")
    return None


class JsonFormatter(logging.Formatter):
    """Render a record as a single JSON line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": _redact(record),
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:  # orjson: the access log's line costs a few microseconds
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # an integer beyond 64 bits, a key that is not text
            return orjson.dumps({key: str(value) for key, value in entry.items()}).decode()


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the moment of each record (test capture included)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(level: str = "INFO") -> None:
    """Give the `service` loggers one JSON handler on stderr (idempotent across app instances)."""
    logger = logging.getLogger("service")
    logger.setLevel(level)
    if not any(getattr(handler, "_crm_json", False) for handler in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(JsonFormatter())
        handler._crm_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    # Propagation stays on so pytest's caplog sees records; the root logger has no handler in
    # gunicorn or `python -m service`, so nothing is printed twice.
