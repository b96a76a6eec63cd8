"""The model registry breaks, or hands over a broken version, while traffic flows.

One gunicorn service (two workers) reaches the session's real `mlflow server` through a
`TcpProxy` that the tests take down and bring back; versions are registered straight in the
server, and the "alias moved" notice is published on Redis as the trainer does.

- A broken version moved to @champion (corrupt artifact, wrong answer schema, NaN scores, a
  wrong answer to the smoke request, a failing smoke check) is rejected by every worker, counted
  in /metrics and logged, and the old version keeps serving.
- The alias moving under traffic costs no request, and no answer mixes two versions.
- The registry unreachable during a reload: the current version keeps serving and the reload is
  retried until the registry is back.
- The registry unreachable at start: a service with a local copy serves it and says so in
  /readyz; one without stays unready (503) until the registry is back.
"""
from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests
from support.processes import RedisServer, wait_until
from support.reliability_doubles import BROKEN, register_variant
from support.reliability_harness import (
    ADMIN,
    READ,
    SUGGESTION_ENDPOINTS,
    Figures,
    LoadGenerator,
    TcpProxy,
    scaled,
    service_env,
)
from support.service_process import Service

from scoring.contract import MODEL_UPDATES_CHANNEL


@dataclass
class Registry:
    mlflow: str
    proxy: TcpProxy
    name: str
    redis_url: str
    root: Path

    def promote(self, variant: str = "tagged") -> str:
        """Register a new version as @champion and tell the services, as the trainer does."""
        version = register_variant(self.mlflow, self.name, variant)
        with redis.Redis.from_url(self.redis_url) as r:
            r.publish(MODEL_UPDATES_CHANNEL, json.dumps({"name": self.name, "alias": "champion", "version": version}))
        return version

    def env(self, cache: Path, **extra: str) -> dict[str, str]:
        return service_env(self.root, f"http://127.0.0.1:{self.proxy.port}", self.name, self.redis_url,
                           MODEL_CACHE_DIR=str(cache), EVENTS_DB_URL=f"sqlite:///{cache.parent}/events.db", **extra)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str,
             redis_server: RedisServer) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("registry-faults")
    proxy = TcpProxy(int(mlflow_server.rsplit(":", 1)[1])).up()
    try:
        yield Registry(mlflow_server, proxy, f"crm-registry-faults-{uuid.uuid4().hex[:8]}",
                       f"{redis_server.url.rsplit('/', 1)[0]}/5", root)
    finally:
        proxy.down()


@pytest.fixture(scope="module")
def serving(registry: Registry) -> Iterator[tuple[Service, str]]:
    """The long-running service, serving the first version."""
    first = registry.promote()
    service = Service(registry.root, registry.env(registry.root / "cache"), "lifecycle")
    try:
        service.start()
        service.wait_serving(first)
        yield service, first
    finally:
        service.stop()


def _current(service: Service) -> str:
    versions = set(service.serving().values())
    assert len(versions) == 1, versions
    return versions.pop()


def test_broken_versions_are_rejected_and_the_old_one_keeps_serving(
        registry: Registry, serving: tuple[Service, str], figures: Figures) -> None:
    service, _ = serving
    good = _current(service)
    rejected: dict[str, str] = {}
    with LoadGenerator(service.base) as load:
        for variant in BROKEN:
            failures = service.metric("crm_model_reloads_total", result="failure")
            version = registry.promote(variant)
            # each worker tried it, refused it, and counted it
            wait_until(lambda f=failures: service.metric("crm_model_reloads_total", result="failure") >= f + 2,
                       timeout=30, interval=0.2)
            assert set(service.serving().values()) == {good}, variant
            rejected[variant] = version
        fixed = registry.promote()
        service.wait_serving(fixed, timeout=30)
    outcomes = [o for o in load.outcomes if o.name in SUGGESTION_ENDPOINTS]
    served = {o.version for o in outcomes}
    log = [json.loads(line) for line in service.log_text().splitlines() if line.startswith("{")]
    logged = {entry.get("model_version") for entry in log if entry["message"].startswith("model version rejected")}
    figures.add("broken versions moved to @champion", ", ".join(rejected))
    figures.add("rejected by every worker / logged", f"{len(rejected)} / {len(set(rejected.values()) & logged)}",
                str(len(rejected)))
    figures.add("suggestions not 200 meanwhile", sum(o.status != 200 for o in outcomes), "0")
    figures.add("versions that answered", ", ".join(sorted(v for v in served if v)), f"{good}, then {fixed}")

    assert set(rejected.values()) <= logged
    assert outcomes and all(o.status == 200 for o in outcomes)
    assert served <= {good, fixed} and not served & set(rejected.values())


