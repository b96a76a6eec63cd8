"""The model serving now, and how the next one replaces it.

`ModelStore.current` is one reference to an immutable `LoadedModel`. A request reads it once and
uses that object throughout, so no answer mixes two versions; a new version is swapped in with a
single assignment after it passed its checks (it loads, `smoke_check()` passes, a smoke request
answers sane suggestions). Anything that fails keeps the last good model serving, is logged and
counted in crm_model_reloads_total{result="failure"}.

A watcher thread (one per process, started after gunicorn forks) follows MODEL_NAME@MODEL_ALIAS:
it listens on the Redis channel `crm-recommender:model-updates` and, as a backstop, asks the
registry every RELOAD_POLL_SECONDS. When the registry cannot be reached (resolving the alias or
downloading the version) the serving model stays, the failure is counted in
crm_registry_failures_total, and the watcher tries again after 1 s, 2 s, 4 s... up to
RELOAD_POLL_SECONDS; such a version is not marked as failed. Each good version is kept in
MODEL_CACHE_DIR with a `last_good.json`, so a restart while the registry is unreachable serves
the local copy (and /readyz says `source: local-copy`); without one the service stays unready.
"""
from __future__ import annotations

import json
import logging
import math
import numbers
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from service.config import Settings
from service.metrics import MODEL_FROM_LOCAL_COPY, MODEL_VERSION, REGISTRY_FAILURES, RELOADS
from service.schemas import KINDS

logger = logging.getLogger(__name__)

CONTRACT_METHODS = ("knows_client", "knows_item", "segment", "suggest", "cart", "similar", "smoke_check")
SMOKE_CLIENT = "__smoke-check-unknown-client__"
SMOKE_LIMIT = 3
_KEEP_VERSIONS = 3
#: A version that failed its checks is not downloaded again before this many poll periods.
_FAILED_RETRY_POLLS = 10
#: First pause before asking an unreachable registry again; it doubles up to RELOAD_POLL_SECONDS.
_FIRST_RETRY_SECONDS = 1.0
#: Words of the errors MLflow and requests raise when the registry or artifact store is unreachable.
_UNREACHABLE_WORDS = ("max retries exceeded", "connection refused", "connection reset", "connection aborted",
                      "timed out", "name or service not known", "remote end closed", "error code 50",
                      "status code 50", "too many 50")


class ModelRejected(Exception):
    """A model version could not be loaded or failed its checks; the last good one keeps serving."""


class RegistryUnavailable(Exception):
    """The registry could not say which version the alias points to."""


@dataclass(frozen=True)
class LoadedModel:
    """One model version ready to answer; never mutated once serving."""

    name: str
    alias: str
    version: str
    recommender: Any
    source: str  # "registry", "local-copy" (registry unreachable at start) or "direct" (tests, dev)
    loaded_at: str

    def info(self) -> dict[str, str]:
        return {"name": self.name, "alias": self.alias, "version": self.version, "source": self.source,
                "loaded_at": self.loaded_at}


@dataclass(frozen=True)
class RefreshResult:
    changed: bool
    previous_version: str | None
    current: LoadedModel | None


def _check_suggestions(where: str, answer: Any, limit: int, id_field: str = "item_id") -> None:
    if not isinstance(answer, list):
        raise ModelRejected(f"{where} did not answer a list")
    if len(answer) > limit:
        raise ModelRejected(f"{where} answered {len(answer)} suggestions when asked for {limit}")
    for item in answer:
        score = item.get("score") if isinstance(item, dict) else None
        if (not isinstance(score, numbers.Real) or isinstance(score, bool) or not math.isfinite(score)
                or not isinstance(item.get(id_field), str) or not item[id_field]
                or not isinstance(item.get("reason", ""), str)):
            raise ModelRejected(f"{where} answered an invalid suggestion: {item!r}"[:300])


