"""Why a model version does not serve: raised by the store, answered by the API as problems."""
from __future__ import annotations


class ModelRejected(Exception):
    """A model version could not be loaded or failed its checks; the last good one keeps serving."""


class RegistryUnavailable(Exception):
    """The registry could not say which version the alias points to, or hand over its files."""
