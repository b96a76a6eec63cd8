"""Growth of `train --engine spark` in `local[2]`: 1x, 4x and 16x Complete Journey (households
replicated under new ids), with wall time, peak memory of the driver and the executors, the fitted
exponent (time ~ lines^b; issue 15's target: b <= 1.1) and where the time goes.

    python tests/bench/bench_spark_growth.py                 # 1x, 4x, 16x
    python tests/bench/bench_spark_growth.py --points 1,4     # fewer points (two at least fit b)
    python tests/bench/bench_spark_growth.py --points 1 --tune   # with tuning, as `make train` does
    python tests/bench/bench_spark_growth.py --resume         # only the points the last run did not finish

Each point runs `python -m training train --engine spark --spark-master 'local[2]' --no-tune` in a
fresh process against a throw-away MLflow store. `--no-tune` by default: tuning is a fixed number
of extra fits of the same recipe on the driver's sample of clients (issue 15 allows tuning and
evaluation on a sample), so it scales the same steps again and would only multiply the time a 16x
point needs. The evaluation still runs, on at most `--sample-clients` clients (default
10,000, passed as `SPARK_SAMPLE_CLIENTS`: all of 1x's 2,469 and 4x's 9,876, a seeded sample of
16x's 39,504), as issue 15 allows; the registered model is fitted on every client at every point.

Memory: the process tree is sampled every 0.5 s (psutil): the Python driver's RSS, the driver
JVM's RSS (in `local[N]` the executors are threads of that JVM, so its peak is driver and executor
JVM memory together), and the Python executor workers (pyspark's daemon and the workers it forks:
RSS summed at each sample, which counts pages shared after the fork once per worker, and PSS
summed, which does not). Where the time goes is read from the trainer's own log lines (Spark read,
evidence, ALS, pair counts, the fit's stages, candidate lists), timestamped by `logging`.
The replicated folders are built once and kept under var/bench/spark-growth/.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import bench_training  # noqa: E402  (sibling, found through the path above)

ROOT = HERE.parents[1]
CACHE = ROOT / "var" / "bench" / "spark-growth"
OUT = ROOT / "var" / "bench" / "spark_growth.json"
MASTER = "local[2]"
SAMPLE_SECONDS = 0.5
MB = 2**20


def require_java() -> str:
    """The `java` Spark will start; stops the bench with the make target that installs it."""
    java = shutil.which("java", path=os.path.join(os.environ.get("JAVA_HOME", ""), "bin") + os.pathsep +
                        os.environ.get("PATH", ""))
    if java is None:
        raise SystemExit("bench_spark_growth: no `java` on PATH: Spark 4 needs Java 17; run `make java-bin` "
                         "(Debian's openjdk-17-jre-headless) and try again")
    return java


def replicated_folder(replicate: int) -> tuple[Path, int]:
    """(folder, purchase lines) of Complete Journey with every household `replicate` times, built once."""
    folder = CACHE / f"x{replicate}"
    done = folder / "lines.json"
    if done.exists():
        return folder, int(json.loads(done.read_text())["lines"])
    print(f"building the {replicate}x folder under {folder} ...", flush=True)
    bench_training.ensure_full()
    lines = bench_training.slice_folder(1.0, replicate, folder)
    packages = bench_training.FULL / "packages.parquet"
    if packages.exists():  # item-level: the same offers for every replica
        shutil.copy(packages, folder / "packages.parquet")
    done.write_text(json.dumps({"lines": lines}) + "\n")
    return folder, lines


# -- memory -----------------------------------------------------------------------------------

def _role(proc: psutil.Process, root: int) -> str | None:
    """'driver' (the trainer's Python), 'jvm' (the driver JVM, executors inside in local mode),
    'worker' (pyspark's Python daemon and workers) or None (the launcher's shell, ...)."""
    if proc.pid == root:
        return "driver"
    name = proc.name()
    if name == "java":
        return "jvm"
    if any(parent.name() == "java" for parent in proc.parents()):  # forked by the JVM: pyspark's workers
        return "worker"
    return None


class TreeSampler(threading.Thread):
    """Samples the process tree under `root` every `interval` seconds; keeps each role's peak."""

    def __init__(self, root: int, interval: float = SAMPLE_SECONDS) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak = {"driver_rss": 0, "jvm_rss": 0, "workers_rss": 0, "workers_pss": 0, "workers": 0, "tree_rss": 0}
        self.samples = 0
        self.timeline: list[tuple[float, int, int, int]] = []  # (epoch s, driver, JVM, workers' RSS in MB)
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            top = psutil.Process(self.root)
        except psutil.NoSuchProcess:
            return
        while not self.stopped.wait(self.interval):
            try:
                self._sample(top)
            except psutil.NoSuchProcess:
                return

    def _sample(self, top: psutil.Process) -> None:
        now = {key: 0 for key in self.peak}
        for proc in [top, *top.children(recursive=True)]:
            try:
                role = _role(proc, self.root)
                if role is None:
                    continue
                if role == "worker":
                    full = proc.memory_full_info()
                    now["workers_rss"] += full.rss
                    now["workers_pss"] += full.pss
                    now["workers"] += 1
                    now["tree_rss"] += full.rss
                else:
                    rss = proc.memory_info().rss
                    now[f"{role}_rss"] += rss
                    now["tree_rss"] += rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        self.samples += 1
        self.timeline.append((round(time.time(), 1), now["driver_rss"] // MB, now["jvm_rss"] // MB,
                              now["workers_rss"] // MB))
        for key, value in now.items():
            self.peak[key] = max(self.peak[key], value)

    def peaks_mb(self) -> dict[str, float]:
        return {key: (value if key == "workers" else round(value / MB)) for key, value in self.peak.items()}


# -- where the time goes ----------------------------------------------------------------------

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)$")
SECONDS = r"([\d.]+)s"


def _log_events(text: str) -> list[tuple[float, str]]:
    """(epoch seconds, message) of every `logging` line of the trainer's stderr."""
    events = []
    for line in text.splitlines():
        if match := STAMP.match(line):
            stamp = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            events.append((stamp, match[2]))
    return events


def _find(events: list[tuple[float, str]], pattern: str, after: float = 0.0) -> tuple[float, re.Match] | None:
    for stamp, message in events:
        if stamp >= after and (match := re.search(pattern, message)):
            return stamp, match
    return None


def steps(text: str, started: float, ended: float) -> dict[str, float]:
    """Seconds per step of one Spark training, from its log (missing lines leave a step out)."""
    events = _log_events(text)
    out: dict[str, float] = {}
    session = _find(events, r"^spark [\d.]+ on ")
    read = _find(events, r"^spark read .* in " + SECONDS + r" \(transactions validated and collected "
                 + SECONDS + r", assembled on the driver " + SECONDS)
    refit = _find(events, r"^refitting on all")
    if session:
        out["start: imports and the Spark session"] = session[0] - started
    if read:
        out["read: validate on Spark, collect to the driver"] = float(read[1][2])
        out["read: assemble on the driver (fingerprint, merchandise)"] = float(read[1][3])
    if read and refit:
        out[EVALUATION] = refit[0] - read[0]
    if refit is None:
        return {key: round(value, 1) for key, value in out.items()}
    t0 = refit[0]
    fit = {m[1]: float(m[2]) for _, m in (_find(events, rf"^fit: ({name}) done in " + SECONDS, t0) or (0, None)
                                          for name in ("catalogue", "cf", "bundle affinity", "segments and history",
                                                       "upsell", "value model and transitions")) if m}
    first = _find(events, r"^fit: catalogue done", t0)
    if first:
        out["final fit: context (indexing the lines)"] = first[0] - t0 - fit.get("catalogue", 0.0)
    out["final fit: catalogue"] = fit.get("catalogue", 0.0)
    evidence = _find(events, r"^spark evidence: .* in " + SECONDS, t0)
    als = _find(events, r"^spark ALS: .* in " + SECONDS, t0)
    if evidence:
        out["final fit: evidence to Spark (lines sent, BM25 set up)"] = float(evidence[1][1])
    if als:
        out["final fit: ALS on Spark (with the evidence's aggregation)"] = float(als[1][1])
    if "cf" in fit:
        out["final fit: cf, the rest (factors to the driver)"] = max(
            0.0, fit["cf"] - sum(float(m[1][1]) for m in (evidence, als) if m))
    pairs = _find(events, r"^spark pair counts: .* in " + SECONDS, t0)
    if pairs:
        out["final fit: pair counts on Spark (self-join)"] = float(pairs[1][1])
    if "bundle affinity" in fit:
        out["final fit: baskets, neighbour lists, bundle mining, client kNN (driver)"] = max(
            0.0, fit["bundle affinity"] - (float(pairs[1][1]) if pairs else 0.0))
    for name in ("segments and history", "upsell", "value model and transitions"):
        if name in fit:
            out[f"final fit: {name} (driver)"] = fit[name]
    candidates = _find(events, r"^candidates on spark: .* in " + SECONDS, t0)
    if candidates:
        out["candidate lists on the executors (mapInPandas)"] = float(candidates[1][1])
        out["smoke check, MLflow logging and registering"] = ended - candidates[0]
        out["other (between the logged steps)"] = max(0.0, ended - started - sum(out.values()))
    return {key: round(value, 1) for key, value in out.items()}


# -- one point --------------------------------------------------------------------------------

ENDS = ((r"^spark [\d.]+ on ", "start"), (r"^spark read ", "read"), (r"^refitting on all", "evaluation"),
        (r"^fit: catalogue done", "final fit: context and catalogue"), (r"^fit: cf done", "final fit: evidence and ALS"),
        (r"^fit: bundle affinity done", "final fit: pair counts, neighbour lists, bundles, client kNN"),
        (r"^fit: segments and history done", "final fit: segments and history"),
        (r"^fit: upsell done", "final fit: upsell"), (r"^fit: value model", "final fit: value model"),
        (r"^candidates on spark", "candidate lists"))


def step_at(text: str, moment: float) -> str:
    """The step (of `ENDS`) running at `moment` (epoch seconds): the first whose end line comes after it."""
    events = _log_events(text)
    after = 0.0
    for pattern, name in ENDS:
        found = _find(events, pattern, after)
        if found is None:
            continue
        if found[0] >= moment:
            return name
        after = found[0]
    return "smoke check and registering"


SAMPLE_CLIENTS = 10_000
#: The step that runs on at most SAMPLE_CLIENTS clients; every other step runs on all the lines.
EVALUATION = "evaluation on the driver (fits on the split, baselines, scoring)"


def run_spark_train(folder: Path, work: Path, tune: bool = False,
                    sample_clients: int = SAMPLE_CLIENTS) -> dict[str, Any]:
    """One `train --engine spark` in a fresh process: seconds, peaks (MB) and the steps' seconds."""
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}", REDIS_URL="",
               ERASURES_FILE=str(work / "none.jsonl"), EVENTS_DB_URL=f"sqlite:///{work / 'no-events.db'}",
               SPARK_WORK_DIR=str(work / "spark"), LOG_LEVEL="INFO", SPARK_SAMPLE_CLIENTS=str(sample_clients),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "training", "train", "--data", str(folder), "--engine", "spark",
               "--spark-master", MASTER, "--promote", *([] if tune else ["--no-tune"])]
    log_path = work / "train.log"
    started_wall, started = time.time(), time.perf_counter()
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(command, cwd=work, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        next_note = started + 60
        while proc.poll() is None:
            time.sleep(1)
            if time.perf_counter() >= next_note:
                peaks = sampler.peaks_mb()
                print(f"  ... {time.perf_counter() - started:5.0f} s, peaks so far: driver {peaks['driver_rss']} MB, "
                      f"JVM {peaks['jvm_rss']} MB, workers {peaks['workers_rss']} MB", flush=True)
                next_note += 60
    seconds = time.perf_counter() - started
    sampler.stopped.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"train --engine spark failed on {folder}: see {log_path}")
    text = log_path.read_text(errors="replace")
    at_peak = {role: step_at(text, max(sampler.timeline, key=lambda row: row[column])[0])
               for role, column in (("driver", 1), ("jvm", 2), ("workers", 3)) if sampler.timeline}
    return {"seconds": round(seconds, 1), "peaks_mb": sampler.peaks_mb(), "samples": sampler.samples,
            "steps": steps(text, started_wall, started_wall + seconds), "peak_during": at_peak,
            "log": str(log_path), "command": " ".join(command), "timeline": sampler.timeline}


