"""Training cost as the history grows: time and peak memory of `train` at 25/50/100 % of the
households and at 4x the data (households replicated under new ids), with the fitted growth
exponent (time ~ lines^b). Each point runs `python -m training train` in a fresh process against a
throw-away MLflow store; peak memory is that process's maximum resident set size (wait4).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
FULL = ROOT / "data" / "full"


def ensure_full() -> Path:
    if not (FULL / "transactions.parquet").exists():
        subprocess.run([sys.executable, "-m", "features", "prepare", "--source", "completejourney", "--out", str(FULL)],
                       check=True, cwd=ROOT)
    return FULL


def slice_folder(fraction: float, replicate: int, out: Path) -> int:
    """Write a data folder with `fraction` of the households, each replicated `replicate` times."""
    tx = pd.read_parquet(FULL / "transactions.parquet")
    clients = np.sort(tx["client_id"].unique())
    keep = np.random.default_rng(0).choice(clients, size=int(len(clients) * fraction), replace=False)
    tx = tx[tx["client_id"].isin(keep)]
    if replicate > 1:
        tx = pd.concat([tx.assign(client_id=tx["client_id"] + f"r{i}", order_id=tx["order_id"] + f"r{i}")
                        for i in range(replicate)], ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    tx.to_parquet(out / "transactions.parquet", index=False)
    for name in ("items", "clients"):
        frame = pd.read_parquet(FULL / f"{name}.parquet")
        if name == "clients" and replicate > 1:
            frame = pd.concat([frame.assign(client_id=frame["client_id"] + f"r{i}") for i in range(replicate)])
        frame.to_parquet(out / f"{name}.parquet", index=False)
    return len(tx)


def run_train(folder: Path, work: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one `train` in a fresh process."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}", REDIS_URL="",
               ERASURES_FILE=str(work / "none.jsonl"), EVENTS_DB_URL=f"sqlite:///{work / 'no-events.db'}")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "training", "train", "--data", str(folder), "--promote"],
                            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=open(work / "train.log", "wb"))
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"train failed on {folder}: see {work / 'train.log'}")
    return seconds, usage.ru_maxrss / 1024


def main(points: list[tuple[float, int]] | None = None) -> dict:
    ensure_full()
    points = points or [(0.25, 1), (0.5, 1), (1.0, 1), (1.0, 4)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fraction, replicate in points:
            work = Path(tmp) / f"p{fraction}x{replicate}"
            lines = slice_folder(fraction, replicate, work / "data")
            seconds, peak = run_train(work / "data", work)
            rows.append({"households": f"{int(fraction * 100)} %" + (f" x{replicate}" if replicate > 1 else ""),
                         "lines": lines, "seconds": round(seconds, 1), "peak_mb": round(peak)})
            print(f"train {rows[-1]['households']:>10}: {lines:>9,} lines  {seconds:7.1f} s  peak {peak:7.0f} MB",
                  flush=True)
    x = np.log([r["lines"] for r in rows])
    exponent_time = float(np.polyfit(x, np.log([r["seconds"] for r in rows]), 1)[0])
    exponent_mem = float(np.polyfit(x, np.log([r["peak_mb"] for r in rows]), 1)[0])
    print(f"growth exponent (time ~ lines^b): b = {exponent_time:.2f}; memory: b = {exponent_mem:.2f}")
    return {"points": rows, "time_exponent": round(exponent_time, 3), "memory_exponent": round(exponent_mem, 3)}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