def check_recommender(recommender: Any) -> None:
    """Raise ModelRejected unless `recommender` implements the contract and answers its smoke
    requests sanely: lists within the limit, finite scores, string ids, cold-start suggestions
    for a client it cannot know, a cart with its three lists."""
    missing = [name for name in CONTRACT_METHODS if not callable(getattr(recommender, name, None))]
    if missing:
        raise ModelRejected(f"the recommender lacks {', '.join(missing)}")
    try:
        recommender.smoke_check()
        answers = {kind: recommender.suggest(SMOKE_CLIENT, kind, SMOKE_LIMIT) for kind in KINDS}
        cart = recommender.cart([], None, SMOKE_LIMIT)
        knows = recommender.knows_client(SMOKE_CLIENT)
        segment = recommender.segment(SMOKE_CLIENT)
    except Exception as error:
        raise ModelRejected(f"smoke check failed: {type(error).__name__}: {error}") from error
    for kind, answer in answers.items():
        _check_suggestions(f"suggest({kind})", answer, SMOKE_LIMIT)
    if not answers["cross_sell"]:
        raise ModelRejected("suggest(cross_sell) answered nothing for an unknown client (no cold start)")
    if bool(knows) or not isinstance(segment, dict):
        raise ModelRejected("knows_client() or segment() answered wrongly for an unknown client")
    if not isinstance(cart, dict) or not {"complete", "upsell", "bundles"} <= set(cart):
        raise ModelRejected("cart() did not answer complete, upsell and bundles")
    for part, id_field in (("complete", "item_id"), ("upsell", "item_id"), ("bundles", "bundle_id")):
        _check_suggestions(f"cart().{part}", cart[part], SMOKE_LIMIT, id_field)


def _unreachable(error: BaseException) -> bool:
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_recommender(model_dir: str | Path) -> Any:
    """Load an MLflow pyfunc from a local folder and unwrap the contract object it carries."""
    import mlflow.pyfunc

    pyfunc_model = mlflow.pyfunc.load_model(str(model_dir), suppress_warnings=True)
    return pyfunc_model.unwrap_python_model().recommender