def test_alias_moves_under_traffic_without_failures_or_mixed_answers(
        registry: Registry, serving: tuple[Service, str], figures: Figures) -> None:
    service, _ = serving
    moves = int(scaled(3, 10))
    promoted = [_current(service)]
    switch_seconds = []
    with LoadGenerator(service.base, threads=4) as load:
        time.sleep(0.5)
        for _ in range(moves):
            started = time.monotonic()
            promoted.append(registry.promote())
            service.wait_serving(promoted[-1], timeout=30)
            switch_seconds.append(time.monotonic() - started)
            time.sleep(0.3)
    outcomes = [o for o in load.outcomes if o.name != "events"]
    failed = [o for o in outcomes if o.status != 200]
    mixed = [o for o in outcomes if o.mixed or (o.version is not None and o.version not in promoted)]
    figures.add("alias moves / requests meanwhile", f"{moves} / {len(load.outcomes)}")
    figures.add("failed requests / mixed-version answers", f"{len(failed)} / {len(mixed)}", "0 / 0")
    figures.add("registration to every worker serving (s, max)", max(switch_seconds))

    assert not failed, failed[:5]
    assert not mixed, mixed[:5]
    assert {o.version for o in outcomes} >= set(promoted[1:])  # the traffic saw every version


def test_registry_unreachable_during_reload_keeps_serving_and_retries(
        registry: Registry, serving: tuple[Service, str], figures: Figures) -> None:
    service, _ = serving
    serving_before = _current(service)
    failures_before = service.metric("crm_registry_failures_total")
    down_for = scaled(4.0, 15.0)
    with LoadGenerator(service.base) as load:
        registry.proxy.down()
        try:
            newer = registry.promote()  # the alias moves while this service cannot reach the registry
            admin = requests.post(f"{service.base}/v1/admin/reload", headers=ADMIN, timeout=20)
            time.sleep(down_for)
            assert set(service.serving().values()) == {serving_before}
        finally:
            registry.proxy.up()
        back = time.monotonic()
        service.wait_serving(newer, timeout=60)
        caught_up = time.monotonic() - back
    outcomes = [o for o in load.outcomes if o.name in SUGGESTION_ENDPOINTS]
    retries = service.metric("crm_registry_failures_total") - failures_before
    figures.add("registry down while the alias moved (s)", down_for)
    figures.add("suggestions not 200 meanwhile", sum(o.status != 200 for o in outcomes), "0")
    figures.add("failed registry calls counted (retries)", int(retries), ">= 2 per worker")
    figures.add("registry back to new version everywhere (s)", caught_up, f"<= {min(30.0, down_for + 1):.0f}")

    assert admin.status_code == 503 and admin.json()["type"].endswith("registry-unavailable")
    assert outcomes and all(o.status == 200 for o in outcomes)
    assert retries >= 4  # both workers retried, more than once each
    assert caught_up <= min(30.0, down_for + 1)


def test_registry_unreachable_at_start_serves_the_local_copy_or_stays_unready(
        registry: Registry, serving: tuple[Service, str], services: Callable[..., Service], figures: Figures) -> None:
    service, _ = serving
    version = _current(service)
    copy = registry.root / "copy-of-cache"
    shutil.copytree(registry.root / "cache", copy)
    unready_for = scaled(2.0, 8.0)
    registry.proxy.down()
    try:
        started = time.monotonic()
        with_copy = services(registry.env(copy, WORKERS="1"), "start-with-copy")
        copy_ready = time.monotonic() - started
        without = services(registry.env(registry.root / "empty-cache", WORKERS="1"), "start-without-copy",
                           ready=False)
        ready = with_copy.ready().json()
        answer = requests.get(f"{with_copy.base}/v1/clients/c1/suggestions", headers=READ, timeout=5)
        deadline = time.monotonic() + unready_for
        unready = []
        while time.monotonic() < deadline:
            unready.append((without.ready(), requests.get(f"{without.base}/v1/clients/c1/suggestions",
                                                         headers=READ, timeout=5)))
            time.sleep(0.25)
    finally:
        registry.proxy.up()
    back = time.monotonic()
    wait_until(lambda: without.ready().status_code == 200, timeout=40, interval=0.25)
    without_ready = time.monotonic() - back
    wait_until(lambda: with_copy.ready().json()["model"]["source"] == "registry", timeout=40, interval=0.25)
    with_copy_registry = time.monotonic() - back
    figures.add("with a local copy: ready in (s) / source", f"{copy_ready:.1f} / {ready['model']['source']}")
    figures.add("without a copy: /readyz and suggestions", f"{sorted({r.status_code for r, _ in unready})} "
                f"{sorted({s.status_code for _, s in unready})} for {unready_for:.0f} s", "[503] [503]")
    figures.add("registry back to ready / back to source registry (s)", f"{without_ready:.1f} / {with_copy_registry:.1f}")

    assert ready["model"] == {**ready["model"], "version": version, "source": "local-copy"}
    assert answer.status_code == 200 and answer.json()["model_version"] == version
    assert unready, "nothing was asked while the registry was down"
    for probe, suggestion in unready:
        assert probe.status_code == 503 and probe.json()["type"].endswith("no-model")
        assert suggestion.status_code == 503 and suggestion.headers["Content-Type"] == "application/problem+json"
    assert without_ready < 20
