"""`python -m service report --from YYYY-MM-DD --to YYYY-MM-DD`: the effect report as JSON and a PNG.

Reads EVENTS_DB_URL (and TENANT, ATTRIBUTION_DAYS) like the service. The item -> product group
mapping comes from the model MODEL_NAME@MODEL_ALIAS through the service's own model store (the
registry, else its local copy); when no model is reachable, purchases are attributed by the
exact item only, and the report and the console say so.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eventstore import EventStore, StoreUnavailable
from eventstore.schema import CHANNELS
from scoring.contract import KINDS, groups_of
from service.config import Settings, apply_serving_defaults
from service.effect.report import GroupOf, effect_report
from service.effect.schemas import EffectQuery


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="start", required=True, help="first day (YYYY-MM-DD) or RFC 3339 date-time")
    parser.add_argument("--to", dest="end", required=True,
                        help="last day, included (YYYY-MM-DD), or an RFC 3339 date-time (excluded)")
    parser.add_argument("--kind", choices=KINDS, help="only this kind")
    parser.add_argument("--channel", choices=CHANNELS, help="only exposures on this channel")
    parser.add_argument("--out", type=Path, help="write the JSON report here (default: standard output)")
    parser.add_argument("--plot", type=Path, help="write the PNG plot here")
    parser.add_argument("--title", default=None, help="title of the plot (default: Effect report)")
    parser.add_argument("--no-model", action="store_true", help="do not load the model: attribute by item only")
    return parser


def item_groups(settings: Settings) -> tuple[GroupOf | None, str]:
    """The serving model's item -> group mapping and where it came from, or (None, why not)."""
    from service.model.errors import ModelRejected, RegistryUnavailable
    from service.model.store import ModelStore

    try:
        result = ModelStore(settings).refresh("report")
    except (RegistryUnavailable, ModelRejected) as error:
        return None, f"no model reachable ({type(error).__name__}: {error})"[:300]
    model = result.current
    mapping = groups_of(model.recommender) if model is not None else None
    if model is None or mapping is None:
        return None, "the model has no product groups"
    return mapping, f"{model.name} version {model.version} ({model.source})"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        period = EffectQuery.model_validate({"from": args.start, "to": args.end, "kind": args.kind,
                                             "channel": args.channel})
    except ValidationError as error:
        for item in error.errors(include_url=False):
            print(f"--{item['loc'][0]}: {item['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    if period.end < period.start:
        print("--to: must not be before `from`", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    apply_serving_defaults()
    mapping, source = (None, "--no-model") if args.no_model else item_groups(settings)
    try:
        with EventStore(settings.events_db_url) as store:
            store.create_all()  # a fresh database reads as empty tables, not an error
            report = effect_report(store, settings.tenant, period.start, period.end, kind=period.kind,
                                   channel=period.channel, item_group=mapping,
                                   attribution_days=settings.attribution_days)
    except StoreUnavailable as error:
        print(f"the event store is unavailable: {error}", file=sys.stderr)
        return 1
    report["attribution"]["groups_from"] = source if mapping else None
    if mapping is None:
        report["notes"].append(f"product groups: {source}")
    text = json.dumps(report, indent=2, allow_nan=False)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    if args.plot:
        from service.effect.plot import plot_report

        plot_report(report, args.plot, title=args.title)
    _summary(report, mapping is not None, source)
    return 0


def _summary(report: dict[str, Any], grouped: bool, source: str) -> None:
    """A few lines for the person at the console (the JSON goes to --out or standard output)."""
    print(f"effect report {report['period']['from']} to {report['period']['to']}: attribution by "
          f"{'item or product group (' + source + ')' if grouped else 'item only: ' + source}", file=sys.stderr)
    for name, figures in report["variants"].items():
        print(f"  {name}: {figures['clients']} clients, revenue per client {figures['revenue_per_client']}",
              file=sys.stderr)
    for effect in report["effects"]:
        pc = effect["per_client"]
        print(f"  {effect['variant']} vs {effect['against']}: {pc['estimate']} per client "
              f"[{pc['ci_low']}, {pc['ci_high']}], p={effect['p_value']}", file=sys.stderr)
