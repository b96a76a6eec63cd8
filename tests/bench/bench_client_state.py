"""Client state in Redis (issue 15): a worker's memory with state for the data's clients and for many more,
and what one client costs Redis. A measurement, not a test.

    PYTHONPATH=. .venv/bin/python tests/bench/bench_client_state.py --clients 500000

1. Fits the model on the data (no tuning) with its candidate lists, and writes every client's state into a
   redis-server of our own (free port, nothing persisted) through the trainer's own code
   (`training.client_state.write`), timing it.
2. Registers the item-side model into a throw-away MLflow store and serves it with gunicorn
   (CLIENT_STATE=redis, CACHE_TTL_SECONDS=0 so every request scores), sends `--requests` suggestion requests
   (kind=all) for random known clients and reads each worker's RSS and PSS (/proc/<pid>/smaps_rollup).
   The same with the clients in the model's arrays (CLIENT_STATE=model), for comparison.
3. Replicates the households under new ids (`r<k>-<id>`, the same values) up to `--clients`, registers the
   item side with the transitions replicated alike (what a model trained on them would carry), restarts
   gunicorn and measures again, with requests spread over every client.
4. Redis: `MEMORY USAGE` of sampled keys and `INFO memory` used_memory per client.
5. Unless `--seconds 0`: the cold cross_sell and next_basket requests' saturation and p99 at half of it, with
   the clients in the model and with `--clients` in Redis, as `make bench` measures them (wrk installed).
6. Unless `--p99-rounds 0`: both stacks at once, each kind at one rate (half the lower saturation), in
   A B B A rounds; the p99 of every answer pooled per side, the ratio and its bootstrap interval.

Figures go to stdout and `--out` (JSON).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import redis  # noqa: E402
import requests  # noqa: E402
from serving_load import open_loop  # noqa: E402
from serving_measure import _rollup, bench_endpoint  # noqa: E402
from serving_requests import Endpoint, Pools  # noqa: E402
from serving_stack import FULL, Stack  # noqa: E402
from support.processes import RedisServer, children, is_writer  # noqa: E402

from features.loader import load_dataset  # noqa: E402
from scoring import client_state  # noqa: E402
from scoring.contract import client_state_key  # noqa: E402
from scoring.recommender import Recommender  # noqa: E402
from scoring.state import ModelState  # noqa: E402
from training import client_state as trainer_state  # noqa: E402
from training.candidates import precompute  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.context import TrainContext  # noqa: E402
from training.fit import fit_recommender  # noqa: E402
from training.registry import log_and_register  # noqa: E402

NAME = "crm-bench-state"
#: suggestion kinds whose cold requests are timed at half saturation (`--seconds`)
LATENCY_KINDS = ("cross_sell", "next_basket")
BATCH = 2000
#: The service's settings in every case: client state in Redis, no cached answers (every request
#: scores), no exposure logging (issue 12's cost is measured elsewhere).
SETTINGS = {"CLIENT_STATE": "redis", "CACHE_TTL_SECONDS": "0", "EXPOSURE_LOGGING": "false"}


def fit(data: Path) -> Recommender:
    dataset = load_dataset(data)
    rec = fit_recommender(TrainContext.build(dataset.transactions, dataset.items, dataset.packages),
                          TrainConfig(threads=2), fingerprint=dataset.fingerprint)
    precompute(rec, workers=2)
    return rec


def replicate(r: redis.Redis, rec: Recommender, model_id: str, total: int) -> list[str]:
    """Write the households again under new ids until `total` clients have state; their ids."""
    encoder = client_state.Encoder(rec.state)
    values = [encoder.encode(ci) for ci in range(len(rec.client_ids))]
    base = [str(c) for c in rec.client_ids]
    ids = list(base)
    k = 1
    while len(ids) < total:
        pipe = r.pipeline(transaction=False)
        for client, value in zip(base, values, strict=True):
            if len(ids) >= total:
                break
            new = f"r{k}-{client}"
            pipe.set(client_state_key(model_id, new), value)
            ids.append(new)
            if len(pipe) >= BATCH:
                pipe.execute()
                pipe = r.pipeline(transaction=False)
        pipe.execute()
        k += 1
    return ids


def replicated_item_side(item_side: Recommender, copies: int, clients: int) -> Recommender:
    """The item side a model trained on the replicated households would register: transitions `copies` times."""
    st = item_side.state
    extras = dict(st.extras)
    if "crm_t_client_id" in extras:
        names = extras["crm_t_client_id"].astype(object)
        extras["crm_t_client_id"] = np.concatenate(
            [names] + [np.array([f"r{k}-{n}" for n in names], dtype=object) for k in range(1, copies)]).astype(str)
        for key in [k for k in extras if k.startswith("crm_t_") and k != "crm_t_client_id"]:
            extras[key] = np.concatenate([extras[key]] * copies)
    meta = {**st.meta, "client_state": {**st.meta["client_state"], "clients": clients}}
    kept = {name: getattr(st, name) for name in st.__dataclass_fields__}
    kept.update(extras=extras, meta=meta)
    return Recommender(ModelState(**kept))


def register(item_side: Recommender, config: TrainConfig) -> str:
    """Register the item side as it is (its meta already says where its clients are)."""
    plain = config.model_copy(update={"client_state": "model"})
    return log_and_register(item_side, {"tasks": {}}, plain, promote="force")["version"]


def drive(base: str, clients: list[str], n: int, seed: int) -> dict[str, float]:
    """`n` kind=all requests for random clients, four at a time; latency percentiles in ms."""
    rng = random.Random(seed)
    picked = [rng.choice(clients) for _ in range(n)]
    session = requests.Session()

    def ask(client: str) -> float:
        started = time.perf_counter()
        answer = session.get(f"{base}/v1/clients/{client}/suggestions?kind=all&limit=5", timeout=30)
        answer.raise_for_status()
        if answer.json()["cold_start"]:
            raise RuntimeError(f"{client} answered as cold start")
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(4) as pool:
        times = sorted(pool.map(ask, picked))
    return {"requests": n, "p50_ms": round(times[n // 2], 1), "p99_ms": round(times[int(n * 0.99)], 1)}


def measure(stack: Stack, clients: list[str], args: argparse.Namespace, seed: int,
            items: list[str]) -> dict[str, Any]:
    """Drive requests, read the workers' memory, then (`--seconds` > 0) each `LATENCY_KINDS` cold request's
    saturation and p99 at half of it, as `make bench` measures them (wrk, then the open loop)."""
    stack.start()
    try:
        latency = drive(stack.base, clients, args.requests, seed)
        assert stack.gunicorn is not None
        workers = [_rollup(pid) for pid in sorted(children(stack.gunicorn.pid)) if not is_writer(pid)]
        endpoints = []
        if args.seconds > 0:
            pools_file = pools_for(stack, clients, items, seed)
            pools = Pools(**json.loads(pools_file.read_text()))
            endpoints = [bench_endpoint(stack, Endpoint("cold", kind), pools, pools_file, args, n)
                         for n, kind in enumerate(LATENCY_KINDS)]
    finally:
        stack.stop()
    return {"clients": len(clients), "latency": latency, "workers": workers, "endpoints": endpoints,
            "worker_rss_mb": max(w["rss_mb"] for w in workers), "worker_pss_mb": max(w["pss_mb"] for w in workers)}


def pools_for(stack: Stack, clients: list[str], items: list[str], seed: int) -> Path:
    """The request pools of `stack`'s clients, written where the load generators read them."""
    rng = random.Random(seed)
    pools = Pools(clients=rng.sample(clients, min(len(clients), 20_000)), warm=clients[:50],
                  popular=items[:200], exclude=items[:5000])
    path = stack.work / "pools.json"
    path.write_text(json.dumps(asdict(pools)))
    return path


