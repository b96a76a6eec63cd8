"""`python -m service.run_demo` (what `make run` calls): the whole product on one machine.

1. Makes sure MODEL_NAME@MODEL_ALIAS exists in the registry, training on data/sample otherwise.
2. Without REDIS_URL, starts a private redis-server (nothing persisted) on 6380 or a free port.
3. Replaces itself with gunicorn (service/gunicorn.conf.py); AUTH_DISABLED=true unless API_KEYS is set.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from service.config import Settings

SAMPLE = Path("data/sample")
DEMO_REDIS_PORT = 6380


def _log(message: str) -> None:
    print(f"[run_demo] {message}", flush=True)


def ensure_model(settings: Settings) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri,
                          registry_uri=settings.mlflow_registry_uri or settings.mlflow_tracking_uri)
    try:
        version = client.get_model_version_by_alias(settings.model_name, settings.model_alias).version
    except Exception:
        version = None
    if version is None:
        _log(f"no {settings.model_uri} in {settings.mlflow_tracking_uri}: training on {SAMPLE}")
        env = dict(os.environ, MLFLOW_TRACKING_URI=settings.mlflow_tracking_uri)
        trained = subprocess.run([sys.executable, "-m", "training", "train", "--data", str(SAMPLE),
                                  "--promote-if-none"], env=env)
        if trained.returncode != 0:
            raise SystemExit(f"training failed (exit {trained.returncode}); the service needs a model")
        version = client.get_model_version_by_alias(settings.model_name, settings.model_alias).version
    _log(f"serving {settings.model_uri} (version {version})")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(workdir: Path) -> str:
    """A redis-server of our own in the background; it stops with the demo (same process group)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (make run installs it) and REDIS_URL is not set")
    port = DEMO_REDIS_PORT if _port_free(DEMO_REDIS_PORT) else _free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=open(workdir / "redis.log", "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while _port_free(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"redis-server did not start; see {workdir / 'redis.log'}")
        time.sleep(0.05)
    _log(f"started redis-server on 127.0.0.1:{port} (pid {proc.pid}, nothing persisted)")
    return f"redis://127.0.0.1:{port}/0"


def _example_ids() -> tuple[str, str]:
    try:
        import pyarrow.parquet as pq

        client = pq.read_table(SAMPLE / "clients.parquet", columns=["client_id"]).column(0)[0].as_py()
        item = pq.read_table(SAMPLE / "items.parquet", columns=["item_id"]).column(0)[0].as_py()
        return str(client), str(item)
    except Exception:
        return "1", "1"


def print_try_lines(settings: Settings, auth_disabled: bool) -> None:
    base = f"http://{settings.host}:{settings.port}"
    key = "" if auth_disabled else ' -H "X-API-Key: $API_KEY"'
    client, item = _example_ids()
    lines = [
        f"curl -s {base}/readyz",
        f"curl -s{key} '{base}/v1/clients/{client}/suggestions?kind=all&limit=5'",
        f"curl -s{key} '{base}/v1/items/{item}/similar?limit=5'",
        f"curl -s{key} -X POST {base}/v1/cart/suggestions -H 'Content-Type: application/json' "
        f"-d '{{\"items\": [\"{item}\"], \"limit\": 5}}'",
        f"curl -s{key} -X POST {base}/v1/events -H 'Content-Type: application/json' -d '{{\"events\": "
        f"[{{\"client_id\": \"{client}\", \"item_id\": \"{item}\", \"type\": \"purchase\", "
        f"\"timestamp\": \"2024-01-01T10:00:00Z\"}}]}}'",
        f"open {base}/docs   # every endpoint; {base}/openapi.json, {base}/metrics",
    ]
    _log("try:\n  " + "\n  ".join(lines))


def main() -> None:
    settings = Settings.from_env()
    Path("var").mkdir(exist_ok=True)
    ensure_model(settings)
    env = dict(os.environ, MLFLOW_TRACKING_URI=settings.mlflow_tracking_uri)
    if not settings.redis_url:
        env["REDIS_URL"] = start_redis(Path("var/redis").resolve())
    auth_disabled = settings.auth_disabled or not settings.api_keys
    if auth_disabled:
        env["AUTH_DISABLED"] = "true"
        _log("AUTH_DISABLED=true (set API_KEYS to require keys)")
    if settings.workers > 1:
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path("var/prometheus").resolve()))
    print_try_lines(settings, auth_disabled)
    config = Path(__file__).with_name("gunicorn.conf.py")
    os.execve(sys.executable, [sys.executable, "-m", "gunicorn", "-c", str(config)], env)


if __name__ == "__main__":
    main()
