"""Where an exposure's CPU goes through real gunicorn: per answer, the workers', the writer's, the
master's and redis-server's CPU, with exposure logging on against off.

    python tests/bench/exposure_split.py --tracking-uri URI --model-name NAME --data DIR

Two stacks (as `make bench` starts them for the loop's ratio, serving_loop) serve the same model
from one redis-server with the append-only file. wrk saturates one of them for `--seconds`; each
process's CPU (user + system, from /proc/<pid>/stat) over the run, plus the writer's catching up
afterwards, is divided by the answers served. Runs alternate on, off, off, on. CPU per answer is
what a 2-core box divides between requests, so its on ÷ off ratio is the throughput a CPU-bound
stack keeps with logging on, read without the neighbours' noise that moves a throughput run.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1]), str(HERE.parents[1] / "tests")]

from serving_load import run_wrk  # noqa: E402
from serving_loop import logging_off, prepared_script  # noqa: E402
from serving_requests import endpoints, load_pools  # noqa: E402
from serving_stack import Stack  # noqa: E402
from support.processes import children, is_writer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
EXPOSURE_ENDPOINTS = ("cross_sell cold", "cross_sell warm", "cart 5 items")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def roles(stack: Stack) -> dict[str, list[int]]:
    """master, workers and exposure writer pids of a stack."""
    master = stack.gunicorn.pid
    kids = children(master)
    return {"master": [master], "workers": sorted(p for p in kids if not is_writer(p)),
            "writer": [p for p in kids if is_writer(p)]}


def snapshot(pids: dict[str, list[int]]) -> dict[str, float]:
    found = {role: sum(cpu_seconds(p) for p in procs) for role, procs in pids.items()}
    children_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    found["wrk"] = children_cpu.ru_utime + children_cpu.ru_stime  # wrk, once it has been waited for
    cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    found["idle"] = (int(cpu[3]) + int(cpu[4])) / TICK  # idle and iowait, all cores
    return found


def measure(stack: Stack, other: Stack, script: Path, seconds: float, connections: int, redis_pid: int,
            settle: float) -> dict[str, float]:
    """CPU per answer of `stack`'s processes; the writer's figure counts `other`'s writer too: both
    consume the one stream (as replicas' writers do), so either may store this stack's exposures."""
    pids = {**roles(stack), "redis": [redis_pid]}
    pids["writer"] = pids["writer"] + roles(other)["writer"]
    before = snapshot(pids)
    result = run_wrk(stack.base, script, seconds, connections)
    time.sleep(settle)  # the writer's gathered batch lands; its CPU is charged to these answers
    after = snapshot(pids)
    n = max(1, result["requests"])
    per = {role: (after[role] - before[role]) / n * 1e6 for role in before}
    per["total"] = sum(v for role, v in per.items() if role not in ("wrk", "idle"))
    per["rps"] = result["rps"]
    return per


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--model-name", default="crm-bench")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS of both stacks")
    parser.add_argument("--endpoints", default=",".join(EXPOSURE_ENDPOINTS), help="comma-separated endpoint names")
    args = parser.parse_args(argv)
    pools = load_pools(args.data)
    work = Path(tempfile.mkdtemp(prefix="exposure-split-"))
    common = {"GUNICORN_THREADS": str(args.threads)} if args.threads else {}
    on = Stack(work, args.tracking_uri, args.model_name, 2, settings=common)
    on.start()
    off = None
    try:
        off = logging_off(on, common)
        off.start()
        redis_pid = on.redis.proc.pid
        for n, ep in enumerate(e for e in endpoints() if e.name in args.endpoints.split(",")):
            script = prepared_script(on, off, ep, pools, 2, args.connections, n)
            found: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
            for _ in range(args.rounds):
                for side, target in (("on", on), ("off", off), ("off", off), ("on", on)):
                    found[side].append(measure(target, off if target is on else on, script, args.seconds,
                                              args.connections, redis_pid, 1.5))
            print(f"\n{ep.name}: CPU µs per answer (median of {2 * args.rounds} runs per side)")
            keys = ["workers", "writer", "master", "redis", "total", "wrk", "idle", "rps"]
            print("  side  " + "  ".join(f"{k:>8}" for k in keys))
            med = {side: {k: statistics.median(r[k] for r in runs) for k in keys} for side, runs in found.items()}
            for side in ("on", "off"):
                print(f"  {side:<4}  " + "  ".join(f"{med[side][k]:8.1f}" for k in keys))
            print(f"  off/on total CPU: {med['off']['total'] / med['on']['total']:.3f}   "
                  f"rps on/off: {med['on']['rps'] / med['off']['rps']:.3f}", flush=True)
    finally:
        if off is not None:
            off.stop()
        on.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
