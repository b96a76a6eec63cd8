"""GET /v1/reports/effect: the effect report over HTTP (admin key), a thin handler over `report`."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from eventstore import StoreUnavailable
from scoring.contract import groups_of
from service.effect.report import effect_report
from service.effect.schemas import EffectQuery, EffectReport
from service.inputs import query
from service.openapi import Endpoint, api_route
from service.problems import Problem
from service.runtime import runtime
from service.schemas import limits

effect = Blueprint("effect", __name__, url_prefix="/v1")


@api_route(effect, "/reports/effect", "GET", Endpoint(
    summary="What suggestions earned: incremental revenue per variant against the control group, with 95 % CIs",
    tag="reports", auth="admin", query=EffectQuery, response=EffectReport, errors=(503,),
    description="Intention-to-treat: every client answered in the period, in the variant of its first exposure, "
                "and all its purchase revenue in the period; attributed revenue beside it. Welch's t interval "
                "and p-value, the minimum detectable effect at 80 % power, per kind and between experiment "
                "variants. Computed from stored events only."))
def effect_report_view() -> Response:
    rt = runtime()
    params = query(request, EffectQuery, limits(rt.settings))
    model = rt.models.current
    try:
        body = effect_report(rt.events, rt.settings.tenant, params.start, params.end, kind=params.kind,
                             channel=params.channel, item_group=groups_of(model.recommender) if model else None,
                             attribution_days=rt.settings.attribution_days)
    except StoreUnavailable as error:
        raise Problem(503, "store-unavailable", f"The event store is unavailable: {error}"[:500],
                      headers={"Retry-After": "5"}) from None
    if params.end < params.start:  # schema-valid, so not refused: an empty period, said so
        body["notes"].insert(0, "`to` is before `from`: the period is empty")
    return jsonify(body)