def pooled_p99(rounds: list[dict[str, list[float]]], a: str, b: str, draws: int = 1000,
               seed: int = 0) -> dict[str, Any]:
    """p99 of `a`'s and `b`'s latencies pooled over every round, `b` / `a`, and the 2.5 % and 97.5 %
    quantiles of that ratio over rounds drawn with replacement: a run's p99 is its ~40th-slowest
    answer, so one run cannot tell 1.5x from noise, and the rounds move with the machine's load."""
    def p99(draw: list[dict[str, list[float]]], side: str) -> float:
        return float(np.percentile(np.concatenate([np.asarray(r[side]) for r in draw]), 99))

    rng = np.random.default_rng(seed)
    ratios = sorted(p99(drawn, b) / p99(drawn, a)
                    for drawn in ([rounds[i] for i in rng.integers(0, len(rounds), len(rounds))] for _ in range(draws)))
    # robust to the stalls that hit a run or two at random on a shared box: each round's own p99
    per_round = {side: [round(p99([r], side), 2) for r in rounds] for side in (a, b)}
    return {f"{a}_p99_ms": round(p99(rounds, a), 2), f"{b}_p99_ms": round(p99(rounds, b), 2),
            "round_p99_ms": per_round,
            "median_round_ratio": round(float(np.median(per_round[b]) / np.median(per_round[a])), 3),
            "requests": {side: sum(len(r[side]) for r in rounds) for side in (a, b)},
            "ratio": round(p99(rounds, b) / p99(rounds, a), 3),
            "interval": [round(ratios[int(0.025 * (draws - 1))], 3), round(ratios[int(0.975 * (draws - 1))], 3)]}


