"""/app/effect: the effect report over time, per kind, per variant against control, and per channel.

An admin session only (a key is never in the URL). The figures are the report of
GET /v1/reports/effect (`service.effect.report`), computed for the chosen period and for each of
its last weeks; the plots are SVG drawn on the server (`charts`). Top accepted and rejected items
come from the stored reactions.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from flask import render_template, request
from pydantic import ValidationError

from eventstore import StoreUnavailable
from scoring.contract import groups_of
from service.api import store_unavailable
from service.effect.report import effect_report
from service.effect.schemas import EffectQuery
from service.pages.blueprint import page_context, screens
from service.pages.charts import Interval, band_chart, interval_chart
from service.problems import validation_problem
from service.runtime import runtime
from service.schemas import limits

#: Weeks drawn in the "over time" plot (each one report over the event store).
WEEKS = 6
TOP_ITEMS = 8


def _report(start: datetime, end: datetime, kind: str | None, channel: str | None) -> dict[str, Any]:
    rt = runtime()
    model = rt.models.current
    return effect_report(rt.events, rt.settings.tenant, start, end, kind=kind, channel=channel,
                         item_group=groups_of(model.recommender) if model else None,
                         attribution_days=rt.settings.attribution_days, bootstrap_resamples=200)


def _rows(effects: list[dict[str, Any]], prefix: str = "") -> list[Interval]:
    return [(f"{prefix}{e['variant']} vs {e['against']}", e["per_client"]["estimate"], e["per_client"]["ci_low"],
             e["per_client"]["ci_high"]) for e in effects]


def _weekly(end: datetime, kind: str | None, channel: str | None) -> list[Interval]:
    points: list[Interval] = []
    for week in range(WEEKS, 0, -1):
        stop = end - timedelta(days=7 * (week - 1))
        report = _report(stop - timedelta(days=7), stop, kind, channel)
        effect = report["effects"][0]["per_client"] if report["effects"] else {}
        points.append(((stop - timedelta(days=1)).strftime("%d %b"), effect.get("estimate"), effect.get("ci_low"),
                       effect.get("ci_high")))
    return points


def _top(start: datetime, end: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rt = runtime()
    frame = rt.events.reactions_between(rt.settings.tenant, start, end)
    if frame.empty:
        return [], []
    accepted = frame[frame["reaction"] == "accepted"].groupby("item_id").size().nlargest(TOP_ITEMS)
    rejected = frame[frame["reaction"] == "rejected"]
    top_rejected = []
    for item_id, rows in sorted(rejected.groupby("item_id"), key=lambda pair: -len(pair[1]))[:TOP_ITEMS]:
        reasons = rows["reason"].fillna("no reason").value_counts()
        top_rejected.append({"item_id": item_id, "count": len(rows),
                             "reasons": ", ".join(f"{reason} ({count})" for reason, count in reasons.items())})
    return [{"item_id": item, "count": int(count)} for item, count in accepted.items()], top_rejected


@screens.get("/effect")
def effect_dashboard() -> str:
    rt = runtime()
    today = datetime.now(timezone.utc).date()
    args = {"from": (today - timedelta(days=27)).isoformat(), "to": today.isoformat(),
            **{name: value for name, value in request.args.items() if value}}  # an empty select: all
    try:
        params = EffectQuery.model_validate(args, context=limits(rt.settings))
    except ValidationError as error:
        raise validation_problem(error, 400, "invalid-parameter", "query") from None
    try:
        report = _report(params.start, params.end, params.kind, params.channel)
        weekly = _weekly(params.end, params.kind, params.channel)
        top_accepted, top_rejected = _top(params.start, params.end)
    except StoreUnavailable as error:
        raise store_unavailable(error, "The effect report cannot be read") from None
    kind_rows: list[Interval] = [row for kind, figures in report["by_kind"].items()
                                 for row in _rows(figures["effects"], f"{kind}: ")]
    return render_template(
        "effect.html", report=report, params=args, kinds=sorted(report["by_kind"]),
        overall=interval_chart(_rows(report["effects"]), "Incremental revenue per client, 95 % interval"),
        per_kind=interval_chart(kind_rows, "Incremental revenue per client by kind, 95 % interval"),
        over_time=band_chart(weekly, "Incremental revenue per client, week by week"),
        top_accepted=top_accepted, top_rejected=top_rejected, **page_context())