def fit_exponent(lines: list[int], values: list[float]) -> float | None:
    """b of values ~ lines^b by least squares on the logs (None with fewer than two sizes)."""
    if len(set(lines)) < 2:
        return None
    return round(float(np.polyfit(np.log(lines), np.log(values), 1)[0]), 3)


def table(result: dict[str, Any]) -> str:
    rows = result["points"]
    out = [f"{'point':>5}  {'lines':>11}  {'clients':>7}  {'seconds':>8}  {'x time':>6}  {'driver MB':>9}  "
           f"{'JVM MB':>7}  {'workers MB (RSS/PSS)':>20}"]
    base = rows[0]
    for r in rows:
        p = r["peaks_mb"]
        out.append(f"{r['replicate']:>4}x  {r['lines']:>11,}  {r['clients'] or 0:>7,}  {r['seconds']:>8.1f}  "
                   f"{r['seconds'] / base['seconds']:>6.2f}  {p['driver_rss']:>9}  {p['jvm_rss']:>7}  "
                   f"{str(p['workers_rss']) + ' / ' + str(p['workers_pss']):>20}")
    if result.get("time_exponent") is not None:
        out.append(f"growth exponent (~ lines^b): time b = {result['time_exponent']:.2f} (target <= 1.1), "
                   f"driver memory b = {result['driver_memory_exponent']:.2f}")
        if result.get("time_exponent_without_evaluation") is not None:
            out.append(f"time without the evaluation (which runs on at most {result.get('sample_clients')} "
                       f"clients): b = {result['time_exponent_without_evaluation']:.2f}")
    names = list(dict.fromkeys(name for r in rows for name in r["steps"]))
    out.append("")
    out.append(f"{'step (seconds)':<72}" + "".join(f"{str(r['replicate']) + 'x':>9}" for r in rows)
               + ("   ratio" if len(rows) > 1 else ""))
    for name in names:
        values = [r["steps"].get(name) for r in rows]
        ratio = (f"{values[-1] / values[0]:8.2f}" if len(rows) > 1 and values[0] and values[-1] is not None else "")
        out.append(f"{name:<72}" + "".join(f"{'-' if v is None else f'{v:.1f}':>9}" for v in values) + ratio)
    return "\n".join(out)


