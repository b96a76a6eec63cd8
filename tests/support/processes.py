"""Real processes for the tests: free ports, waiting, starting and stopping a process group,
and a redis-server of our own.

Written once for every folder: the fixtures in tests/conftest.py, the service under gunicorn
(support/service_process.py) and the reliability harness all start and stop what they run
through these. A process is started in its own session so that stopping it stops its children
too (gunicorn's workers, the demo's redis-server); its output goes to a log file the caller
names, which the parent closes at once (the child keeps its own copy of the descriptor).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The repository root: where `service/gunicorn.conf.py` and `python -m training` resolve.
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Return once something listens on 127.0.0.1:`port`; fail fast if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll `condition` until it returns something truthy (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


def start_process(command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> subprocess.Popen:
    """Start `command` in a session of its own, stdout and stderr to `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_process(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM the process group `proc` leads (our own session: gunicorn, its workers, its redis),
    SIGKILL after `grace` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


class RedisServer:
    """A redis-server process of our own on a free port, with nothing persisted, or (`persist`)
    with the append-only file the service's exposure buffer counts on (`appendfsync everysec`)."""

    def __init__(self, workdir: Path, persist: bool = False) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.persist = persist
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test`, which installs it")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *(["--appendonly", "yes", "--appendfsync", "everysec"] if self.persist else ["--appendonly", "no"]),
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        """`kill -9`: what the append-only file had not written is lost."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


def process_table() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, command name)} of every live (non-zombie) process, read from /proc."""
    table: dict[int, tuple[int, str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, fields = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        if fields[0] != "Z":
            table[int(stat.parent.name)] = (int(fields[1]), name)
    return table


def children(pid: int) -> dict[int, str]:
    """{pid: command name} of the live processes whose parent is `pid`."""
    return {child: name for child, (parent, name) in process_table().items() if parent == pid}


def is_writer(pid: int) -> bool:
    """Whether `pid` runs the exposure writer (`python -m service.loop.writer`, EXPOSURE_WRITER=process)."""
    try:
        return b"service.loop.writer" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def descendants(pid: int) -> dict[int, str]:
    """{pid: command name} of every live process below `pid`."""
    table = process_table()
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, name) in table.items():
            if ppid == parent and child not in found:
                found[child] = name
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie has stopped)."""
    return pid in process_table()
