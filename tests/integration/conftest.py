"""Fixtures of the integration tests that start the service: each test gets its own model name in
the session's `mlflow server`, a first version of the contract double registered under it, and the
environment a service needs to follow it (real Redis, keys on)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from support.processes import ROOT
from support.service_model_double import register_double
from support.service_process import ADMIN_KEY, READ_KEY

from training.config import TrainConfig

#: The trainings run as a user runs them, with no MODEL_NAME: the default name.
NAME = TrainConfig.model_fields["model_name"].default

@pytest.fixture()
def model_name() -> str:
    return f"crm-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def first_version(mlflow_server: str, model_name: str) -> str:
    return register_double(mlflow_server, model_name, tag="first")


@pytest.fixture()
def service_env(tmp_path: Path, mlflow_server: str, redis_url: str, model_name: str) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": mlflow_server, "MODEL_NAME": model_name, "REDIS_URL": redis_url,
            "API_KEYS": READ_KEY, "ADMIN_API_KEYS": ADMIN_KEY, "MODEL_CACHE_DIR": str(tmp_path / "model-cache"),
            "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db",
            "SERVICE_STATE_DIR": str(tmp_path / "state"), "REDIS_RETRY_SECONDS": "0.2",
            "RELOAD_POLL_SECONDS": "60", "REDIS_TIMEOUT_SECONDS": "0.2"}


_REGISTERED = re.compile(r"registered (\S+) version (\d+) as @(\w+) \(run (\w+),")


def _hand_run(data: Path, cwd: Path) -> dict:
    """`python -m training train --data DIR --no-tune --promote-if-none` from a plain shell in
    `cwd`: no MLFLOW_*, MODEL_NAME or REDIS_URL set, the repository on PYTHONPATH only."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "TRAIN_")) and k not in ("MODEL_NAME", "REDIS_URL", "ERASURES_FILE", "EVENTS_DB_URL")}
    env.update(PYTHONPATH=str(ROOT), TRAIN_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "training", "train", "--data", str(data), "--no-tune",
                           "--promote-if-none", "--max-baskets", "800", "--out", "out"],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = _REGISTERED.search(proc.stdout)
    assert found, proc.stdout[-2000:]
    name, version, alias, run_id = found.groups()
    return {"name": name, "version": version, "alias": alias, "run_id": run_id}


@pytest.fixture(scope="session")
def trained_runs(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two hand-run trainings into the default store of a fresh directory: v1 (empty registry)
    and v2 (gated against v1), the second loading the first as its champion."""
    root = tmp_path_factory.mktemp("registry")
    repo_db_before = (ROOT / "mlflow.db").exists()
    first = _hand_run(slice_dir, root)
    second = _hand_run(slice_dir, root)
    config = TrainConfig(tracking_uri=f"sqlite:///{(root / 'var' / 'mlflow.db').resolve()}",
                         model_name=NAME, erasures_file=str(root / "erasures.jsonl"), threads=1, redis_url=None)
    client = MlflowClient(config.tracking_uri, registry_uri=config.tracking_uri)
    for summary in (first, second):
        gate_tag = client.get_model_version(NAME, summary["version"]).tags["gate"]
        summary.update(gate=gate_tag == "passed", failures=[] if gate_tag == "passed" else gate_tag.split("; "))
    return config, first, second, root, repo_db_before


@pytest.fixture()
def trained(trained_runs):
    """`trained_runs`, with MLflow's fluent calls pointed at its store for the test (and back after)."""
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(trained_runs[0].tracking_uri)
    yield trained_runs
    mlflow.set_tracking_uri(before)


@pytest.fixture(params=["sqlite", "postgresql"])
def events_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An event store's URL, once on SQLite and once on our own PostgreSQL: a test that takes it runs on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/events.db"
    return request.getfixturevalue("postgres_url")
