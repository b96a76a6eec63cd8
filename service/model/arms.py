"""The versions an online A/B test serves: one `ModelStore` per alias of EXPERIMENT.

`EXPERIMENT=champion:90,candidate:10` splits the non-control clients between the versions two
aliases point to, so both stay loaded in every worker. Each alias is followed like MODEL_ALIAS
is (its own watcher, pub/sub notices naming it, polling, local copies and load checks); the
primary store (MODEL_ALIAS) is the one `Runtime.models` has always been, so nothing that reads
it changes.

An arm that serves no version (its alias points to none, or no version of it has passed the
load checks yet) must not take its clients down: its share is answered by the primary model,
the answer names the primary alias (the variant that was actually served, so the report never
credits the arm with it), and every such answer is counted in crm_experiment_fallbacks_total.
An arm whose alias moves to a version that fails the checks keeps its last good version, as
the primary does. The arms' aliases are ones a person moves: the gate's `@challenger` is
refused by the settings, since it lands on every version that fails the promotion gate.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from service.config import Settings
from service.metrics import ARM_FALLBACKS
from service.model.errors import ModelRejected, RegistryUnavailable
from service.model.store import LoadedModel, ModelStore, RefreshResult

logger = logging.getLogger(__name__)

SERVING, ALIAS_MISSING, NOT_LOADED = "serving", "alias-missing", "not-loaded"


class ModelArms:
    """The primary store and one more store per other alias of the experiment."""

    def __init__(self, settings: Settings, primary: ModelStore, subscriber: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self.primary = primary
        self.arms = settings.arms  # parsed once: read on every request
        self.stores: dict[str, ModelStore] = {primary.settings.model_alias: primary}
        for arm in self.arms:
            if arm.alias not in self.stores:
                self.stores[arm.alias] = ModelStore(settings.model_copy(update={"model_alias": arm.alias}),
                                                    subscriber=subscriber, drop_when_alias_missing=True)
        self._unserved: set[str] = set()  # arms whose fallback was logged (once until they serve again)

    @property
    def primary_alias(self) -> str:
        return self.primary.settings.model_alias

    # ---- lifecycle (every store alike) ----

    def ensure_started(self) -> None:
        """Start every store's watcher in this process (again after a fork)."""
        for store in self.stores.values():
            store.ensure_started()

    def wait_for_first_load(self, timeout: float) -> bool:
        """Block until every store's first load attempt is over (True) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        return all(store.wait_for_first_load(max(0.0, deadline - time.monotonic()))
                   for store in self.stores.values())

    def stop(self, timeout: float = 5.0) -> None:
        for store in self.stores.values():
            store.stop(timeout)

    def refresh_all(self, trigger: str, force: bool = False) -> dict[str, RefreshResult | Exception]:
        """Refresh every alias; what each answered (a result, or why its last good version stays)."""
        outcomes: dict[str, RefreshResult | Exception] = {}
        for alias, store in self.stores.items():
            try:
                outcomes[alias] = store.refresh(trigger, force=force)
            except (RegistryUnavailable, ModelRejected) as error:
                outcomes[alias] = error
        return outcomes

    # ---- serving ----

    def status(self, alias: str) -> str:
        store = self.stores.get(alias)
        if store is not None and store.current is not None:
            return SERVING
        return ALIAS_MISSING if store is not None and store.alias_missing else NOT_LOADED

    def serving(self, alias: str, primary: LoadedModel) -> tuple[str, LoadedModel]:
        """(variant, model) for a client of arm `alias`: the arm's own version, or `primary` (with
        its alias as the variant) when the arm serves none."""
        if alias == self.primary_alias:
            return alias, primary
        store = self.stores.get(alias)
        model = store.current if store is not None else None
        if model is not None:
            if alias in self._unserved:
                self._unserved.discard(alias)
                logger.info("experiment arm serves its own version again",
                            extra={"arm": alias, "model_version": model.version})
            return alias, model
        reason = self.status(alias)
        ARM_FALLBACKS.labels(alias, reason).inc()
        if alias not in self._unserved:
            self._unserved.add(alias)
            logger.warning("experiment arm serves no version: the primary model answers its share",
                           extra={"arm": alias, "reason": reason, "served_by": primary.alias,
                                  "model_version": primary.version})
        return primary.alias, primary

    def describe(self) -> list[dict[str, Any]]:
        """Each arm's alias, weight, version and source, and which alias answers its share (/readyz)."""
        described = []
        for arm in self.arms:
            store = self.stores[arm.alias]
            model = store.current
            status = self.status(arm.alias)
            described.append({"alias": arm.alias, "weight": arm.weight, "status": status,
                              "version": model.version if model else None, "source": model.source if model else None,
                              "loaded_at": model.loaded_at if model else None,
                              "served_by": arm.alias if status == SERVING else self.primary_alias})
        return described

    def reload_report(self, outcomes: dict[str, RefreshResult | Exception]) -> list[dict[str, Any]]:
        """What a reload did to each alias (POST /v1/admin/reload's `arms`); after an error, the
        version that still serves the alias, if any."""
        report = []
        for alias, outcome in outcomes.items():
            if isinstance(outcome, RefreshResult):
                current, changed, previous, error = outcome.current, outcome.changed, outcome.previous_version, None
            else:
                current, changed, previous = self.stores[alias].current, False, None
                error = f"{type(outcome).__name__}: {outcome}"[:500]
            report.append({"alias": alias, "changed": changed, "previous_version": previous,
                           "model_version": current.version if current else None,
                           "source": current.source if current else None, "error": error})
        return report
