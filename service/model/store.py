"""The model serving now, and how the next one replaces it.

`ModelStore.current` is one reference to an immutable `LoadedModel`. A request reads it once and
uses that object throughout, so no answer mixes two versions; a new version is swapped in with a
single assignment after it passed its checks (`service.model.checks`). Anything that fails keeps
the last good model serving, is logged and counted in crm_model_reloads_total{result="failure"}.

The alias is followed by a `Watcher`. When the registry cannot be reached (resolving the alias or
downloading the version) the serving model stays, the failure is counted in
crm_registry_failures_total, and such a version is not marked as failed. Each good version is
kept as a local copy (`service.model.local_copy`), so a restart while the registry is unreachable
serves it (and /readyz says `source: local-copy`); without one the service stays unready.

An experiment arm's store (`drop_when_alias_missing`, see service.model.arms) differs in one
thing: when the registry answers that its alias points to no version, it stops serving (so its
share goes to the primary model) instead of keeping its last version as the primary does.

A version is what its registry says it is: its logged model (or run) id and the digest of its
files make its `identity`, which keys the local copy and the answer cache. The version number
alone is shown (/readyz, crm_model_version) but identifies nothing across registries.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scoring.contract import SuggestionModel, client_state_of
from service.config import Settings
from service.metrics import MODEL_FROM_LOCAL_COPY, MODEL_VERSION, REGISTRY_FAILURES, RELOADS
from service.model.checks import check_recommender
from service.model.errors import (
    AliasMissing,
    ModelRejected,
    RegistryUnavailable,
    says_alias_missing,
    unreachable,
)
from service.model.local_copy import LocalCopies, LocalCopy, VersionSource
from service.model.watcher import Watcher

logger = logging.getLogger(__name__)

#: A version that failed its checks is not downloaded again before this many poll periods.
_FAILED_RETRY_POLLS = 10

@dataclass(frozen=True)
class LoadedModel:
    """One model version ready to answer; never mutated once serving."""

    name: str
    alias: str
    version: str
    recommender: SuggestionModel
    source: str  # "registry", "local-copy" (registry unreachable at start) or "direct" (tests, dev)
    loaded_at: str
    #: what identifies the version across registries (`<source id>.<files digest>`): keys the answer cache
    identity: str

    def info(self) -> dict[str, str]:
        return {"name": self.name, "alias": self.alias, "version": self.version, "source": self.source,
                "loaded_at": self.loaded_at}


@dataclass(frozen=True)
class RefreshResult:
    changed: bool
    previous_version: str | None
    current: LoadedModel | None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_recommender(model_dir: str | Path) -> SuggestionModel:
    """The contract object of the MLflow model in a local folder, with no pickle executed.

    A model saved as code is loaded by MLflow from its own code; one registered before models
    were saved as code (package format 1) has no code that runs without unpickling, so its arrays
    are read by this installation's scoring package: the one place the service reaches past
    `scoring.contract`. A package format it does not know is refused (ModelRejected)."""
    from scoring.pyfunc import UnknownModelFormat, load_model_folder

    try:
        return load_model_folder(model_dir)
    except UnknownModelFormat as error:
        raise ModelRejected(f"model format refused: {error}") from error


class ModelStore:
    """Holds the serving model of this process and follows the registry alias."""

    def __init__(self, settings: Settings, subscriber: Callable[[], Any] | None = None, *,
                 drop_when_alias_missing: bool = False) -> None:
        self.settings = settings
        self.drop_when_alias_missing = drop_when_alias_missing
        #: the registry's last answer was that the alias points to no version
        self.alias_missing = False
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()
        self._failed: dict[str, float] = {}
        self._client: Any = None
        self.copies = LocalCopies(settings.model_cache_dir / settings.model_name)
        self.watcher = Watcher(self.refresh, lambda: self._current.version if self._current else None,
                               model_name=settings.model_name, model_alias=settings.model_alias,
                               poll_seconds=settings.reload_poll_seconds, subscriber=subscriber)

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    # ---- lifecycle ----

    def ensure_started(self) -> None:
        """Start the watcher in this process (again after a fork: threads do not survive one)."""
        self.watcher.ensure_started()

    def wait_for_first_load(self, timeout: float) -> bool:
        """Block until the watcher's first load attempt is over (True) or `timeout` passes."""
        return self.watcher.wait_for_first_load(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self.watcher.stop(timeout)

    def install(self, recommender: Any, version: str, source: str = "direct") -> LoadedModel:
        """Check and serve an in-memory recommender (development and tests; not from the registry).
        Each install is its own identity: answers cached for another object are not served."""
        check_recommender(recommender)
        loaded = LoadedModel(self.settings.model_name, self.settings.model_alias, str(version), recommender,
                             source, _now(), identity=f"{source}.{uuid.uuid4().hex[:16]}")
        self._swap(loaded)
        return loaded

    # ---- following the alias ----

    def refresh(self, trigger: str, force: bool = False) -> RefreshResult:
        """Make the alias's version serve if it is not already. Raises RegistryUnavailable or
        ModelRejected when it cannot (the last good model keeps serving), AliasMissing when an
        arm's alias points to no version (it stops serving)."""
        with self._lock:
            previous = self._current
            try:
                source = self._alias_source()
            except Exception as error:
                if self.drop_when_alias_missing and says_alias_missing(error):
                    self._drop_missing_alias(trigger)
                    raise AliasMissing(f"{self.settings.model_uri} points to no version") from error
                REGISTRY_FAILURES.labels(trigger).inc()
                if previous is None and self._serve_local_copy(trigger):
                    return RefreshResult(True, None, self._current)
                raise RegistryUnavailable(f"cannot resolve {self.settings.model_uri}: "
                                          f"{type(error).__name__}: {error}"[:500]) from error
            self.alias_missing = False
            if previous is not None and (previous.version, previous.identity.rpartition(".")[0]) == (
                    source.version, source.source_id):
                if previous.source == "local-copy":
                    self._swap(replace(previous, source="registry"))
                    logger.info("registry reachable again: the local copy is the alias's version",
                                extra={"model_version": source.version})
                return RefreshResult(False, source.version, self._current)
            failed_at = self._failed.get(source.key)
            retry_after = _FAILED_RETRY_POLLS * self.settings.reload_poll_seconds
            if failed_at is not None and not force and time.monotonic() - failed_at < retry_after:
                raise ModelRejected(f"version {source.version} failed its checks recently")
            try:
                loaded = self._load_version(source)
            except RegistryUnavailable:
                REGISTRY_FAILURES.labels(trigger).inc()
                if previous is None and self._serve_local_copy(trigger):
                    return RefreshResult(True, None, self._current)
                raise
            except Exception as error:
                self._failed[source.key] = time.monotonic()
                RELOADS.labels("failure", trigger).inc()
                logger.error("model version rejected; the last good one keeps serving",
                             extra={"model_version": source.version, "trigger": trigger,
                                    "serving": previous.version if previous else None,
                                    "error": f"{type(error).__name__}: {error}"[:500]})
                if previous is None and self._serve_local_copy(trigger):
                    return RefreshResult(True, None, self._current)
                raise error if isinstance(error, ModelRejected) else ModelRejected(str(error)) from error
            self._failed.pop(source.key, None)
            self._swap(loaded)
            RELOADS.labels("success", trigger).inc()
            logger.info("model version serving", extra={"model_version": source.version, "trigger": trigger,
                                                        "previous": previous.version if previous else None})
            return RefreshResult(True, previous.version if previous else None, loaded)

    def _registry(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.settings.mlflow_tracking_uri,
                                        registry_uri=self._registry_uri())
        return self._client

    def _registry_uri(self) -> str:
        return self.settings.mlflow_registry_uri or self.settings.mlflow_tracking_uri

    def _alias_source(self) -> VersionSource:
        """The alias's version, what identifies it, and where its files are. Resolved with our own
        client: MLflow resolves `models:/name/version` with the process-wide registry URI."""
        client = self._registry()
        version = client.get_model_version_by_alias(self.settings.model_name, self.settings.model_alias)
        uri = client.get_model_version_download_uri(self.settings.model_name, version.version)
        model_id = getattr(version, "model_id", None)
        if uri.startswith("models:/m-"):  # an MLflow 3 logged model
            model_id = model_id or uri.removeprefix("models:/").split("/")[0]
            uri = client.get_logged_model(model_id).artifact_location
        source_id = model_id or version.run_id or uri
        return VersionSource(str(version.version), str(source_id), uri)

    def _download(self, artifact_uri: str, into: Path) -> str:
        import mlflow.artifacts

        return mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(into),
                                                   tracking_uri=self.settings.mlflow_tracking_uri,
                                                   registry_uri=self._registry_uri())

    def _load_version(self, source: VersionSource) -> LoadedModel:
        try:
            copy = self.copies.fetch(source, self._download)
        except Exception as error:
            if unreachable(error):
                raise RegistryUnavailable(f"cannot download version {source.version}: "
                                          f"{type(error).__name__}: {error}"[:500]) from error
            raise ModelRejected(f"version {source.version} cannot be downloaded: "
                                f"{type(error).__name__}: {error}") from error
        loaded = self._loaded(copy, "registry")
        self.copies.save_last_good(copy, self.settings.model_name, self.settings.model_alias)
        return loaded

    def _loaded(self, copy: LocalCopy, source: str) -> LoadedModel:
        try:
            recommender = load_recommender(copy.folder)
        except ModelRejected as error:
            raise ModelRejected(f"version {copy.version}: {error}") from error
        except Exception as error:
            raise ModelRejected(f"version {copy.version} does not load: {type(error).__name__}: {error}") from error
        try:
            check_recommender(recommender)
            self._check_client_state(recommender)
        except ModelRejected as error:  # say which version: an admin reload may answer for several aliases
            raise ModelRejected(f"version {copy.version}: {error}") from error
        return LoadedModel(self.settings.model_name, self.settings.model_alias, copy.version, recommender,
                           source, _now(), identity=copy.identity)

    def _check_client_state(self, recommender: Any) -> None:
        """A model whose clients live in Redis cannot serve without it (each would be a cold start)."""
        if client_state_of(recommender) is not None and not self.settings.redis_url:
            raise ModelRejected("its clients' state is in Redis (trained with CLIENT_STATE=redis) and REDIS_URL "
                                "is not set")

    def _swap(self, loaded: LoadedModel) -> None:
        self._current = loaded  # the one assignment that makes a version serve
        MODEL_VERSION.labels(loaded.name, loaded.alias).set(float(loaded.version) if loaded.version.isdigit() else 0)
        MODEL_FROM_LOCAL_COPY.labels(loaded.name, loaded.alias).set(1 if loaded.source == "local-copy" else 0)

    def _drop_missing_alias(self, trigger: str) -> None:
        """Stop serving: the registry says the alias points to no version (an arm taken down)."""
        previous, self.alias_missing = self._current, True
        self._current = None
        self.copies.forget(self.settings.model_alias)
        MODEL_VERSION.labels(self.settings.model_name, self.settings.model_alias).set(0)
        MODEL_FROM_LOCAL_COPY.labels(self.settings.model_name, self.settings.model_alias).set(0)
        if previous is not None:
            logger.warning("alias removed from the registry: its version no longer serves",
                           extra={"model_alias": self.settings.model_alias, "model_version": previous.version,
                                  "trigger": trigger})

    def _serve_local_copy(self, trigger: str) -> bool:
        """Serve the last good local copy (registry unreachable and nothing serving yet), if its
        files still have the digest they had when downloaded."""
        try:
            copy = self.copies.last_good(self.settings.model_alias)
            if copy is None:
                return False
            loaded = self._loaded(copy, "local-copy")
        except Exception as error:  # CopyUnusable, ModelRejected, or a copy unreadable on disk
            RELOADS.labels("failure", trigger).inc()
            logger.error("local model copy unusable", extra={"error": f"{type(error).__name__}: {error}"[:500]})
            return False
        self._swap(loaded)
        RELOADS.labels("success", trigger).inc()
        logger.warning("registry unreachable: serving the local copy", extra={"model_version": loaded.version})
        return True
