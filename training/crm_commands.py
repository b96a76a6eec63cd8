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


def _dataset(data: str, as_of: pd.Timestamp | None, drop_erased: bool = True):
    from training.config import TrainConfig
    from training.erasures import erased_clients, without_clients

    config = TrainConfig()
    dataset = load_dataset(data, non_merchandise=config.non_merchandise, merchandise_allow=config.merchandise_allow)
    if drop_erased:
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
        model, which, _ = load_model(config, args.model)
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


def add_campaign(sub: argparse._SubParsersAction) -> None:
    from training.campaign import CHANNELS, TRIGGERS

    parser = sub.add_parser("campaign", help="an email or push audience: one row per client with offers")
    parser.add_argument("--data", required=True, help="data folder (features.loader contract)")
    parser.add_argument("--trigger", required=True, choices=TRIGGERS, help="who the campaign is for")
    parser.add_argument("--channel", required=True, choices=CHANNELS)
    parser.add_argument("--as-of", type=_date, default=None, help="the date the audience is as of (default: data end)")
    parser.add_argument("--limit", type=int, default=3, help="offers per client (default 3)")
    parser.add_argument("--model", default=None, help="as for `clients` (default: the registered champion)")
    parser.add_argument("--suppress", default=None, help="client ids never to contact (a file: one a line, or CSV)")
    parser.add_argument("--out", default=None, help="a .csv or .jsonl file (required unless --dry-run)")
    parser.add_argument("--dry-run", action="store_true", help="print the counts only: no file, nothing stored")
    parser.set_defaults(run=run_campaign)


def run_campaign(args: argparse.Namespace) -> int:
    import uuid

    from eventstore import EventStore
    from training import campaign
    from training.clients import NoValueModel, client_table, load_model, value_params
    from training.erasures import erased_clients

    started = time.perf_counter()
    if not args.dry_run and (args.out is None or Path(args.out).suffix not in (".csv", ".jsonl", ".ndjson")):
        print("error: --out must be a .csv or .jsonl file (or use --dry-run)", file=sys.stderr)
        return 2
    if not 1 <= args.limit <= 20:
        print("error: --limit must be 1 to 20", file=sys.stderr)
        return 2
    if args.suppress and not Path(args.suppress).is_file():
        print(f"error: --suppress {args.suppress}: no such file", file=sys.stderr)
        return 2
    config, dataset = _dataset(args.data, args.as_of, drop_erased=False)
    try:
        model, which, version = load_model(config, args.model)
        params = value_params(model, None)
    except NoValueModel as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table, moves = client_table(dataset, params, config, args.as_of)
    store = EventStore(config.events_db_url)
    try:
        store.create_all()
        erased = erased_clients(config) | store.erased_clients(config.tenant)
        now = campaign.send_time()
        audience, counts = campaign.select(
            table, moves, model, trigger=args.trigger, channel=args.channel, config=config, clients=dataset.clients,
            erased=erased, suppressed=campaign.read_suppressions(args.suppress),
            tired=campaign.fatigued(store, config.tenant, config, now))
        as_of = table["as_of"].iloc[0] if len(table) else "-"
        campaign_id = f"{args.trigger}-{args.channel}-{str(as_of).replace('-', '')}-{uuid.uuid4().hex[:8]}"
        rows = campaign.build_rows(audience, model, trigger=args.trigger, channel=args.channel, limit=args.limit,
                                   campaign_id=campaign_id, counts=counts, progress=sys.stderr.isatty() or
                                   len(audience) > 500)
        pool = len(audience) + sum(v for k, v in counts.items() if k != "no_offers")
        print(f"campaign {campaign_id}: {args.trigger} by {args.channel} as of {as_of} (model: {which})")
        print(f"  {pool:,} clients matched the trigger; {len(rows):,} in the audience")
        for reason, count in counts.items():
            print(f"  excluded {reason}: {count:,}")
        if not args.dry_run:
            out = campaign.write_audience(rows, table, args.out, args.limit)
            stored = store.add_exposures(config.tenant, campaign.exposure_rows(
                rows, variant="champion" if args.model is None else "campaign", model_version=version, sent_at=now))
            print(f"  wrote {out} ({out.stat().st_size:,} bytes); {stored:,} exposures stored "
                  f"(channel {args.channel}): the effect report measures the campaign")
        print(f"  in {time.perf_counter() - started:.1f}s")
    finally:
        store.close()
    return 0
