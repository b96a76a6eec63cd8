"""What the serving benchmark measures on a running stack: each endpoint (saturation, then latency
at half that rate, against the /healthz floor measured just before), the memory of the master
and workers (RSS, PSS, and the model pages they share), and a live model swap under load.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from serving_load import finish_open_loop, open_loop, run_wrk, start_open_loop
from serving_requests import Endpoint, Pools, lua_script, suggestions_path
from serving_stack import Stack, wait_until, workers_serving
from support.processes import children, is_writer


def warm_up(base: str, ep: Endpoint, pools: Pools) -> None:
    import requests

    with requests.Session() as session:
        for client in pools.warm:
            session.get(base + suggestions_path(client, ep.kind), timeout=10).raise_for_status()


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
    workers = [_rollup(pid) for pid in sorted(children(stack.gunicorn.pid)) if not is_writer(pid)]
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
    import requests
    from mlflow import MlflowClient

    from scoring.contract import MODEL_UPDATES_CHANNEL

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
            r.publish(MODEL_UPDATES_CHANNEL, json.dumps({"name": stack.model_name, "alias": "champion", "version": new}))

        def all_on_new() -> bool:
            try:
                serving = workers_serving(stack.base)
            except requests.RequestException:  # workers busy past the poll's timeout: poll again
                return False
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
