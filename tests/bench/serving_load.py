"""The two load generators: wrk for saturation (closed loop, C, cheap on a 2-core box) and an
open-loop asyncio generator, in its own process, for latency at a fixed rate.

Open loop: request i leaves at start + i / rate whatever happened to the others, and its latency
counts from that scheduled time, so a stalled server shows up as queueing in p99 instead of being
hidden by a client that stops sending (coordinated omission). The generator's own send lag and
CPU are reported with its figures. Run as a script (`--open-loop-child CONFIG`) it is that child.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import random
import resource
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from serving_requests import Endpoint, Pools, build_request
from serving_stack import start_logged, stop_group


def run_wrk(base: str, script: Path, seconds: float, connections: int) -> dict[str, Any]:
    """Closed-loop saturation: `connections` keep-alive connections from one wrk thread."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s",
               str(script), base]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-500:] or done.stdout[-500:]}")
    raw = json.loads(line.split(" ", 1)[1])
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {"requests": raw["requests"], "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
            "non_2xx": raw["status"], "socket_errors": socket_errors, "errors": raw["status"] + socket_errors,
            "p50_ms": raw["p50_us"] / 1000, "p99_ms": raw["p99_us"] / 1000}


def start_open_loop(config: dict[str, Any], work: Path, label: str) -> tuple[subprocess.Popen, Path]:
    """The open-loop generator in its own process (see `_open_loop`); returns it and its result file."""
    config_path, out = work / f"openloop-{label}.json", work / f"openloop-{label}.result.json"
    config_path.write_text(json.dumps({**config, "out": str(out)}))
    proc = start_logged([sys.executable, str(Path(__file__).resolve()), "--open-loop-child", str(config_path)],
                  work / f"openloop-{label}.log")
    return proc, out


def finish_open_loop(proc: subprocess.Popen, out: Path, timeout: float, stop: bool = False) -> dict[str, Any]:
    if stop and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the child stops sending, drains and writes its result
    try:
        proc.wait(timeout=timeout)
    finally:
        stop_group(proc, grace=5)
    if not out.exists():
        raise RuntimeError(f"the open-loop generator wrote no result; see {out.with_suffix('.log')}")
    return json.loads(out.read_text())


def open_loop(base: str, ep: Endpoint, pools_file: Path, rate: float, seconds: float, work: Path,
              label: str, keep: bool = False) -> dict[str, Any]:
    """One open-loop run; `keep` adds every request's latency (`latencies_ms`) for pooling runs."""
    config = {"base": base, "endpoint": asdict(ep), "pools": str(pools_file), "rate": rate, "seconds": seconds,
              "timeout": 5.0, "seed": random.randrange(1 << 30), "versions": False, "keep": keep}
    proc, out = start_open_loop(config, work, label)
    return finish_open_loop(proc, out, timeout=seconds + 60)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def _open_loop(config: dict[str, Any]) -> dict[str, Any]:
    """Send request i at start + i / rate whatever happened to the others; latency from that time."""
    import aiohttp
    import yarl

    ep = Endpoint(**config["endpoint"])
    pools = Pools(**json.loads(Path(config["pools"]).read_text()))
    rng = random.Random(config["seed"])
    rate, total = config["rate"], max(1, int(config["rate"] * config["seconds"]))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    latencies: list[float] = []
    lags: list[float] = []
    statuses: Counter[str] = Counter()
    caches: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    headers = {"Content-Type": "application/json"} if ep.method == "POST" else {}

    async def one(session: aiohttp.ClientSession, at: float, path: str, body: bytes | None) -> None:
        lags.append(loop.time() - at)
        try:
            async with session.request(ep.method, yarl.URL(config["base"] + path, encoded=True), data=body,
                                       headers=headers) as response:
                payload = await response.read()
                status, cache = str(response.status), response.headers.get("X-Cache", "-")
                if config["versions"] and response.status == 200:
                    versions[str(json.loads(payload).get("model_version"))] += 1
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            status, cache = type(error).__name__, "-"
        latencies.append(loop.time() - at)
        statuses[status] += 1
        caches[cache] += 1

    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=config["timeout"])
    tasks = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = loop.time() + 0.05
        for n in range(total):
            await asyncio.sleep(max(0.0, start + n / rate - loop.time()))
            if stop.is_set():
                break
            path, body = build_request(ep, pools, rng, n)
            tasks.append(asyncio.create_task(one(session, start + n / rate, path, body)))
        elapsed = loop.time() - start
        if tasks:
            await asyncio.wait(tasks, timeout=config["timeout"] + 2)
    ok = sum(count for status, count in statuses.items() if status.startswith("2"))
    looked_up = caches["hit"] + caches["miss"]
    usage = resource.getrusage(resource.RUSAGE_SELF)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return {"rate": round(rate, 1), "sent": len(tasks), "completed": len(latencies), "ok": ok,
            "errors": len(tasks) - ok, "statuses": dict(statuses), "seconds": round(elapsed, 2),
            "p50_ms": ms(_quantile(latencies, 0.50)), "p95_ms": ms(_quantile(latencies, 0.95)),
            "p99_ms": ms(_quantile(latencies, 0.99)), "max_ms": ms(max(latencies, default=None)),
            "send_lag_p99_ms": ms(_quantile(lags, 0.99)),
            "cache_hit_ratio": round(caches["hit"] / looked_up, 3) if looked_up else None,
            "generator_cpu": round((usage.ru_utime + usage.ru_stime) / max(elapsed, 1e-9), 2),
            "versions": dict(versions),
            **({"latencies_ms": [round(v * 1000, 3) for v in latencies]} if config.get("keep") else {})}


def open_loop_child(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    result = asyncio.run(_open_loop(config))
    Path(config["out"]).write_text(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--open-loop-child":
        open_loop_child(sys.argv[2])
    else:
        raise SystemExit("usage: serving_load.py --open-loop-child CONFIG (started by bench_serving.py)")
