"""Prometheus metrics of the service, and the /metrics exposition.

The metric objects live at module level because prometheus-client registers them once per
process. Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR (an empty folder,
before the workers start): every worker then writes its values there and /metrics aggregates
them (`gunicorn.conf.py` marks dead workers).
"""
from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("crm_http_requests_total", "HTTP requests answered, by endpoint, method and status",
                   ["endpoint", "method", "status"])
LATENCY = Histogram("crm_http_request_duration_seconds", "Time to answer, by endpoint and status",
                    ["endpoint", "status"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
CACHE = Counter("crm_cache_requests_total", "Answer cache lookups, by endpoint and result (hit, miss, off)",
                ["endpoint", "result"])
REDIS_FAILURES = Counter("crm_redis_failures_total", "Redis commands that failed or were skipped by the "
                         "open circuit breaker", ["operation"])
EVENTS = Counter("crm_events_total", "Events stored, by type", ["type"])
MODEL_VERSION = Gauge("crm_model_version", "Registry version of the model serving (0: none)",
                      ["name", "alias"], multiprocess_mode="liveall")
MODEL_FROM_LOCAL_COPY = Gauge("crm_model_from_local_copy", "1 when the model serving came from the local "
                              "copy because the registry was unreachable", ["name", "alias"],
                              multiprocess_mode="liveall")
ARM_FALLBACKS = Counter("crm_experiment_fallbacks_total", "Answers of an experiment arm given by the primary "
                        "model (MODEL_ALIAS) because the arm serves no version, by arm and reason "
                        "(alias-missing, not-loaded)", ["arm", "reason"])
RELOADS = Counter("crm_model_reloads_total", "Model loads, by result (success, failure) and trigger",
                  ["result", "trigger"])
ERASURES = Counter("crm_erasures_total", "Client erasures recorded")
REGISTRY_FAILURES = Counter("crm_registry_failures_total", "Model refreshes that could not reach the registry "
                            "(the serving model is unchanged and the refresh is retried)", ["trigger"])
RATE_LIMITED = Counter("crm_rate_limited_total", "Requests refused with 429 by the per-key rate limit")
RATE_LIMIT_FAIL_OPEN = Counter("crm_rate_limit_fail_open_total", "Requests let through unchecked because "
                               "Redis, which counts them, was unavailable")
SLOW_CLIENTS = Counter("crm_slow_clients_dropped_total", "Connections closed because the client took longer "
                       "than REQUEST_READ_TIMEOUT_SECONDS to send its request", ["stage"])

EXPOSURES = Counter("crm_exposures_total", "Answers' exposures, by fate: buffered (Redis stream), stored (written "
                    "to the event store by the drainer or directly), lost (neither Redis nor the store took it)",
                    ["fate"])
REACTIONS = Counter("crm_reactions_total", "Reactions stored, by reaction and whether it was a duplicate",
                    ["reaction", "duplicate"])
SUPPRESSED = Counter("crm_suppressed_total", "Answers with items or kinds left out by reactions or fatigue",
                     ["endpoint"])
CLIENT_STATE_MISSING = Counter(
    "crm_client_state_missing_total", "Requests of a model whose clients live in Redis answered as cold start "
    "because the client's state was not there, by reason: missing (no key: a new client, or an evicted or "
    "expired key), unreadable (a value not of the model's layout), unavailable (Redis could not be read)",
    ["reason"])
VARIANTS = Counter("crm_answers_by_variant_total", "Answers by variant (control or the arm's alias)", ["variant"])
LOOP_STATE_MISSED = Counter("crm_loop_state_missed_total", "Reactions stored durably whose Redis state could not "
                            "be updated (Redis down): the next answers do not reflect them yet")


class _WorkerFiles:
    """prometheus-client's multiprocess collector, less the workers' files that are still empty.

    A worker creates its file and only then sizes it, so for a moment it is 0 bytes long, and
    `MultiProcessCollector` fails the whole scrape on it with struct.error (a 500 on /metrics
    while a worker starts; for good if a worker died in that moment): prometheus/client_python
    issue 1199. An empty file has recorded nothing, so leaving it out loses nothing."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterable[object]:
        files = []
        for name in glob.glob(os.path.join(self.path, "*.db")):
            try:
                if os.path.getsize(name) > 0:
                    files.append(name)
            except OSError:  # removed meanwhile (a dead worker's live gauges)
                pass
        return multiprocess.MultiProcessCollector.merge(files, accumulate=True)


@lru_cache(maxsize=4096)
def child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, looked up once per worker: the object `labels` hands back is the same on
    every call (it holds the value, and follows a fork by itself), but finding it validates and joins
    the labels again, about a microsecond each, four times a request. Only for labels of bounded
    cardinality (endpoints, statuses, results, variants)."""
    return metric.labels(*labels)


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric, aggregated over workers in multiprocess mode."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        registry = CollectorRegistry()
        registry.register(_WorkerFiles(path))  # type: ignore[arg-type]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST

