"""How the service and the trainer read their settings from the environment: one base, two configs.

`service/config.py` and `training/config.py` each declare their keys once, as fields of an
`EnvSettings` subclass (type, default, description). What reading them means is written here, once,
because both sides must agree on it: a key comes from its own variable only (a shell's `K` never
stands in for `TRAIN_K`), an empty variable counts as unset, comma-separated lists parse alike, and
a relative sqlite URI names the same file for every process. This package imports neither side, so
imports still run one way (service and training both depend on it, it on pydantic-settings only).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasGenerator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

#: The environment a config reads instead of os.environ while `reading(env)` is active (tests).
_GIVEN_ENVIRONMENT: ContextVar[Mapping[str, str] | None] = ContextVar("given_environment", default=None)

#: What every config shares: frozen, each field from the variable named like it in capitals (or
#: its own `validation_alias`), settable by field name in code, empty variables unset.
ENV_CONFIG = SettingsConfigDict(
    frozen=True, case_sensitive=False, env_ignore_empty=True, extra="ignore", protected_namespaces=(),
    alias_generator=AliasGenerator(validation_alias=str.upper), validate_by_name=True, validate_by_alias=True,
    validate_default=True)


class _OwnVariables(EnvSettingsSource):
    """os.environ (or the mapping given to `reading`), each field from its own variable only."""

    def _extract_field_info(self, field: FieldInfo, field_name: str) -> list[tuple[str, str, bool]]:
        found = super()._extract_field_info(field, field_name)
        alias = field.validation_alias
        return [entry for entry in found if entry[0] == alias] if isinstance(alias, str) else found

    def _load_env_vars(self) -> Mapping[str, str | None]:
        given = _GIVEN_ENVIRONMENT.get()
        if given is None:
            return super()._load_env_vars()
        return parse_env_vars(given, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class EnvSettings(BaseSettings):
    """Keyword arguments first, then the environment: no .env file, no secrets directory."""

    model_config = ENV_CONFIG

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   **_: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _OwnVariables(settings_cls)


@contextmanager
def reading(env: Mapping[str, str] | None) -> Iterator[None]:
    """Configs built inside this block read `env` instead of os.environ (None: os.environ)."""
    token = _GIVEN_ENVIRONMENT.set(env)
    try:
        yield
    finally:
        _GIVEN_ENVIRONMENT.reset(token)


def comma_separated(value: Any) -> Any:
    """"a, b,,c" -> ("a", "b", "c"); anything but a string as it is (a `mode="before"` validator)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def absolute_sqlite_uri(uri: str) -> str:
    """`sqlite:///var/mlflow.db` made absolute from the working directory (other URIs as they are),
    so every MLflow call and every child process means the same file wherever it runs."""
    prefix = "sqlite:///"
    path = uri[len(prefix):] if uri.startswith(prefix) else ""
    if not path or path.startswith("/") or path.startswith(":memory:"):
        return uri
    return prefix + str(Path(path).resolve())


#: An MLflow tracking URI as both configs hold it: a relative sqlite path made absolute.
TrackingUri = Annotated[str, AfterValidator(absolute_sqlite_uri)]


#: Where models keep each client's state ("model": in their arrays; "redis": one key per client).
ClientStateWhere = Literal["model", "redis"]

# Settings both configs declare, each with its own description of its side (the trainer writes,
# the service reads): their defaults must agree, so they are written once, here.
CLIENT_STATE_DEFAULT: ClientStateWhere = "model"
MODEL_NAME_DEFAULT = "crm-recommender"
REDIS_CLUSTER_DEFAULT = False
EVENTS_DB_URL_DEFAULT = "sqlite:///var/events.db"
TENANT_DEFAULT = "default"


def plain_tenant(name: str) -> str:
    """A tenant name as Redis keys carry it: not empty, and without braces or spaces. Why: a brace
    would change the hash tag that keeps one client's keys in one Redis Cluster slot."""
    if not name or any(c in name for c in "{} \t\n"):
        raise ValueError(f"tenant {name!r} must be non-empty, without braces or spaces")
    return name


#: The shop a process serves or trains for (TENANT), as both configs hold it.
Tenant = Annotated[str, AfterValidator(plain_tenant)]
