"""Schemathesis fuzzes every endpoint from the spec the service publishes at /openapi.json.

The service runs under gunicorn with Redis and a registered model; `schemathesis run` (the CLI
from PyPI, as a subprocess) reads /openapi.json and sends generated requests, valid and invalid,
with an admin key, running all of its checks: no 5xx, status codes, content types, headers and
bodies as documented, invalid data refused, valid data accepted, auth not ignored, unsupported
methods answered 405. `make test` sends about 500 cases (coverage and fuzzing phases, 10 examples
per operation, fixed seed); `make reliability` at least 1,000 (150 per operation, a new seed
each run, printed in the summary so a failure can be replayed).
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.processes import ROOT, RedisServer
from support.reliability_harness import ADMIN_KEY, FULL, Figures, service_env, serving_variant
from support.service_process import Service

EXAMPLES_PER_OPERATION = 150 if FULL else 10
MIN_CASES = 1000 if FULL else 150


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str, redis_server: RedisServer) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("fuzz")
    name = f"crm-fuzz-{uuid.uuid4().hex[:8]}"
    env = service_env(root, mlflow_server, name, f"{redis_server.url.rsplit('/', 1)[0]}/7", WORKERS="1")
    with serving_variant(root, env, "fuzz", mlflow_server, name) as (service, _):
        yield service


def test_every_endpoint_fuzzed_from_the_published_spec(fuzzed: Service, tmp_path: Path, figures: Figures) -> None:
    seed = random.randrange(2**32) if FULL else 20261123
    report = tmp_path / "schemathesis.json"
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{fuzzed.base}/openapi.json",
               "--header", f"X-API-Key: {ADMIN_KEY}", "--checks", "all", "--max-examples", str(EXAMPLES_PER_OPERATION),
               "--seed", str(seed), "--workers", "1", "--request-timeout", "15", "--report", "json",
               "--report-json-path", str(report)]
    started = time.monotonic()
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.monotonic() - started
    result = json.loads(report.read_text())
    log = [json.loads(line) for line in fuzzed.log_text().splitlines() if line.startswith("{")]
    server_errors = [entry for entry in log if entry.get("message") == "request" and entry.get("status", 0) >= 500]
    tracebacks = [entry for entry in log if "exception" in entry]
    cases = result["test_cases"]["generated"]
    figures.add("cases generated / passed", f"{cases} / {cases - result['test_cases']['with_failures']}",
                f">= {MIN_CASES}")
    figures.add("operations tested", f"{result['operations']['tested']} of {result['operations']['total']}",
                "all (the spec's own /openapi.json is read, not fuzzed)")
    figures.add("check failures / errors", f"{len(result['failures'])} / {len(result['errors'])}", "0 / 0")
    figures.add("5xx answers / tracebacks in the service log", f"{len(server_errors)} / {len(tracebacks)}", "0 / 0")
    figures.add("seed / seconds", f"{seed} / {seconds:.0f}")

    assert done.returncode == 0 and not result["failures"] and not result["errors"], done.stdout[-6000:]
    assert result["operations"]["tested"] == result["operations"]["total"]
    assert cases >= MIN_CASES
    assert not server_errors and not tracebacks, (server_errors + tracebacks)[:3]
