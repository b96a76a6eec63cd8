"""`python -m training evaluate|train|clients|value-evaluate|campaign --data DIR ...`: score baselines and the model offline,
train and register, or write the analytical CRM's tables.

Subcommands live in `COMMANDS`: `evaluate` and `train` here, the CRM's in `training.crm_commands`.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from eventstore import StoreUnavailable
from features.loader import DataError, load_dataset
from training import crm_commands
from training.minimums import TooSmall
from training.split import SplitError

log = logging.getLogger("training")


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("evaluate", help="score every baseline on every task of a time split")
    parser.add_argument("--data", required=True, help="data folder (features.loader contract)")
    parser.add_argument("--test-days", type=float, default=60, help="length of the test window (default 60)")
    parser.add_argument("--k", type=int, default=10, help="list length scored (default 10)")
    parser.add_argument("--out", default=None, help="write the result JSON here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the hidden-item draws (default 0)")
    parser.add_argument("--max-baskets", type=int, default=20_000, help="basket_completion sample cap")
    parser.add_argument("--no-model", action="store_true", help="baselines only (skip fitting the model)")
    parser.add_argument("--no-tune", action="store_true", help="fit the model with default settings (faster)")
    add_engine(parser)
    parser.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from training.baselines import default_rankers  # heavy imports only for this command
    from training.config import TrainConfig
    from training.evaluate import evaluate, format_table

    if args.test_days <= 0 or args.k < 1 or args.max_baskets < 1:
        print("error: --test-days must be positive, --k and --max-baskets at least 1", file=sys.stderr)
        return 2
    started = time.perf_counter()
    config = TrainConfig()
    config = config.model_copy(update={key: value for key, value in
                                       {"engine": args.engine, "spark_master": args.spark_master}.items() if value})
    spark = None
    if config.engine == "spark":
        from training.spark.run import WHERE, SparkRun

        spark = SparkRun.start(config)
        print(WHERE)
    try:
        dataset = (spark.load(args.data) if spark is not None else
                   load_dataset(args.data, non_merchandise=config.non_merchandise,
                                merchandise_allow=config.merchandise_allow))
        if spark is not None:
            dataset, sample = spark.sample(dataset)
            print(sample)
        rankers = {r.name: r for r in default_rankers(config=config)}
        if not args.no_model:
            from training.model_ranker import ModelRanker

            rankers["model"] = ModelRanker(config, tune=not args.no_tune, engine=spark.engine if spark else None)
        result = evaluate(dataset, test_days=args.test_days, k=args.k, seed=args.seed,
                          max_baskets=args.max_baskets, rankers=rankers, workers=config.workers)
    finally:
        if spark is not None:
            spark.stop()
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        log.info("wrote %s", out)
    print(format_table(result))
    log.info("done in %.1fs", time.perf_counter() - started)
    return 0


def add_engine(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=("local", "spark"), default=None,
                        help="where the heavy steps run (default TRAIN_ENGINE or local; docs/spark.md)")
    parser.add_argument("--spark-master", default=None,
                        help="Spark master of --engine spark (default SPARK_MASTER or local[*])")


def add_train(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="fit, evaluate against baselines and the champion, register in MLflow")
    parser.add_argument("--data", required=True, help="data folder (features.loader contract)")
    parser.add_argument("--model-name", default=None, help="registered model name (default MODEL_NAME or crm-recommender)")
    parser.add_argument("--test-days", type=float, default=None, help="length of the test window (default 60)")
    parser.add_argument("--k", type=int, default=None, help="list length scored (default 10)")
    parser.add_argument("--max-baskets", type=int, default=5_000, help="basket_completion sample size")
    parser.add_argument("--out", default=None, help="also write the evaluation JSON and plot here (a folder)")
    parser.add_argument("--no-tune", action="store_true", help="skip the inner-split search (faster, for tests)")
    add_engine(parser)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--promote", action="store_true", help="make this version @champion whatever the gate says")
    group.add_argument("--promote-if-none", action="store_true",
                       help="gate as usual, but the first model of an empty registry becomes @champion")
    parser.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from training.train import train  # heavy imports only for this command

    summary = train(args.data, model_name=args.model_name, test_days=args.test_days, k=args.k,
                    max_baskets=args.max_baskets, out=args.out, tune=not args.no_tune,
                    promote="force" if args.promote else "if-none" if args.promote_if_none else "gate",
                    engine=args.engine, spark_master=args.spark_master)
    return 0 if summary["alias"] in ("champion", "challenger") else 1


COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_evaluate, add_train, crm_commands.add_clients, crm_commands.add_value_evaluate, crm_commands.add_campaign)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except (DataError, SplitError, TooSmall, StoreUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a user gets a sentence, the log keeps the traceback
        log.debug("training failed", exc_info=True)
        print(f"error: {args.command} failed: {type(exc).__name__}: {str(exc)[:500]} "
              "(nothing was registered; rerun with LOG_LEVEL=DEBUG for the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
