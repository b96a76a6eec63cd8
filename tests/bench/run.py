"""`make bench`: the serving benchmark, then the training benchmark, then Spark training's growth,
one summary, one JSON file.

    python tests/bench/run.py                                   # full model, 8 s per phase, training at 4 sizes
    python tests/bench/run.py --data data/sample --seconds 3 --skip-training      # a quick look
    python tests/bench/run.py --skip-training --tracking-uri URI --model-name NAME  # reuse a model
    python tests/bench/run.py --training-points 0.25,0.5,1                       # fewer training points
    python tests/bench/run.py --spark-points 1,4                  # Spark growth at 1x and 4x only
    python tests/bench/run.py --skip-spark-growth                 # no Spark training (it takes the longest)
    (--skip-training skips both kinds of training: serving only)

Every figure of the run goes to var/bench/results.json (or --out) with the machine it ran on
(nproc, RAM, CPU model) and the date. Compare ratios measured in the same run, not absolute
figures across runs: the machines are shared.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import bench_serving  # noqa: E402  (siblings, found through the path above)
import bench_spark_growth  # noqa: E402
import bench_training  # noqa: E402

DEFAULT_POINTS = "0.25,0.5,1,1x4"


def training_points(text: str) -> list[tuple[float, int]]:
    """"0.25,0.5,1,1x4" -> [(0.25, 1), (0.5, 1), (1.0, 1), (1.0, 4)]: household fraction x replication."""
    points = []
    for part in text.split(","):
        fraction, _, replicate = part.strip().partition("x")
        try:
            point = (float(fraction), int(replicate or 1))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a point: {part!r} (e.g. 0.5 or 1x4)") from None
        if not 0 < point[0] <= 1 or point[1] < 1:
            raise argparse.ArgumentTypeError(f"{part!r}: the fraction is in (0, 1], the replication at least 1")
        points.append(point)
    if len({f * r for f, r in points}) < 2:
        raise argparse.ArgumentTypeError("at least two sizes are needed to fit the growth exponent")
    return points


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    return {"nproc": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(), "cpu_model": cpu,
            "ram_gb": round(mem_kb / 2**20, 1), "kernel": platform.release(), "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def training_table(training: dict[str, Any]) -> str:
    lines = [f"{'households':>12}  {'lines':>11}  {'seconds':>8}  {'peak MB':>8}"]
    lines += [f"{p['households']:>12}  {p['lines']:>11,}  {p['seconds']:>8.1f}  {p['peak_mb']:>8}"
              for p in training["points"]]
    lines.append(f"growth exponent (~ lines^b): time b = {training['time_exponent']:.2f}, "
                 f"memory b = {training['memory_exponent']:.2f}")
    return "\n".join(lines)


def write(out: Path, results: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench_serving.add_arguments(parser)
    parser.add_argument("--skip-training", action="store_true",
                        help="serving only (no in-process training points, no Spark growth)")
    parser.add_argument("--training-points", type=training_points, default=training_points(DEFAULT_POINTS),
                        help=f"household fractions for the training benchmark, 'x4' replicates (default {DEFAULT_POINTS})")
    parser.add_argument("--skip-spark-growth", action="store_true",
                        help="no `train --engine spark` growth points (1x/4x/16x take about an hour and more)")
    parser.add_argument("--spark-points", type=bench_spark_growth.replications, default=[1, 4, 16],
                        help="Complete Journey replications for the Spark growth benchmark (default 1,4,16)")
    parser.add_argument("--out", type=Path, default=HERE.parents[1] / "var" / "bench" / "results.json",
                        help="where the JSON goes (default var/bench/results.json)")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                               "machine": machine(), "command": " ".join(sys.argv)}
    print(f"machine: {results['machine']['nproc']} cpus ({results['machine']['cpu_model']}), "
          f"{results['machine']['ram_gb']} GB RAM, load {results['machine']['load_average']}", flush=True)

    print("== serving ==", flush=True)
    results["serving"] = bench_serving.run(args)
    write(args.out, results)
    if not args.skip_training:
        print("== training ==", flush=True)
        results["training"] = bench_training.main(args.training_points)
        write(args.out, results)
    if not (args.skip_training or args.skip_spark_growth):
        print("== Spark training growth (local[2]) ==", flush=True)
        results["spark_growth"] = bench_spark_growth.main(args.spark_points)
        write(args.out, results)

    print("\n== summary ==", f"{results['date']}, {results['machine']['nproc']} cpus, "
          f"{results['machine']['ram_gb']} GB, {results['machine']['cpu_model']}", sep="\n")
    print(bench_serving.format_table(results["serving"]))
    if "training" in results:
        print("\ntraining (fresh process per point, throw-away MLflow store)")
        print(training_table(results["training"]))
    if "spark_growth" in results:
        print("\nSpark training growth (train --engine spark --no-tune, local[2], fresh process per point)")
        print(bench_spark_growth.table(results["spark_growth"]))
    print(f"\nall figures: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
