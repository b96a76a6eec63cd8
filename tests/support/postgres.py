"""A real PostgreSQL server of our own, for the event store's tests: initdb into a temporary
folder, `postgres` on a free port, fsync on, a database per test.

Why like this: Debian's `postgresql` package installs `initdb` and `postgres` under
/usr/lib/postgresql/<version>/bin and starts a cluster of its own on 5432; we never touch that
one (its port, its data, its service) and start our own instead. Both programs refuse to run as
root, and CI runs as root, so they run as the `postgres` user (`runuser`) in a data folder that
user owns, created under /tmp (pytest's own temporary folders are closed to other users). Run as
anyone else they run as that user. Authentication is `trust`, on 127.0.0.1 and a private socket
folder only.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

from support.processes import free_port, start_process, wait_for_port, wait_until

#: The superuser initdb creates; the tests connect as it (trust auth on 127.0.0.1).
SUPERUSER = "postgres"


def postgres_bin() -> Path:
    """The folder of initdb and postgres: Debian's newest /usr/lib/postgresql/<version>/bin, else PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run `make test`, "
                           "which installs it (apt-get install postgresql)")
    return Path(initdb).parent


class PostgresServer:
    """One `postgres` process on a free port with its own data folder; stop() removes it all."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="crm-postgres-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.proc: subprocess.Popen | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse root: run them as the postgres user
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._initdb()

    def _initdb(self) -> None:
        command = self._as_user + [str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                                   "--auth=trust", "-E", "UTF8", "--no-locale", "--no-instructions"]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root, timeout=120,
                              env=dict(os.environ, LC_ALL="C"))
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr[-2000:]}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the server (again, after stop_server or kill) on the same port and data."""
        command = self._as_user + [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                                   "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                                   "-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "max_connections=100",
                                   "-c", "shared_buffers=32MB"]
        self.proc = start_process(command, dict(os.environ, LC_ALL="C"), self.log, cwd=self.root)
        try:
            wait_for_port(self.port, timeout=60, proc=self.proc)
            wait_until(self._accepts, timeout=60)  # listening comes before "the database system is starting up" ends
        except (RuntimeError, TimeoutError) as exc:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"postgres did not start on {self.port}: {exc}\n{log}") from exc

    def _accepts(self) -> bool:
        import psycopg

        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {self.proc.returncode}")
        try:
            with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                                 connect_timeout=5):
                return True
        except psycopg.OperationalError:
            return False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _postmaster(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop_server(self, timeout: float = 30) -> None:
        """A fast shutdown (SIGINT to the postmaster: sessions cut, everything committed kept)."""
        if not self.running:
            self.proc = None
            return
        pid = self._postmaster()
        try:
            os.kill(pid, signal.SIGINT) if pid else os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.kill()
        self.proc = None

    def kill(self) -> None:
        """`kill -9` the server and every backend (its process group): a crash, for fault tests.

        Returns once the postmaster is gone. Killed under `runuser`, it is reparented and may stay
        a zombie until init reaps it; PostgreSQL takes a zombie's pid for a live postmaster and
        refuses to start on its lock file, so the lock of a postmaster that is dead (or a zombie)
        (and its socket's) are removed: what a crash leaves is then what a restart after a power
        cut finds."""
        postmaster = self._postmaster()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        if postmaster is not None:
            try:
                os.kill(postmaster, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_until(lambda: not _alive(postmaster), timeout=10, interval=0.05)
            for lock in (self.data / "postmaster.pid", self.root / f".s.PGSQL.{self.port}.lock",
                         self.root / f".s.PGSQL.{self.port}"):
                lock.unlink(missing_ok=True)
        self.proc = None

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def remove(self) -> None:
        """Stop the server and delete its data folder."""
        self.stop_server()
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, is not alive)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
