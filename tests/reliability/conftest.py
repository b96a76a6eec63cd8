"""Fixtures of the fault, fuzz and security tests (the plain helpers are in support/).

- `figures` records measured figures on the running test's report and registers, once, the
  plugin that prints them all in one table at the end of the run.
- `services` starts services under gunicorn for one test and stops each one after it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.reliability_harness import Figures, ReliabilityReport
from support.service_process import Service


@pytest.fixture()
def figures(request: pytest.FixtureRequest) -> Figures:
    manager = request.config.pluginmanager
    if manager.get_plugin(ReliabilityReport.name) is None:
        manager.register(ReliabilityReport(), ReliabilityReport.name)
    return Figures(request.node)


@pytest.fixture()
def services(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start services with `services(env, name=...)`; each is stopped after the test."""
    made: list[Service] = []

    def make(env: dict[str, str], name: str = "service", start: bool = True, ready: bool = True) -> Service:
        service = Service(tmp_path, env, name)
        made.append(service)
        return service.start(ready=ready) if start else service

    yield make
    for service in made:
        service.stop()