def kept_points(out: Path, tune: bool, sample_clients: int) -> list[dict[str, Any]]:
    """The points an earlier run wrote to `out` with the same settings (`--resume`)."""
    if not out.exists():
        return []
    earlier = json.loads(out.read_text())
    same = (earlier.get("master"), earlier.get("tuning"), earlier.get("sample_clients")) == (MASTER, tune,
                                                                                              sample_clients)
    return list(earlier.get("points", [])) if same else []


def main(points: list[int] | None = None, tune: bool = False, out: Path = OUT,
         sample_clients: int = SAMPLE_CLIENTS, resume: bool = False) -> dict[str, Any]:
    require_java()
    points = sorted(set(points or [1, 4, 16]))
    kept = [p for p in kept_points(out, tune, sample_clients) if p["replicate"] in points] if resume else []
    result: dict[str, Any] = {"master": MASTER, "tuning": tune, "sample_clients": sample_clients,
                              "load_before": [round(x, 2) for x in os.getloadavg()],
                              "points": kept}
    for point in kept:
        print(f"{point['replicate']}x kept from {out} (--resume): {point['seconds']:.1f} s", flush=True)
    for replicate in (r for r in points if r not in {p["replicate"] for p in kept}):
        folder, lines = replicated_folder(replicate)
        print(f"train --engine spark, {replicate}x ({lines:,} lines) in {MASTER} "
              f"(load {os.getloadavg()[0]:.1f}) ...", flush=True)
        work = CACHE / f"run-x{replicate}"  # the throw-away MLflow store and the log, replaced each run
        shutil.rmtree(work, ignore_errors=True)
        run = run_spark_train(folder, work, tune=tune, sample_clients=sample_clients)
        load = [round(x, 2) for x in os.getloadavg()]
        # "... on the driver: all 9,876 clients" or "... a sample of 10,000 of 39,504 clients"
        match = re.search(r"(?:all|of) ([\d,]+) clients", Path(run["log"]).read_text(errors="replace"))
        clients = int(match[1].replace(",", "")) if match else None
        result["points"].append({"replicate": replicate, "lines": lines, "clients": clients, **run,
                                 "load_after": load})
        p, during = run["peaks_mb"], run["peak_during"]
        print(f"  {replicate}x: {run['seconds']:.1f} s, peak driver {p['driver_rss']} MB ({during.get('driver')}), "
              f"JVM {p['jvm_rss']} MB ({during.get('jvm')}), workers {p['workers_rss']} MB RSS / "
              f"{p['workers_pss']} MB PSS ({during.get('workers')}) (load after {load})", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    summarise(result)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"all figures: {out}")
    return result