def paired_p99(stacks: dict[str, tuple[Stack, Path]], kind: str, rate: float, rounds: int,
               seconds: float) -> dict[str, Any]:
    """Cold `kind` requests at one rate on both stacks (both up, one loaded at a time), A B B A in
    every round so that a drift of the machine's load falls on both sides alike; p99 pooled."""
    a, b = stacks
    ep = Endpoint("cold", kind)
    got: list[dict[str, list[float]]] = []
    errors = {a: 0, b: 0}
    for n in range(rounds):
        round_ = {a: [], b: []}
        for k, side in enumerate((a, b, b, a)):
            stack, pools_file = stacks[side]
            run = open_loop(stack.base, ep, pools_file, rate, seconds, stack.work, f"pair-{kind}-{n}-{k}", keep=True)
            round_[side] += run["latencies_ms"]
            errors[side] += run["errors"]
        got.append(round_)
        print(f"  {kind} round {n + 1}/{rounds}: p99 {a} {np.percentile(round_[a], 99):.1f} ms, "
              f"{b} {np.percentile(round_[b], 99):.1f} ms", flush=True)
    return {"kind": kind, "rate": round(rate, 1), "rounds": rounds, "run_seconds": seconds, "errors": errors,
            **pooled_p99(got, a, b)}


def redis_costs(r: redis.Redis, model_id: str, clients: list[str], seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    sample = rng.sample(clients, min(2000, len(clients)))
    usage = [r.memory_usage(client_state_key(model_id, c), samples=0) for c in sample]
    values = [r.strlen(client_state_key(model_id, c)) for c in sample]
    info = r.info("memory")
    return {"keys": r.dbsize(), "memory_usage_mean_bytes": round(float(np.mean(usage))),
            "memory_usage_p95_bytes": round(float(np.percentile(usage, 95))),
            "value_mean_bytes": round(float(np.mean(values))), "used_memory_bytes": info["used_memory"],
            "used_memory_per_client_bytes": round(info["used_memory"] / len(clients)),
            "used_memory_rss_bytes": info["used_memory_rss"]}


def paired_phase(config: TrainConfig, server: RedisServer, args: argparse.Namespace, base_clients: list[str],
                 clients: list[str], items: list[str], result: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 15's p99 check measured in pairs: both stacks up, each kind at half the lower of the
    two saturations measured above, `--p99-rounds` rounds of A B B A runs of `--p99-run-seconds`."""
    stacks = {"in_model": Stack(args.work.resolve() / "in-model", config.tracking_uri, NAME + "-in-model",
                                args.workers, settings={**SETTINGS, "CLIENT_STATE": "model"}, redis=server),
              "redis": Stack(args.work.resolve() / "large", config.tracking_uri, NAME, args.workers,
                             settings=SETTINGS, redis=server)}
    rows = []
    try:
        for stack in stacks.values():
            stack.start()
        files = {"in_model": (stacks["in_model"], pools_for(stacks["in_model"], base_clients, items, 3)),
                 "redis": (stacks["redis"], pools_for(stacks["redis"], clients, items, 4))}
        for n, kind in enumerate(LATENCY_KINDS):
            rate = min(result["in_model"]["endpoints"][n]["saturation"]["rps"],
                       result["large"]["endpoints"][n]["saturation"]["rps"]) / 2
            row = paired_p99(files, kind, rate, args.p99_rounds, args.p99_run_seconds)
            print(f"{kind}: p99 pooled over {args.p99_rounds} A B B A rounds at {rate:.0f}/s: in the model "
                  f"{row['in_model_p99_ms']} ms, {len(clients)} clients in Redis {row['redis_p99_ms']} ms: "
                  f"{row['ratio']}x [{row['interval'][0]}, {row['interval'][1]}] (target <= 1.5x); the rounds' "
                  f"median p99s: {row['median_round_ratio']}x", flush=True)
            rows.append(row)
    finally:
        for stack in stacks.values():
            stack.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=FULL)
    parser.add_argument("--clients", type=int, default=500_000, help="clients with state in the large case")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0, help="per latency phase (0: no latency phase)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--p99-rounds", type=int, default=6,
                        help="A B B A rounds of the paired p99 phase, both stacks up (0: none)")
    parser.add_argument("--p99-run-seconds", type=float, default=5.0, help="seconds of each run in those rounds")
    parser.add_argument("--work", type=Path, default=Path("var/bench/client-state"))
    parser.add_argument("--out", type=Path, default=Path("var/bench/client-state.json"))
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rec = fit(args.data)
    print(f"fitted on {args.data}: {len(rec.client_ids)} clients, {rec.n_items} items "
          f"({time.perf_counter() - started:.0f}s)", flush=True)
    server = RedisServer(work)
    server.start()
    try:
        config = TrainConfig(tracking_uri=f"sqlite:///{work / 'mlflow.db'}", model_name=NAME, redis_url=server.url,
                             client_state="redis", erasures_file=str(work / "none.jsonl"),
                             events_db_url=f"sqlite:///{work / 'no-events.db'}")
        r = redis.Redis.from_url(server.url)
        r.flushdb()
        model_id = "bench"
        t0 = time.perf_counter()
        item_side = trainer_state.write(rec, config, model_id, r)
        write_seconds = time.perf_counter() - t0
        register(item_side, config)
        base_clients = [str(c) for c in rec.client_ids]
        items = [str(i) for i in rec.item_ids[np.argsort(-rec.state.item_pop, kind="stable")]]
        result: dict[str, Any] = {"data": str(args.data), "items": rec.n_items,
                                  "trainer_write": {"clients": len(base_clients),
                                                    "seconds": round(write_seconds, 2)}}
        result["redis_small"] = redis_costs(r, model_id, base_clients, 0)
        (work / "small").mkdir(exist_ok=True)
        stack = Stack(work / "small", config.tracking_uri, NAME, args.workers, settings=SETTINGS, redis=server)
        result["small"] = measure(stack, base_clients, args, 1, items)
        print(f"{len(base_clients)} clients: {json.dumps(result['small'])}", flush=True)
        # the same clients held in the model's arrays (CLIENT_STATE=model), for comparison
        plain = config.model_copy(update={"client_state": "model", "model_name": NAME + "-in-model"})
        log_and_register(rec, {"tasks": {}}, plain, promote="force")
        (work / "in-model").mkdir(exist_ok=True)
        stack = Stack(work / "in-model", config.tracking_uri, plain.model_name, args.workers,
                      settings={**SETTINGS, "CLIENT_STATE": "model"}, redis=server)
        result["in_model"] = measure(stack, base_clients, args, 1, items)
        print(f"{len(base_clients)} clients in the model: {json.dumps(result['in_model'])}", flush=True)

        t0 = time.perf_counter()
        clients = replicate(r, rec, model_id, args.clients)
        result["replicate_seconds"] = round(time.perf_counter() - t0, 1)
        copies = -(-args.clients // len(base_clients))
        register(replicated_item_side(item_side, copies, len(clients)), config)
        result["redis_large"] = redis_costs(r, model_id, clients, 0)
        (work / "large").mkdir(exist_ok=True)
        stack = Stack(work / "large", config.tracking_uri, NAME, args.workers, settings=SETTINGS, redis=server)
        result["large"] = measure(stack, clients, args, 2, items)
        print(f"{len(clients)} clients: {json.dumps(result['large'])}", flush=True)
        if args.seconds > 0 and args.p99_rounds > 0:
            result["paired_p99"] = paired_phase(config, server, args, base_clients, clients, items, result)
        small, large = result["small"]["worker_rss_mb"], result["large"]["worker_rss_mb"]
        result["worker_rss_ratio"] = round(large / small, 3)
        for row_model, row_large in zip(result["in_model"]["endpoints"], result["large"]["endpoints"], strict=True):
            print(f"{row_model['endpoint']}: p99 at half saturation {row_model['half_rate']['p99_ms']} ms in the model "
                  f"({row_model['saturation']['rps']:.0f} rps saturation), {row_large['half_rate']['p99_ms']} ms with "
                  f"{len(clients)} clients in Redis ({row_large['saturation']['rps']:.0f} rps)", flush=True)
        print(f"worker RSS {small:.0f} MB at {len(base_clients)} clients, {large:.0f} MB at {len(clients)} "
              f"({100 * (large / small - 1):+.1f}%); Redis {result['redis_large']['memory_usage_mean_bytes']} B per "
              f"client by MEMORY USAGE, {result['redis_large']['used_memory_per_client_bytes']} B by used_memory",
              flush=True)
    finally:
        server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
