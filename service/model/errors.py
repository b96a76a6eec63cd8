"""Why a model version does not serve: raised by the store, answered by the API as problems."""
from __future__ import annotations


class ModelRejected(Exception):
    """A model version could not be loaded or failed its checks; the last good one keeps serving."""


class AliasMissing(ModelRejected):
    """The registry answered, and the alias points to no version (or the model is not registered).

    Raised only by stores that serve an experiment arm: an arm whose alias was removed stops
    serving (its share goes to the primary model), where the primary keeps its last good version."""


class RegistryUnavailable(Exception):
    """The registry could not say which version the alias points to, or hand over its files."""