def summarise(result: dict[str, Any]) -> None:
    """The points in order and the fitted exponents, added to `result`."""
    result["points"].sort(key=lambda p: p["replicate"])
    rows = result["points"]
    lines_ = [r["lines"] for r in rows]
    result["time_exponent"] = fit_exponent(lines_, [r["seconds"] for r in rows])
    result["driver_memory_exponent"] = fit_exponent(lines_, [r["peaks_mb"]["driver_rss"] for r in rows])
    # the evaluation stops growing once a point has more clients than the sample: the rest grows with all lines
    result["time_exponent_without_evaluation"] = fit_exponent(
        lines_, [r["seconds"] - r["steps"].get(EVALUATION, 0.0) for r in rows])
    result["step_exponents"] = {name: fit_exponent(lines_, [r["steps"][name] for r in rows])
                                for name in rows[0]["steps"]
                                if all(r["steps"].get(name) for r in rows) and len(rows) > 1}


def replications(text: str) -> list[int]:
    """"1,4,16" -> [1, 4, 16]: how many times every household is replicated."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of replications: {text!r} (e.g. 1,4,16)") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: each replication is at least 1")
    return values


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=replications, default=[1, 4, 16],
                        help="replications of Complete Journey (default 1,4,16)")
    parser.add_argument("--tune", action="store_true", help="tune on the inner split too (default --no-tune)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the JSON (default {OUT.relative_to(ROOT)})")
    parser.add_argument("--sample-clients", type=int, default=SAMPLE_CLIENTS,
                        help=f"SPARK_SAMPLE_CLIENTS: clients evaluation runs on (default {SAMPLE_CLIENTS:,})")
    parser.add_argument("--resume", action="store_true",
                        help="keep the points `--out` already holds from a run with the same settings")
    parser.add_argument("--report", action="store_true", help="only print the table of what `--out` holds")
    args = parser.parse_args()
    if args.report:
        kept = json.loads(args.out.read_text())
        summarise(kept)
        raise SystemExit(print(table(kept)))
    main(args.points, tune=args.tune, out=args.out, sample_clients=args.sample_clients, resume=args.resume)
