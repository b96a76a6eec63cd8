"""Every setting of the service, read from the environment and nowhere else.

`Settings.from_env()` is the only place that reads os.environ for the service. Each key, its
default and what it changes:

MLFLOW_TRACKING_URI    where the model registry lives. Default: sqlite:///<abs ./var/mlflow.db>
                       (absolute path of var/mlflow.db under the working directory, as `make run`).
MLFLOW_REGISTRY_URI    registry, when it differs from the tracking store. Default: the tracking URI.
MODEL_NAME             registered model to serve. Default: crm-recommender.
MODEL_ALIAS            alias of that model to follow. Default: champion.
REDIS_URL              cache, event store and reload channel, e.g. redis://127.0.0.1:6379/0.
                       Default: unset: the service answers suggestions without cache, events 503.
API_KEYS               comma-separated keys that may read suggestions and send events.
ADMIN_API_KEYS         comma-separated keys that may also reload the model and erase clients.
AUTH_DISABLED          "true" opens every /v1 path without a key (local demo only). Default: false.
HOST, PORT             where `python -m service` and gunicorn listen. Default: 127.0.0.1, 8000.
WORKERS                gunicorn worker processes. Default: 2.
CACHE_TTL_SECONDS      how long a cached answer may be served. Default: 300.
MAX_LIMIT              largest `limit` a caller may ask for. Default: 100.
MAX_BODY_BYTES         largest request body accepted (413 above). Default: 1048576 (1 MiB).
MAX_EVENTS_PER_BATCH   largest batch of POST /v1/events. Default: 500.
MAX_CART_ITEMS         largest cart of POST /v1/cart/suggestions. Default: 100.
REDIS_TIMEOUT_SECONDS  socket and connect timeout of every Redis command. Default: 0.1.
REDIS_RETRY_SECONDS    after a Redis failure, how long requests skip Redis before trying again
                       (the circuit breaker). Default: 2.0.
RELOAD_POLL_SECONDS    how often the registry alias is polled as a backstop to pub/sub. Default: 30.
MODEL_CACHE_DIR        local copy of the last good model, used when the registry is unreachable.
                       Default: <abs ./var/model-cache>.
SERVICE_STATE_DIR      durable local state (erasures.jsonl). Default: <abs ./var/service-state>.
EVENTS_STREAM_MAXLEN   approximate bound of the per-tenant event stream. Default: 100000.
RECENT_PURCHASES_MAX   purchases kept per client for the model. Default: 50.
RECENT_PURCHASES_TTL_SECONDS  how long they are kept (until the next training has them).
                       Default: 2592000 (30 days).
TENANT                 namespace of every Redis key and of the event stream. Default: default.
LOG_LEVEL              level of the service's JSON logs. Default: INFO.
RATE_LIMIT_PER_MINUTE  requests a minute each API key may make on /v1 paths (429 with Retry-After
                       above it); counted in Redis, so the limit holds across workers and replicas.
                       0 switches it off; without REDIS_URL there is no limit. When Redis is down
                       requests are let through (fail open) and counted in
                       crm_rate_limit_fail_open_total. Default: 6000 (100 a second).
RATE_LIMIT_WINDOW_SECONDS  length of the fixed window the requests are counted in; each window
                       allows RATE_LIMIT_PER_MINUTE x window / 60 requests (at least 1).
                       Default: 60.
REQUEST_READ_TIMEOUT_SECONDS  how long a client may take to send one whole request (headers and
                       body) before gunicorn drops the connection; see service/gunicorn.conf.py.
                       Default: 10.

Serving processes also get MLFLOW_CLIENT_DEFAULTS (below) unless those MLflow variables are set.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

#: MLflow client settings for a serving process (set by `python -m service` and gunicorn unless
#: already in the environment): fail over to the local model copy in seconds rather than after
#: MLflow's default minutes of HTTP retries, and no progress bars in the JSON logs.
MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _keys(raw: str | None) -> tuple[str, ...]:
    return tuple(key.strip() for key in (raw or "").split(",") if key.strip())


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, not {raw!r}")


def _number(env: Mapping[str, str], name: str, default: float, kind: type, minimum: float) -> Any:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a {kind.__name__}, not {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {raw!r}")
    return value


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    raw = env.get(name)
    return Path(raw).expanduser().resolve() if raw else default


@dataclass(frozen=True)
class Settings:
    """The service's configuration; see the module docstring for every key."""

    mlflow_tracking_uri: str
    mlflow_registry_uri: str | None = None
    model_name: str = "crm-recommender"
    model_alias: str = "champion"
    redis_url: str | None = None
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    admin_api_keys: tuple[str, ...] = field(default=(), repr=False)
    auth_disabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    cache_ttl_seconds: int = 300
    max_limit: int = 100
    max_body_bytes: int = 1_048_576
    max_events_per_batch: int = 500
    max_cart_items: int = 100
    redis_timeout_seconds: float = 0.1
    redis_retry_seconds: float = 2.0
    reload_poll_seconds: float = 30.0
    model_cache_dir: Path = Path("var/model-cache").resolve()
    service_state_dir: Path = Path("var/service-state").resolve()
    events_stream_maxlen: int = 100_000
    recent_purchases_max: int = 50
    recent_purchases_ttl_seconds: int = 2_592_000
    tenant: str = "default"
    log_level: str = "INFO"
    rate_limit_per_minute: int = 6000
    rate_limit_window_seconds: int = 60
    request_read_timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the environment (or `env`), then apply keyword overrides (tests)."""
        env = os.environ if env is None else env
        var = Path.cwd() / "var"
        settings = cls(
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(var / 'mlflow.db').resolve()}",
            mlflow_registry_uri=env.get("MLFLOW_REGISTRY_URI") or None,
            model_name=env.get("MODEL_NAME") or "crm-recommender",
            model_alias=env.get("MODEL_ALIAS") or "champion",
            redis_url=env.get("REDIS_URL") or None,
            api_keys=_keys(env.get("API_KEYS")),
            admin_api_keys=_keys(env.get("ADMIN_API_KEYS")),
            auth_disabled=_bool(env, "AUTH_DISABLED", False),
            host=env.get("HOST") or "127.0.0.1",
            port=_number(env, "PORT", 8000, int, 0),
            workers=_number(env, "WORKERS", 2, int, 1),
            cache_ttl_seconds=_number(env, "CACHE_TTL_SECONDS", 300, int, 0),
            max_limit=_number(env, "MAX_LIMIT", 100, int, 1),
            max_body_bytes=_number(env, "MAX_BODY_BYTES", 1_048_576, int, 256),
            max_events_per_batch=_number(env, "MAX_EVENTS_PER_BATCH", 500, int, 1),
            max_cart_items=_number(env, "MAX_CART_ITEMS", 100, int, 1),
            redis_timeout_seconds=_number(env, "REDIS_TIMEOUT_SECONDS", 0.1, float, 0.001),
            redis_retry_seconds=_number(env, "REDIS_RETRY_SECONDS", 2.0, float, 0.0),
            reload_poll_seconds=_number(env, "RELOAD_POLL_SECONDS", 30.0, float, 0.1),
            model_cache_dir=_path(env, "MODEL_CACHE_DIR", var / "model-cache"),
            service_state_dir=_path(env, "SERVICE_STATE_DIR", var / "service-state"),
            events_stream_maxlen=_number(env, "EVENTS_STREAM_MAXLEN", 100_000, int, 1),
            recent_purchases_max=_number(env, "RECENT_PURCHASES_MAX", 50, int, 1),
            recent_purchases_ttl_seconds=_number(env, "RECENT_PURCHASES_TTL_SECONDS", 2_592_000, int, 1),
            tenant=env.get("TENANT") or "default",
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            rate_limit_per_minute=_number(env, "RATE_LIMIT_PER_MINUTE", 6000, int, 0),
            rate_limit_window_seconds=_number(env, "RATE_LIMIT_WINDOW_SECONDS", 60, int, 1),
            request_read_timeout_seconds=_number(env, "REQUEST_READ_TIMEOUT_SECONDS", 10.0, float, 0.1),
        )
        return replace(settings, **overrides) if overrides else settings

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}@{self.model_alias}"

    @property
    def read_keys(self) -> tuple[str, ...]:
        """Keys that may read: admin keys read too."""
        return self.api_keys + self.admin_api_keys


def apply_serving_defaults() -> None:
    """Give this serving process the MLflow client defaults (explicit environment values win)."""
    for key, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(key, value)
