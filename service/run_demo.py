"""`python -m service.run_demo` (what `make run` calls): the whole product on one machine.

1. Makes sure MODEL_NAME@MODEL_ALIAS exists in the registry, training on data/sample otherwise.
2. Without REDIS_URL, starts a private redis-server (append-only file under var/redis, fsync every
   second: the exposure buffer's bound) on 6380 or a free port.
3. Runs gunicorn (service/gunicorn.conf.py) until it exits; AUTH_DISABLED=true unless API_KEYS is set.

It stays the parent of what it started and stops it on the way out, whatever the way: Ctrl-C
(SIGINT), SIGTERM, gunicorn exiting, or an error. Gunicorn goes first (it finishes the requests in
flight), then redis-server. A second Ctrl-C while stopping kills what is left at once. On Linux the
children also get SIGTERM if this process is killed outright (SIGKILL), so nothing outlives the demo.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from service.config import Settings

SAMPLE = Path("data/sample")
DEMO_REDIS_PORT = 6380
#: How long gunicorn may take to finish its requests and exit (its graceful_timeout is 20 s).
GUNICORN_STOP_SECONDS = 30
REDIS_STOP_SECONDS = 10


class Stopped(Exception):
    """SIGTERM arrived: stop like Ctrl-C does."""


class Children:
    """The processes the demo started, stopped in reverse order (the server before its Redis)."""

    def __init__(self) -> None:
        self._started: list[tuple[str, subprocess.Popen, float]] = []

    def start(self, name: str, command: list[str], stop_seconds: float, **popen: object) -> subprocess.Popen:
        proc = subprocess.Popen(command, preexec_fn=_die_with_parent(), **popen)  # type: ignore[call-overload]
        self._started.append((name, proc, stop_seconds))
        return proc

    def stop(self) -> None:
        """SIGTERM each still running, newest first, and wait; SIGKILL after its grace period, or
        at once for everything left on a second Ctrl-C."""
        try:
            for name, proc, stop_seconds in reversed(self._started):
                if proc.poll() is None:
                    _log(f"stopping {name} (pid {proc.pid})")
                    proc.terminate()
                    try:
                        proc.wait(stop_seconds)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
        except (KeyboardInterrupt, Stopped):
            for _, proc, _ in self._started:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when this process dies (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def set_death_signal() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_death_signal


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


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


def start_redis(children: Children, workdir: Path) -> str:
    """A redis-server of our own in the background; `children` stops it with the demo."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (make run installs it) and REDIS_URL is not set")
    port = DEMO_REDIS_PORT if _port_free(DEMO_REDIS_PORT) else _free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "redis.log", "ab") as log:
        proc = children.start("redis-server", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                               "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(workdir)],
                              REDIS_STOP_SECONDS, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while _port_free(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"redis-server did not start; see {workdir / 'redis.log'}")
        time.sleep(0.05)
    _log(f"started redis-server on 127.0.0.1:{port} (pid {proc.pid}, append-only file, fsync every second)")
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
    _log("screens:\n  " + "\n  ".join(screen_lines(base, client)))


def screen_lines(base: str, client: str) -> list[str]:
    """The screens' URLs, as `make run` prints them."""
    return [f"{base}/app/clients/{client}   client card (search: {base}/app/clients)",
            f"{base}/app/tasks   the manager's tasks: clients whose behaviour changed",
            f"{base}/app/demo-shop   the cart widget on a demo shop",
            f"{base}/app/effect   effect dashboard",
            f"{base}/docs/interactive   try the API (Swagger UI); reference: {base}/docs",
            f"{base}/widget/integrity.json   the widget's versioned URL and SRI hash"]


def serve(children: Children) -> int:
    """Everything the demo does, up to gunicorn's exit status."""
    settings = Settings.from_env()
    Path("var").mkdir(exist_ok=True)
    ensure_model(settings)
    env = dict(os.environ, MLFLOW_TRACKING_URI=settings.mlflow_tracking_uri)
    if not settings.redis_url:
        env["REDIS_URL"] = start_redis(children, Path("var/redis").resolve())
    auth_disabled = settings.auth_disabled or not settings.api_keys
    if auth_disabled:
        env["AUTH_DISABLED"] = "true"
        _log("AUTH_DISABLED=true (set API_KEYS to require keys)")
    if settings.workers > 1:
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path("var/prometheus").resolve()))
    print_try_lines(settings, auth_disabled)
    _log("Ctrl-C stops the demo and everything it started")
    config = Path(__file__).with_name("gunicorn.conf.py")
    gunicorn = children.start("gunicorn", [sys.executable, "-m", "gunicorn", "-c", str(config)],
                              GUNICORN_STOP_SECONDS, env=env)
    return gunicorn.wait()


def main() -> int:
    signal.signal(signal.SIGTERM, _raise_stopped)
    children = Children()
    try:
        status = serve(children)
        _log(f"gunicorn exited with status {status}")
        return status
    except KeyboardInterrupt:
        _log("interrupted")
        return 130
    except Stopped as stop:
        _log(f"{stop}: stopping")
        return 128 + signal.SIGTERM
    finally:
        children.stop()


if __name__ == "__main__":
    sys.exit(main())
