"""The service as a real process, started one way for every test: under gunicorn with the
repository's config (service/gunicorn.conf.py), as `make run` does, or as the demo
(`python -m service.run_demo`, which starts its own redis-server).

The integration tests, the real-model test and the reliability tests all start it through
`Service`; `workers_serving` reads which model version each worker serves from the
multiprocess `crm_model_version` gauge, so a test can wait for a swap to reach every worker.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import requests

from support.processes import (
    ROOT,
    children,
    free_port,
    is_writer,
    start_process,
    stop_process,
    wait_for_port,
    wait_until,
)

#: The keys integration services are started with (tests/integration/conftest.py `service_env`).
READ_KEY = "integration-read-key"
ADMIN_KEY = "integration-admin-key"
READ = {"X-API-Key": READ_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}

GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "service/gunicorn.conf.py"]
DEMO = [sys.executable, "-m", "service.run_demo"]


def workers_serving(base: str, alias: str = "champion") -> dict[str, str]:
    """pid -> model version of `alias` in every live worker, from the multiprocess crm_model_version
    gauge (a worker of an experiment has one per arm)."""
    found = {}
    for line in requests.get(f"{base}/metrics", timeout=5).text.splitlines():
        match = re.match(r'crm_model_version\{(.*)\} (\S+)', line)
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1))) if match else {}
        if "pid" in labels and labels.get("alias") == alias:
            found[labels["pid"]] = str(int(float(match.group(2))))
    return found


class Service:
    """The service on a free port, its log in `log`.

    `env` is laid over this process's environment (PORT is set here). Under gunicorn each
    service gets its own PROMETHEUS_MULTIPROC_DIR; `demo=True` runs the demo instead, from
    `cwd` (it keeps its redis files under ./var) and single-process, so without one.
    """

    def __init__(self, tmp_path: Path, env: dict[str, str], name: str = "service", *, demo: bool = False,
                 cwd: Path = ROOT) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"{name}.log"
        self.workers = int(env.get("WORKERS", "2"))
        self.command = DEMO if demo else GUNICORN
        self.cwd = cwd
        self.env = {**os.environ, **env, "PORT": str(self.port)}
        if demo:
            self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            self.env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / f"{name}-prometheus")
        self.proc: subprocess.Popen | None = None

    def start(self, ready: bool = True, timeout: float = 120.0) -> Service:
        """Start it and wait until it listens; with `ready`, until every worker serves a model.
        If it never gets there, it is stopped before the error goes up."""
        self.proc = start_process(self.command, self.env, self.log, cwd=self.cwd)
        try:
            wait_for_port(self.port, timeout=timeout, proc=self.proc)
            if ready:
                self.wait_serving(None, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serving(self) -> dict[str, str]:
        """pid -> model version of every live worker."""
        try:
            return workers_serving(self.base)
        except requests.RequestException:
            return {}

    def wait_serving(self, version: str | None, timeout: float = 60.0) -> dict[str, str]:
        """Wait until every worker serves `version` (any version when None)."""

        def done() -> dict[str, str] | None:
            serving = {pid: v for pid, v in self.serving().items() if v != "0"}
            if len(serving) == self.workers and (version is None or set(serving.values()) == {version}):
                return serving
            return None

        return wait_until(done, timeout=timeout, interval=0.25)

    def ready(self) -> requests.Response:
        return requests.get(f"{self.base}/readyz", timeout=5)

    def worker_pids(self) -> set[int]:
        """The gunicorn workers: the master's children but the exposure writer process."""
        assert self.proc is not None, "the service is not started"
        return {pid for pid in children(self.proc.pid) if not is_writer(pid)}

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
        total = 0.0
        text = requests.get(f"{self.base}/metrics", timeout=5).text
        for line in text.splitlines():
            match = re.match(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
            if not match:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(found.get(key) == value for key, value in labels.items()):
                total += float(match.group(2))
        return total

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
