"""Every setting of the service, read from the environment and nowhere else.

Each key is declared once below: its type, its default and what it changes (the README's
configuration table mirrors them, and tests/unit/test_configuration.py checks that it does). The
variable is the field's name in capitals (`redis_url` is REDIS_URL). An empty variable counts as
unset. A value that does not parse, or is out of range, stops the service with a validation error
naming the variable.

`Settings.from_env()` is the only place that reads os.environ for the service. Serving processes
also get MLFLOW_CLIENT_DEFAULTS (below) unless those MLflow variables are set.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from envconfig import (
    CLIENT_STATE_DEFAULT,
    EVENTS_DB_URL_DEFAULT,
    MODEL_NAME_DEFAULT,
    REDIS_CLUSTER_DEFAULT,
    TENANT_DEFAULT,
    ClientStateWhere,
    EnvSettings,
    Tenant,
    TrackingUri,
    comma_separated,
    reading,
)
from scoring.contract import MODEL_UPDATES_CHANNEL
from service.loop.assignment import Arm, parse_experiment

#: MLflow client settings for a serving process (set by `python -m service` and gunicorn unless
#: already in the environment): fail over to the local model copy in seconds rather than after
#: MLflow's default minutes of HTTP retries, and no progress bars in the JSON logs.
MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

CommaSeparated = Annotated[tuple[str, ...], NoDecode]
#: The alias the trainer's promotion gate sets on every version that fails it (training/registry.py):
#: never an experiment arm, which runs only on aliases a person moves.
GATE_FAILED_ALIAS = "challenger"


class Settings(EnvSettings):
    """The service's configuration: one field per environment variable."""

    mlflow_tracking_uri: TrackingUri = Field(
        "sqlite:///var/mlflow.db",
        description="Where the model registry lives; a relative sqlite path is made absolute from the "
                    "working directory (as `make run` has it).")
    mlflow_registry_uri: str | None = Field(
        None, description="Registry, when it differs from the tracking store (unset: the tracking URI).")
    model_name: str = Field(MODEL_NAME_DEFAULT, description="Registered model to serve.")
    model_alias: str = Field("champion", description="Alias of that model to follow.")
    redis_url: str | None = Field(
        None, description="Cache, event store and reload channel, e.g. redis://127.0.0.1:6379/0. Unset: the "
                          "service answers suggestions without cache, events answer 503.")
    redis_cluster: bool = Field(
        REDIS_CLUSTER_DEFAULT, description="true: REDIS_URL names a node of a Redis Cluster, reached through redis-py's cluster "
                           "client; one client's keys share a hash tag (one slot), and the rate count and the "
                           "exposure write leave the request's script (service/redis/trips.py).")
    client_state: ClientStateWhere = Field(
        CLIENT_STATE_DEFAULT, description="Where models keep each client's state: \"model\", in their arrays, or \"redis\" "
                             "(trained with CLIENT_STATE=redis), read from REDIS_URL in the request's own round "
                             "trip. The model says which it is; \"redis\" makes the service need REDIS_URL and "
                             "check at start that Redis runs with maxmemory-policy noeviction.")
    model_updates_channel: str = Field(
        MODEL_UPDATES_CHANNEL, description="Redis pub/sub channel of \"an alias moved\" notices; the trainer "
                                           "publishes on its MODEL_UPDATES_CHANNEL, so set both alike.")
    api_keys: CommaSeparated = Field((), repr=False,
                                     description="Comma-separated keys that may read suggestions and send events.")
    admin_api_keys: CommaSeparated = Field(
        (), repr=False, description="Comma-separated keys that may also reload the model and erase clients.")
    auth_disabled: bool = Field(False, description="true opens every /v1 path without a key (local demo only).")
    host: str = Field("127.0.0.1", description="Where `python -m service` and gunicorn listen.")
    port: int = Field(8000, ge=0, description="Port `python -m service` and gunicorn listen on.")
    workers: int = Field(2, ge=1, description="Gunicorn worker processes.")
    gunicorn_threads: int = Field(4, ge=1, description="Request threads per gunicorn worker.")
    keepalive_requests: int = Field(
        100, ge=0, description="Requests one kept-alive connection may carry before the answer closes it (0: no "
                               "limit). Workers share connections only as they open, so without a limit a few "
                               "long-lived client connections can all sit on one worker while the other idles.")
    cache_ttl_seconds: int = Field(300, ge=0, description="How long a cached answer may be served (0: no cache).")
    max_limit: int = Field(100, ge=1, description="Largest `limit` a caller may ask for.")
    max_body_bytes: int = Field(1_048_576, ge=256, description="Largest request body accepted (413 above).")
    max_events_per_batch: int = Field(500, ge=1, description="Largest batch of POST /v1/events.")
    max_cart_items: int = Field(100, ge=1, description="Largest cart of POST /v1/cart/suggestions.")
    redis_timeout_seconds: float = Field(0.1, ge=0.001,
                                         description="Socket and connect timeout of every Redis command.")
    redis_retry_seconds: float = Field(
        2.0, ge=0.0, description="After a Redis failure, how long requests skip Redis before trying again "
                                 "(the circuit breaker).")
    reload_poll_seconds: float = Field(30.0, ge=0.1,
                                       description="How often the registry alias is polled, as a backstop to pub/sub.")
    model_cache_dir: Path = Field(Path("var/model-cache"),
                                  description="Local copy of the last good model, used when the registry is "
                                              "unreachable (relative: from the working directory).")
    service_state_dir: Path = Field(Path("var/service-state"),
                                    description="Durable local state: erasures.jsonl (relative: from the working "
                                                "directory).")
    events_stream_maxlen: int = Field(100_000, ge=1, description="Approximate bound of the per-tenant event stream.")
    recent_purchases_max: int = Field(50, ge=1, description="Purchases kept per client for the model.")
    recent_purchases_ttl_seconds: int = Field(
        2_592_000, ge=1, description="How long they are kept, until the next training has them (30 days).")
    tenant: Tenant = Field(TENANT_DEFAULT, description="Namespace of every Redis key and of the event stream.")
    log_level: str = Field("INFO", description="Level of the service's JSON logs.")
    access_log_sample: float = Field(
        1.0, ge=0.0, le=1.0,
        description="Share of answered requests (status below 400) written to the access log; every refused or "
                    "failed request is written. 1 logs every request; 0.1 one in ten, at random.")
    fast_path: bool = Field(
        True, description="Answer /healthz and the suggestion endpoints by the thin WSGI dispatcher in front of "
                          "Flask (service/fast_path.py): the same answers, headers, checks and metrics at a fraction "
                          "of the cost. false sends every request through Flask (for comparison).")
    rate_limit_per_minute: int = Field(
        6000, ge=0,
        description="Requests a minute each API key may make on /v1 paths (429 with Retry-After above it); "
                    "counted in Redis, so the limit holds across workers and replicas. 0 switches it off; "
                    "without REDIS_URL there is no limit. When Redis is down requests are let through (fail "
                    "open) and counted in crm_rate_limit_fail_open_total. Default: 100 a second.")
    rate_limit_window_seconds: int = Field(
        60, ge=1, description="Length of the fixed window requests are counted in; each window allows "
                              "RATE_LIMIT_PER_MINUTE x window / 60 requests (at least 1).")
    request_read_timeout_seconds: float = Field(
        10.0, ge=0.1, description="How long a client may take to send one whole request (headers and body) "
                                  "before gunicorn drops the connection; see service/gunicorn.conf.py.")

    events_db_url: TrackingUri = Field(
        EVENTS_DB_URL_DEFAULT,
        description="The durable event store (SQLAlchemy URL): SQLite by default, PostgreSQL in production "
                    "(postgresql+psycopg://user:pass@host/db). Posted events, reactions and erasures are committed "
                    "here before the answer; a relative sqlite path is made absolute from the working directory.")
    events_retention_days: int = Field(400, ge=1, description="Stored events, exposures and reactions older than "
                                                              "this are purged.")
    reaction_max_age_days: int = Field(30, ge=1, description="A reaction to an older recommendation is refused (422).")
    reject_suppress_days: int = Field(90, ge=0, description="A rejected item (and its group) is not offered to that "
                                                            "client again for this long.")
    fatigue_max_shows: int = Field(3, ge=1, description="Shows without a click or acceptance after which an item, "
                                                        "or a kind, rests for the rest of FATIGUE_WINDOW_DAYS.")
    fatigue_window_days: int = Field(14, ge=1, description="The window fatigue counts shows in.")
    control_share: float = Field(0.05, ge=0.0, le=1.0, description="Share of clients (and visitors) in the persistent "
                                                                  "control group, which gets CONTROL_ANSWER.")
    control_answer: Literal["popular", "none"] = Field(
        "popular", description="What the control group gets: the popular items (business as usual) or nothing.")
    assignment_salt: str = Field("crm", description="Salt of the control and experiment hashes; changing it "
                                                    "reshuffles every group.")
    experiment: str = Field("", description="Arms of an online A/B test between aliases, e.g. "
                                            "champion:90,candidate:10 (empty: every non-control client gets "
                                            "MODEL_ALIAS).")
    exposure_logging: bool = Field(True, description="false: answers still carry their ids, but no exposure is "
                                                     "recorded (reactions to them are refused as unknown, and the "
                                                     "effect report cannot see them); for measuring its cost.")
    exposure_writer: Literal["process", "thread"] = Field(
        "process", description="Under gunicorn, who moves buffered exposures from Redis into the event store: "
                               "\"process\", one writer process the master starts and restarts "
                               "(service/loop/writer.py), or \"thread\", a writer thread in every worker. A thread "
                               "competes with the worker's request threads for its GIL (measured: the process "
                               "serves about 14% more answers a second). `python -m service` is one process "
                               "and always drains in a thread.")
    attribution_days: int = Field(14, ge=1, description="A purchase of a suggested item (or of its group) within "
                                                        "this many days of an exposure is attributed to it.")

    allowed_origins: CommaSeparated = Field(
        (), description="Comma-separated origins (scheme://host[:port]) whose pages may call the API with a "
                        "publishable key (CORS); the service's own origin always may.")
    publishable_keys: CommaSeparated = Field(
        (), description="Comma-separated keys for browsers (the cart widget): cart suggestions, similar items and "
                        "shown/clicked reactions only, from ALLOWED_ORIGINS only.")
    widget_token_secret: str | None = Field(
        None, repr=False, description="Secret shared with the shop's backend, which signs the client tokens that let "
                                      "a widget name a client_id (unset: publishable keys answer anonymous carts only).")
    widget_token_max_age_seconds: int = Field(
        900, ge=1, description="Longest life a client token may have; one expiring further ahead is refused.")
    visitor_rate_limit_per_minute: int = Field(
        120, ge=0, description="Requests a minute one visitor (address) may make with a publishable key, on top of "
                               "the key's RATE_LIMIT_PER_MINUTE (0: off).")
    app_session_ttl_seconds: int = Field(
        28_800, ge=60, description="How long a sign-in to the /app screens lasts (sessions live in Redis).")

    _comma_separated = field_validator("api_keys", "admin_api_keys", "allowed_origins", "publishable_keys",
                                       mode="before")(comma_separated)

    @model_validator(mode="after")
    def _client_state_needs_redis(self) -> Settings:
        if self.client_state == "redis" and not self.redis_url:
            raise ValueError("CLIENT_STATE=redis needs REDIS_URL: the clients' state is read from it")
        return self

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"{origin!r} is not an origin: scheme://host[:port], no path or trailing slash")
        return value

    @field_validator("model_cache_dir", "service_state_dir")
    @classmethod
    def _absolute_path(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, value: str) -> str:
        arms = parse_experiment(value, "champion")  # raises ValueError naming the bad arm
        if GATE_FAILED_ALIAS in {arm.alias for arm in arms}:
            raise ValueError(f"experiment arm {GATE_FAILED_ALIAS!r}: the promotion gate puts @{GATE_FAILED_ALIAS} on "
                             "every version that fails it; test a version by moving an alias of your own to it "
                             "(e.g. candidate)")
        return value.strip()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the environment (or `env`), then apply keyword overrides by field name (tests)."""
        with reading(env):
            return cls(**overrides)

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}@{self.model_alias}"

    @property
    def arms(self) -> tuple[Arm, ...]:
        """The experiment's arms; without EXPERIMENT one arm, MODEL_ALIAS."""
        return parse_experiment(self.experiment, self.model_alias)

    @property
    def read_keys(self) -> tuple[str, ...]:
        """Keys that may read: admin keys read too."""
        return self.api_keys + self.admin_api_keys


def apply_serving_defaults() -> None:
    """Give this serving process the MLflow client defaults (explicit environment values win)."""
    for key, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(key, value)
