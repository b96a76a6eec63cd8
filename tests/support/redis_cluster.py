"""A real Redis Cluster of three masters (no replicas) on free ports, for the REDIS_CLUSTER=true tests.

Three `redis-server --cluster-enabled yes` processes in temporary directories, joined by `redis-cli --cluster
create`; ready once every node says `cluster_state:ok`. A cluster node also listens on its port + 10000 (the
cluster bus), so each port is picked with that one free too. If it cannot start, the error goes up: a test
needing it fails, never skips.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from support.processes import free_port, wait_for_port, wait_until

BUS_OFFSET = 10_000


def _bus_free(port: int) -> bool:
    if port + BUS_OFFSET > 65_535:
        return False
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port + BUS_OFFSET))
        except OSError:
            return False
    return True


def cluster_port(taken: set[int]) -> int:
    """A free port whose bus port (+10000) is free too, not in `taken`."""
    for _ in range(200):
        port = free_port()
        if port not in taken and port + BUS_OFFSET not in taken and _bus_free(port):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisClusterServer:
    """`masters` cluster nodes of our own; `url` names the first (redis-py's cluster client finds the rest)."""

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.workdir = workdir
        self.ports: list[int] = []
        for _ in range(masters):
            self.ports.append(cluster_port(set(self.ports)))
        self.procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start(self) -> RedisClusterServer:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            raise RuntimeError("redis-server / redis-cli are not installed: run `make test`, which installs them")
        try:
            for port in self.ports:
                node = self.workdir / f"node-{port}"
                node.mkdir(parents=True, exist_ok=True)
                self.procs.append(subprocess.Popen(
                    [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                     "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000", "--save", "",
                     "--appendonly", "no", "--dir", str(node)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for port, proc in zip(self.ports, self.procs, strict=True):
                wait_for_port(port, proc=proc)
            created = subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{port}" for port in self.ports), "--cluster-replicas",
                 "0", "--cluster-yes"], capture_output=True, text=True, timeout=60)
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}{created.stderr}")
            wait_until(self._ok, timeout=30, interval=0.2)
        except BaseException:
            self.stop()
            raise
        return self

    def _ok(self) -> bool:
        for port in self.ports:
            info = subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True,
                                  timeout=10).stdout
            if "cluster_state:ok" not in info:
                return False
        return True

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs = []
