"""A client's behaviour changes, as first-class transitions a manager can act on.

Segments (`features.segments`) say where a client is; a CRM acts on where a client is *going*. This module
compares each client with themselves: segments as of two dates (now and one period earlier), and their
recent spend and visit rate against their own past rate. Each change becomes a row with a trigger name,
a severity in [0, 1], the suggested action and a sentence with its figures ("spend -62 % against their
last 3 months"), so the trainer can ship them, the service can list them as tasks and a campaign can
target them.

Actions: `retain` (a personal offer before they go), `develop` (next tier, upsell: they are growing) and
`win_back` (they have gone). Why severities and not just flags: a manager works the list from the top,
and a drop of an A client matters more than the same drop of a C client.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.schema import CLIENT, ITEM, PRICE, QUANTITY, TIMESTAMP
from features.segments import ABC_ORDER, client_segments

#: trigger -> suggested action; the order is the order a manager reads them in
TRIGGERS: dict[str, str] = {
    "moved_down": "retain", "lapsing": "retain", "lapsed": "win_back", "frequency_drop": "retain",
    "spend_drop": "retain", "won_back": "develop", "moved_up": "develop", "frequency_rise": "develop",
    "spend_rise": "develop", "new_category": "develop",
}
#: how much an ABC class weighs in a severity: the same change matters more for an A client
CLASS_WEIGHT = {"A": 1.0, "B": 0.7, "C": 0.4}
TRANSITION_COLUMNS = ("client_id", "trigger", "action", "severity", "detail", "change", "abc")


@dataclass(frozen=True)
class ChangeSettings:
    """Thresholds of the changes (the trainer's LAPSING_DAYS, INACTIVE_DAYS, SEGMENT_PERIOD_DAYS...)."""

    period_days: int = 30          # "one period earlier"; also the recent window of the trend
    baseline_days: int = 90        # the client's own past rate is measured over this many days before it
    threshold: float = 0.5         # a relative change of spend or visits beyond this is a transition
    min_past_visits: int = 3       # below this a "drop" is noise: no frequency or spend trigger
    lapsing_days: int = 30
    inactive_days: int = 120


def segments_at(tx: pd.DataFrame, as_of: pd.Timestamp, settings: ChangeSettings) -> pd.DataFrame:
    """`client_segments` of the history up to `as_of` (clients who had not bought yet are absent)."""
    seen = tx[tx[TIMESTAMP] <= as_of]
    return client_segments(seen, now=as_of, lapsing_days=settings.lapsing_days,
                           inactive_days=settings.inactive_days)


def value_trend(tx: pd.DataFrame, as_of: pd.Timestamp, settings: ChangeSettings) -> pd.DataFrame:
    """index client_id; visits and spend per period in the last `period_days` (`*_recent`) and over the
    `baseline_days` before them (`*_past`), and the relative changes `visits_change`, `spend_change`
    (recent ÷ past - 1; NaN without a past). Visits are purchase days."""
    recent_start = as_of - pd.Timedelta(days=settings.period_days)
    past_start = recent_start - pd.Timedelta(days=settings.baseline_days)
    window = tx[(tx[TIMESTAMP] > past_start) & (tx[TIMESTAMP] <= as_of)]
    window = window.assign(revenue=(window[QUANTITY] * window[PRICE]).fillna(0.0), recent=window[TIMESTAMP] > recent_start,
                           day=window[TIMESTAMP].dt.floor("D"))
    spend = window.groupby([CLIENT, "recent"])["revenue"].sum()
    visits = window[window[QUANTITY] > 0].groupby([CLIENT, "recent"])["day"].nunique()
    scale = settings.period_days / settings.baseline_days  # the past, per period
    out = pd.DataFrame(index=pd.Index(window[CLIENT].unique(), name=CLIENT).sort_values())
    for name, per in (("visits", visits), ("spend", spend)):
        recent = per.xs(True, level="recent").reindex(out.index, fill_value=0.0).astype(np.float64) \
            if True in per.index.get_level_values("recent") else pd.Series(0.0, index=out.index)
        past = per.xs(False, level="recent").reindex(out.index, fill_value=0.0).astype(np.float64) \
            if False in per.index.get_level_values("recent") else pd.Series(0.0, index=out.index)
        out[f"{name}_recent"] = recent
        out[f"{name}_past"] = past * scale
        out[f"{name}_change"] = np.where(past > 0, recent / np.where(past > 0, past * scale, 1.0) - 1.0, np.nan)
        if name == "visits":
            out["past_visits"] = past
    return out


def new_categories(tx: pd.DataFrame, categories: pd.Series, as_of: pd.Timestamp, period_days: int) -> pd.Series:
    """client_id -> categories first bought in the last period (sorted list); only clients with a history
    before the period (a new client's every category is new)."""
    bought = tx[(tx[TIMESTAMP] <= as_of) & (tx[QUANTITY] > 0)]
    bought = bought.assign(category=bought[ITEM].map(categories)).dropna(subset=["category"])
    first = bought.groupby([CLIENT, "category"])[TIMESTAMP].min().reset_index()
    start = as_of - pd.Timedelta(days=period_days)
    known = bought[bought[TIMESTAMP] <= start][CLIENT].unique()
    fresh = first[(first[TIMESTAMP] > start) & first[CLIENT].isin(known)]
    return fresh.groupby(CLIENT)["category"].agg(lambda s: sorted(map(str, s)))


def _percent(change: float) -> str:
    return f"{'+' if change >= 0 else '−'}{abs(change) * 100:.0f} %"


def transitions(before: pd.DataFrame, after: pd.DataFrame, trend: pd.DataFrame, fresh: pd.Series,
                settings: ChangeSettings) -> pd.DataFrame:
    """One row per (client, trigger): `TRANSITION_COLUMNS`. `before`/`after` are `segments_at` one period
    apart, `trend` is `value_trend` and `fresh` `new_categories`, all as of `after`'s date.

    Severity is the size of the change (1 for a class or state move, |relative change| capped at 1 for a
    trend) times the client's class weight (`CLASS_WEIGHT`, their class now). A client who appears
    first in `after` has no transition but a possible new category (they are new, not changed)."""
    rows: list[tuple] = []
    months = settings.baseline_days / 30
    for client in after.index:
        now = after.loc[client]
        weight = CLASS_WEIGHT.get(now["abc"], 0.4)
        if client in before.index:
            then = before.loc[client]
            move = ABC_ORDER[now["abc"]] - ABC_ORDER[then["abc"]]
            if move:
                trigger = "moved_down" if move > 0 else "moved_up"
                rows.append((client, trigger, 1.0 * max(weight, CLASS_WEIGHT.get(then["abc"], 0.4)),
                             f"ABC class {then['abc']} → {now['abc']}", float(move)))
            states = (then["activity"], now["activity"])
            if states == ("active", "lapsing"):
                rows.append((client, "lapsing", weight, f"no purchase for {now['recency_days']:.0f} days "
                                                        f"(active a period ago)", np.nan))
            elif states[1] == "inactive" and states[0] != "inactive":
                rows.append((client, "lapsed", weight, f"no purchase for {now['recency_days']:.0f} days: "
                                                       "now in the inactive base", np.nan))
            elif states[0] in ("lapsing", "inactive") and states[1] == "active":
                rows.append((client, "won_back", weight, f"bought again after being {states[0]}", np.nan))
        if client in trend.index and trend.at[client, "past_visits"] >= settings.min_past_visits:
            t = trend.loc[client]
            for name, label in (("visits", "visits"), ("spend", "spend")):
                change = t[f"{name}_change"]
                if np.isfinite(change) and abs(change) >= settings.threshold:
                    trigger = f"{'frequency' if name == 'visits' else 'spend'}_{'drop' if change < 0 else 'rise'}"
                    rows.append((client, trigger, min(abs(change), 1.0) * weight,
                                 f"{label} {_percent(change)} against their last {months:.0f} months "
                                 f"({t[f'{name}_past']:.1f} → {t[f'{name}_recent']:.1f} a period)", float(change)))
        if client in fresh.index and client in before.index:
            cats = fresh[client]
            rows.append((client, "new_category", 0.3 * weight, "first purchases in " + ", ".join(cats[:3])
                         + (f" and {len(cats) - 3} more" if len(cats) > 3 else ""), float(len(cats))))
    table = pd.DataFrame(rows, columns=["client_id", "trigger", "severity", "detail", "change"])
    table["action"] = table["trigger"].map(TRIGGERS)
    table["abc"] = table["client_id"].map(after["abc"])
    table["severity"] = table["severity"].round(4)
    return table[list(TRANSITION_COLUMNS)].sort_values(["client_id", "trigger"], ignore_index=True)


def client_changes(tx: pd.DataFrame, as_of: pd.Timestamp, settings: ChangeSettings,
                   categories: pd.Series | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-client table: segments now and a period ago with the trend, transitions) as of `as_of`."""
    as_of = pd.Timestamp(as_of)
    after = segments_at(tx, as_of, settings)
    before = segments_at(tx, as_of - pd.Timedelta(days=settings.period_days), settings)
    trend = value_trend(tx, as_of, settings)
    fresh = (new_categories(tx, categories, as_of, settings.period_days) if categories is not None
             else pd.Series(dtype=object))
    table = after[["abc", "rfm", "activity", "recency_days", "frequency", "monetary"]].join(
        before[["abc", "rfm", "activity"]].add_suffix("_before"), how="left").join(
        trend[["visits_recent", "visits_past", "visits_change", "spend_recent", "spend_past", "spend_change"]],
        how="left")
    moves = transitions(before, after, trend, fresh, settings)
    table["transitions"] = moves.groupby("client_id")["trigger"].agg(",".join).reindex(table.index).fillna("")
    return table, moves
