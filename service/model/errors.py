"""Why a model version does not serve: raised by the store, answered by the API as problems; and how
the store tells an unreachable registry from one that answered "no such alias"."""
from __future__ import annotations

#: Words of the errors MLflow and requests raise when the registry or artifact store is unreachable.
_UNREACHABLE_WORDS = ("max retries exceeded", "connection refused", "connection reset", "connection aborted",
                      "timed out", "name or service not known", "remote end closed", "error code 50",
                      "status code 50", "too many 50")


class ModelRejected(Exception):
    """A model version could not be loaded or failed its checks; the last good one keeps serving."""


class AliasMissing(ModelRejected):
    """The registry answered, and the alias points to no version (or the model is not registered).

    Raised only by stores that serve an experiment arm: an arm whose alias was removed stops
    serving (its share goes to the primary model), where the primary keeps its last good version."""


class RegistryUnavailable(Exception):
    """The registry could not say which version the alias points to, or hand over its files."""


def unreachable(error: BaseException) -> bool:
    """True when `error` (or what caused it) says the registry could not be reached, as opposed
    to a version that is itself broken."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        if type(current).__module__.startswith(("requests", "urllib3")) and (
                "ConnectionError" in type(current).__name__ or "Timeout" in type(current).__name__):
            return True
        if any(word in str(current).lower() for word in _UNREACHABLE_WORDS):
            return True
        current = current.__cause__ or current.__context__
    return False


def says_alias_missing(error: BaseException) -> bool:
    """True when the registry answered that the alias (or the registered model) does not exist:
    MLflow says RESOURCE_DOES_NOT_EXIST for an unknown model, INVALID_PARAMETER_VALUE "alias ...
    not found" for an unknown alias."""
    code = getattr(error, "error_code", None)
    return not unreachable(error) and (code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "not found" in str(error).lower()))