class ModelStore:
    """Holds the serving model of this process and follows the registry alias."""

    def __init__(self, settings: Settings, subscriber: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self._subscriber = subscriber
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()
        self._failed: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._thread_pid: int | None = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._first_attempt = threading.Event()
        self._retry_pause = 0.0
        self._client: Any = None
        self.cache_dir = settings.model_cache_dir / settings.model_name

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    # ---- lifecycle ----

    def ensure_started(self) -> None:
        """Start the watcher in this process (again after a fork: threads do not survive one)."""
        if self._thread_pid == os.getpid() and self._thread is not None:
            return
        with self._start_lock:
            if self._thread_pid == os.getpid() and self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="model-watcher", daemon=True)
            self._thread_pid = os.getpid()
            self._thread.start()

    def wait_for_first_load(self, timeout: float) -> bool:
        """Block until the watcher's first load attempt is over (True) or `timeout` passes."""
        return self._first_attempt.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread_pid == os.getpid():
            self._thread.join(timeout)
        self._thread = None

    def install(self, recommender: Any, version: str, source: str = "direct") -> LoadedModel:
        """Check and serve an in-memory recommender (development and tests; not from the registry)."""
        check_recommender(recommender)
        loaded = LoadedModel(self.settings.model_name, self.settings.model_alias, str(version), recommender,
                             source, _now())
        self._swap(loaded)
        return loaded

    # ---- following the alias ----

    def refresh(self, trigger: str, force: bool = False) -> RefreshResult:
        """Make the alias's version serve if it is not already. Raises RegistryUnavailable or
        ModelRejected when it cannot (the last good model keeps serving)."""
        with self._lock:
            previous = self._current
            try:
                version = self._alias_version()
            except Exception as error:
                REGISTRY_FAILURES.labels(trigger).inc()
                if previous is None and self._serve_local_copy(trigger):
                    return RefreshResult(True, None, self._current)
                raise RegistryUnavailable(f"cannot resolve {self.settings.model_uri}: "
                                          f"{type(error).__name__}: {error}"[:500]) from error
            if previous is not None and previous.version == version:
                if previous.source == "local-copy":
                    self._swap(replace(previous, source="registry"))
                    logger.info("registry reachable again: the local copy is the alias's version",
                                extra={"model_version": version})
                return RefreshResult(False, version, self._current)
            failed_at = self._failed.get(version)
            retry_after = _FAILED_RETRY_POLLS * self.settings.reload_poll_seconds
            if failed_at is not None and not force and time.monotonic() - failed_at < retry_after:
                raise ModelRejected(f"version {version} failed its checks recently")
            try:
                loaded = self._load_version(version)
            except RegistryUnavailable:
                REGISTRY_FAILURES.labels(trigger).inc()
                if previous is None and self._serve_local_copy(trigger):
                    return RefreshResult(True, None, self._current)
                raise
            except Exception as error:
                self._failed[version] = time.monotonic()
                RELOADS.labels("failure", trigger).inc()
                logger.error("model version rejected; the last good one keeps serving",
                             extra={"model_version": version, "trigger": trigger,
                                    "serving": previous.version if previous else None,
                                    "error": f"{type(error).__name__}: {error}"[:500]})
                if previous is None and self._serve_local_copy(trigger):
                    return RefreshResult(True, None, self._current)
                raise error if isinstance(error, ModelRejected) else ModelRejected(str(error)) from error
            self._failed.pop(version, None)
            self._swap(loaded)
            RELOADS.labels("success", trigger).inc()
            logger.info("model version serving", extra={"model_version": version, "trigger": trigger,
                                                         "previous": previous.version if previous else None})
            return RefreshResult(True, previous.version if previous else None, loaded)

    def _registry(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.settings.mlflow_tracking_uri,
                                        registry_uri=self.settings.mlflow_registry_uri
                                        or self.settings.mlflow_tracking_uri)
        return self._client

    def _alias_version(self) -> str:
        return str(self._registry().get_model_version_by_alias(self.settings.model_name,
                                                               self.settings.model_alias).version)

    def _load_version(self, version: str) -> LoadedModel:
        try:
            model_dir = self._download(version)
        except Exception as error:
            if _unreachable(error):
                raise RegistryUnavailable(f"cannot download version {version}: "
                                          f"{type(error).__name__}: {error}"[:500]) from error
            raise ModelRejected(f"version {version} cannot be downloaded: {type(error).__name__}: {error}") from error
        try:
            recommender = load_recommender(model_dir)
        except Exception as error:
            raise ModelRejected(f"version {version} does not load: {type(error).__name__}: {error}") from error
        check_recommender(recommender)
        loaded = LoadedModel(self.settings.model_name, self.settings.model_alias, version, recommender,
                             "registry", _now())
        self._save_last_good(version)
        return loaded

    def _swap(self, loaded: LoadedModel) -> None:
        self._current = loaded  # the one assignment that makes a version serve
        MODEL_VERSION.labels(loaded.name, loaded.alias).set(float(loaded.version) if loaded.version.isdigit() else 0)
        MODEL_FROM_LOCAL_COPY.labels(loaded.name).set(1 if loaded.source == "local-copy" else 0)

    # ---- the local copy ----

    def _download(self, version: str) -> Path:
        """The model folder of `version` in MODEL_CACHE_DIR, downloaded once (versions are immutable)."""
        import mlflow.artifacts

        final = self.cache_dir / f"v{version}"
        if (final / "MLmodel").exists():
            return final
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = self.cache_dir / f".download-{uuid.uuid4().hex}"
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=self._artifact_uri(version), dst_path=str(staging),
                tracking_uri=self.settings.mlflow_tracking_uri,
                registry_uri=self.settings.mlflow_registry_uri or self.settings.mlflow_tracking_uri)
            try:
                os.rename(local, final)  # atomic; another worker may have won the race
            except OSError:
                if not (final / "MLmodel").exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final

    def _artifact_uri(self, version: str) -> str:
        """Where the version's files are. Resolved with our own client: MLflow resolves
        `models:/name/version` with the process-wide registry URI, not the one it is given."""
        client = self._registry()
        uri = client.get_model_version_download_uri(self.settings.model_name, version)
        if uri.startswith("models:/m-"):  # an MLflow 3 logged model
            uri = client.get_logged_model(uri.removeprefix("models:/").split("/")[0]).artifact_location
        return uri

    def _save_last_good(self, version: str) -> None:
        record = {"name": self.settings.model_name, "alias": self.settings.model_alias, "version": version,
                  "path": f"v{version}", "saved_at": _now()}
        target = self.cache_dir / "last_good.json"
        staging = self.cache_dir / f".last_good-{uuid.uuid4().hex}.json"
        staging.write_text(json.dumps(record))
        os.replace(staging, target)
        self._prune(keep=f"v{version}")

    def _prune(self, keep: str) -> None:
        versions = sorted((p for p in self.cache_dir.glob("v*") if p.is_dir() and p.name != keep),
                          key=lambda p: p.stat().st_mtime, reverse=True)
        for old in versions[_KEEP_VERSIONS - 1:]:
            shutil.rmtree(old, ignore_errors=True)

    def _serve_local_copy(self, trigger: str) -> bool:
        """Serve the last good local copy (registry unreachable and nothing serving yet)."""
        record_path = self.cache_dir / "last_good.json"
        try:
            record = json.loads(record_path.read_text())
            if record.get("alias") != self.settings.model_alias:
                return False
            recommender = load_recommender(self.cache_dir / record["path"])
            check_recommender(recommender)
        except FileNotFoundError:
            return False
        except Exception as error:
            RELOADS.labels("failure", trigger).inc()
            logger.error("local model copy unusable", extra={"error": f"{type(error).__name__}: {error}"[:500]})
            return False
        loaded = LoadedModel(self.settings.model_name, self.settings.model_alias, str(record["version"]),
                             recommender, "local-copy", _now())
        self._swap(loaded)
        RELOADS.labels("success", trigger).inc()
        logger.warning("registry unreachable: serving the local copy", extra={"model_version": loaded.version})
        return True

    # ---- the watcher thread ----

    def _refresh_quietly(self, trigger: str) -> float:
        """Refresh, log what kept the serving model, and return when to ask the registry next
        (sooner, with a doubling pause, while it is unreachable)."""
        poll = self.settings.reload_poll_seconds
        try:
            self.refresh(trigger)
        except RegistryUnavailable as error:
            self._retry_pause = min(poll, self._retry_pause * 2 if self._retry_pause else _FIRST_RETRY_SECONDS)
            logger.warning("registry unreachable; the serving model is unchanged, retrying",
                           extra={"trigger": trigger, "retry_in_seconds": self._retry_pause,
                                  "reason": str(error)[:500]})
            return time.monotonic() + self._retry_pause
        except ModelRejected as error:
            logger.warning("model refresh did not change the serving model",
                           extra={"trigger": trigger, "reason": str(error)[:500]})
        except Exception:
            logger.exception("model refresh failed", extra={"trigger": trigger})
        self._retry_pause = 0.0
        return time.monotonic() + poll

    def _is_for_us(self, raw: Any) -> bool:
        try:
            message = json.loads(raw)
        except (TypeError, ValueError):
            return False
        if not isinstance(message, dict) or message.get("name") != self.settings.model_name:
            return False
        if message.get("alias", self.settings.model_alias) != self.settings.model_alias:
            return False
        current = self._current
        return current is None or str(message.get("version")) != current.version

    def _watch(self) -> None:
        poll = self.settings.reload_poll_seconds
        self._retry_pause = 0.0
        try:
            next_poll = self._refresh_quietly("startup")
        finally:
            self._first_attempt.set()
        next_subscribe = 0.0
        pubsub = None
        while not self._stop.is_set():
            now = time.monotonic()
            if pubsub is None and self._subscriber is not None and now >= next_subscribe:
                try:
                    pubsub = self._subscriber()
                    # a message may have passed while unsubscribed
                    next_poll = min(next_poll, self._refresh_quietly("resubscribe"))
                except Exception as error:
                    logger.debug("model-updates channel unavailable: %s", type(error).__name__)
                    next_subscribe = now + min(poll, 5.0)
            wait = max(0.0, min(next_poll - time.monotonic(), 1.0))
            if pubsub is not None:
                try:
                    message = pubsub.get_message(timeout=wait)
                except Exception:
                    pubsub = self._close(pubsub)
                    next_subscribe = time.monotonic() + min(poll, 5.0)
                    continue
                if message and message.get("type") == "message" and self._is_for_us(message.get("data")):
                    next_poll = min(next_poll, self._refresh_quietly("pubsub"))
            else:
                self._stop.wait(wait)
            if time.monotonic() >= next_poll:
                next_poll = self._refresh_quietly("retry" if self._retry_pause else "poll")
        if pubsub is not None:
            self._close(pubsub)

    @staticmethod
    def _close(pubsub: Any) -> None:
        try:
            pubsub.close()
        except Exception:
            pass
        return None
