"""The report's own rules (service/effect/report.py) on tiny hand-made periods: who is in which
arm, what counts as revenue, shown and clicked, and that odd periods still give valid JSON."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from service.effect.report import report_from_frames

START, END = datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 6, 1, tzinfo=timezone.utc)


def at(day: int) -> pd.Timestamp:
    return pd.Timestamp(2024, 5, day, 12, tzinfo=timezone.utc)


def exposure(rid: str, client: str, variant: str, day: int, items: list[str], kind: str = "cross_sell",
             channel: str = "crm") -> dict[str, Any]:
    return {"recommendation_id": rid, "client_id": client, "visitor_id": None, "variant": variant, "kind": kind,
            "channel": channel, "shown_at": at(day),
            "items": [{"item_id": i, "group": None, "kind": kind, "position": n} for n, i in enumerate(items)]}


def purchase(client: str, item: str, day: int, price: float | None, quantity: float | None = 1.0) -> dict[str, Any]:
    return {"client_id": client, "visitor_id": None, "item_id": item, "occurred_at": at(day), "price": price,
            "quantity": quantity}


def report(exposures: list[dict], purchases: list[dict], reactions: list[dict] | None = None, **kw: Any) -> dict:
    frames = [pd.DataFrame(exposures), pd.DataFrame(purchases, columns=list(purchase("c", "i", 1, 1.0))),
              pd.DataFrame(reactions or [], columns=["recommendation_id", "item_id", "reaction"])]
    out = report_from_frames(*frames, start=START, end=END, bootstrap_resamples=50, **kw)
    json.dumps(out, allow_nan=False)  # never NaN
    return out


def test_a_client_stays_in_the_variant_of_its_first_exposure_and_all_its_revenue_counts() -> None:
    out = report([exposure("r1", "a", "champion", 2, ["x"]), exposure("r2", "a", "control", 5, ["y"]),
                  exposure("r3", "b", "control", 3, ["y"])],
                 [purchase("a", "z", 1, 10.0, 2.0), purchase("a", "x", 4, 5.0, None), purchase("b", "q", 9, None),
                  purchase("a", "x", 30, 1.0)])
    champion, control = out["variants"]["champion"], out["variants"]["control"]
    assert (champion["clients"], control["clients"]) == (1, 1)
    assert champion["revenue"] == 26.0  # before its exposure too, quantity 1 when missing
    assert control["revenue"] == 0.0    # an unknown price is no revenue
    assert champion["attributed_purchases"] == 1 and champion["attributed_revenue"] == 5.0
    assert control["exposures"] == 2 and champion["exposures"] == 1


def test_shown_counts_showing_channels_reactions_and_clicks_once_each() -> None:
    out = report([exposure("r1", "a", "champion", 2, ["x", "y"], channel="email"),
                  exposure("r2", "b", "champion", 2, ["x", "y"], channel="crm")], [],
                 [{"recommendation_id": "r1", "item_id": "x", "reaction": "clicked"},
                  {"recommendation_id": "r2", "item_id": "x", "reaction": "clicked"},
                  {"recommendation_id": "r2", "item_id": "y", "reaction": "shown"},
                  {"recommendation_id": "r2", "item_id": "y", "reaction": "accepted"},
                  {"recommendation_id": "r9", "item_id": "x", "reaction": "clicked"}])  # not an answer of the period
    champion = out["variants"]["champion"]
    assert (champion["shown_items"], champion["clicked_items"], champion["accepted_items"]) == (4, 2, 1)
    assert (champion["ctr"], champion["acceptance_rate"]) == (0.5, 0.25)


def test_without_control_or_with_tiny_arms_the_report_says_why() -> None:
    only = report([exposure("r1", "a", "champion", 2, ["x"])], [purchase("a", "x", 3, 2.0)])
    assert any("no control client" in note for note in only["notes"])
    assert only["effects"][0]["per_client"]["ci_low"] is None and only["effects"][0]["note"]
    empty = report([exposure("r1", "a", "champion", 2, ["x"])], [], channel="push")
    assert empty["variants"] == {"control": empty["variants"]["control"]} and empty["effects"] == []
    assert any("no exposures" in note for note in empty["notes"])


def test_a_kind_all_answer_counts_for_every_grouped_kind_and_the_kind_filter_keeps_its_items() -> None:
    exposures = [exposure("r1", "a", "control", 2, [], kind="all"), exposure("r2", "b", "champion", 2, ["x"]),
                 exposure("r3", "c", "champion", 2, ["u"], kind="upsell")]
    out = report(exposures, [purchase("b", "x", 3, 4.0), purchase("c", "u", 3, 6.0)])
    assert {"cross_sell", "upsell", "replenishment", "service_package"} <= set(out["by_kind"])
    assert out["by_kind"]["upsell"]["variants"] == {"control": {"clients": 1, "revenue_per_client": 0.0},
                                                    "champion": {"clients": 1, "revenue_per_client": 6.0}}
    upsell = report(exposures, [purchase("b", "x", 3, 4.0), purchase("c", "u", 3, 6.0)], kind="upsell")
    assert upsell["variants"]["champion"]["clients"] == 1 and upsell["variants"]["champion"]["attributed_revenue"] == 6.0


def test_a_period_without_exposures_filtered_by_kind_is_an_empty_report() -> None:
    """The fuzzer's find: a kind filter over no exposures once selected no columns (a 500)."""
    empty = pd.DataFrame([exposure("r", "c", "champion", 1, ["a"])]).iloc[:0]
    out = report_from_frames(
        empty, pd.DataFrame(columns=list(purchase("c", "i", 1, 1.0))),
        pd.DataFrame(columns=["recommendation_id", "item_id", "reaction"]), start=START, end=END, kind="cross_sell",
        channel="crm", bootstrap_resamples=50)
    json.dumps(out, allow_nan=False)
    assert out["variants"]["control"]["clients"] == 0 and "nothing to compare" in " ".join(out["notes"])
