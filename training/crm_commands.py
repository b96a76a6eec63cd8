"""The analytical CRM's commands: `clients` (the per-client table), `value-evaluate` (the value model on a time
split) and `campaign` (an audience for email or push). `training.__main__` registers them."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import pandas as pd

from features.loader import load_dataset

log = logging.getLogger("training")


def _date(text: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (write 2017-11-30)") from None


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _dataset(data: str, as_of: pd.Timestamp | None):
    from training.config import TrainConfig
    from training.erasures import erased_clients, without_clients

    config = TrainConfig()
    dataset = load_dataset(data, non_merchandise=config.non_merchandise, merchandise_allow=config.merchandise_allow)
    dataset = without_clients(dataset, erased_clients(config))
    if as_of is not None:
        tx = dataset.transactions
        dataset = dataset.with_transactions(tx[tx["timestamp"] <= as_of].reset_index(drop=True))
    return config, dataset


def add_clients(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("clients", help="write every client's segments, transitions and value figures")
    parser.add_argument("--data", required=True, help="data folder (features.loader contract)")
    parser.add_argument("--as-of", type=_date, default=None, help="the date the table is as of (default: the data's end)")
    parser.add_argument("--horizon-days", type=_positive, default=None,
                        help="period of p_purchase, expected purchases and revenue (default: the model's)")
    parser.add_argument("--model", default=None, help="models:/NAME/VERSION, models:/NAME@ALIAS or a folder "
                                                      "(default: the registered champion); never fitted")
    parser.add_argument("--out", required=True, help="a .csv, .parquet or .jsonl file")
    parser.set_defaults(run=run_clients)


def run_clients(args: argparse.Namespace) -> int:
    from training.clients import NoValueModel, client_table, load_model, value_params, write_table

    started = time.perf_counter()
    if Path(args.out).suffix not in (".csv", ".parquet", ".jsonl", ".ndjson"):
        print(f"error: --out {args.out}: write .csv, .parquet or .jsonl", file=sys.stderr)
        return 2
    config, dataset = _dataset(args.data, args.as_of)
    try:
        model, which = load_model(config, args.model)
        params = value_params(model, args.horizon_days)
    except NoValueModel as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table, _ = client_table(dataset, params, config, args.as_of)
    out = write_table(table, args.out)
    print(f"{len(table):,} clients as of {table['as_of'].iloc[0] if len(table) else '-'} "
          f"(model: {which}, data end {params.data_end[:10]}) -> {out} in {time.perf_counter() - started:.1f}s")
    return 0


def add_value_evaluate(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("value-evaluate", help="the client value model against baselines on a time split")
    parser.add_argument("--data", required=True, help="data folder (features.loader contract)")
    parser.add_argument("--holdout-days", type=_positive, default=60, help="days after the cut-off (default 60)")
    parser.add_argument("--out", default="var/value_evaluation.json", help="the result JSON")
    parser.add_argument("--plots", default=None, help="write the calibration and CLV plots into this folder")
    parser.set_defaults(run=run_value_evaluate)


def run_value_evaluate(args: argparse.Namespace) -> int:
    from training.config import TrainConfig
    from training.value_evaluation import clv_by_abc, evaluate_value, plot, summary_lines, write

    config = TrainConfig()
    dataset = load_dataset(args.data, non_merchandise=config.non_merchandise, merchandise_allow=config.merchandise_allow)
    result = evaluate_value(dataset.transactions, holdout_days=args.holdout_days,
                            horizons=(30.0, args.holdout_days) if args.holdout_days > 30 else (args.holdout_days,),
                            config=config)
    write(result, Path(args.out))
    if args.plots:
        for path in plot(result, clv_by_abc(dataset.transactions, config), Path(args.plots)):
            print(f"plot: {path}")
    print("\n".join(summary_lines(result)))
    print(json.dumps({"seconds": result["seconds"]}))
    return 0
