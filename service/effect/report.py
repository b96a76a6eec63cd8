"""The effect report: what suggestions earn, per variant, against the control group.

Every figure comes from the stored events (exposures, purchases, reactions), never from the model.

Intention-to-treat: the population is every subject (client, or visitor without a client id)
answered in the period, each in the variant of its first exposure in the period (control clients
are answered too, with the business-as-usual answer, and their exposures say `control`). The
outcome is all of a subject's purchase revenue in the period [start, end), attributed or not:
control clients have no suggestions to attribute to, so only whole revenue compares like with
like. Attributed revenue (`attribution.attribute`) is reported beside it, as what the
suggestions were credited with.

Rates: an item counts as *shown* once per answer when a `shown` reaction says so, when the answer
went out on a channel that shows it by definition (email, push), or when it was clicked or
accepted (which it could not be unseen). CTR = clicked items / shown items; acceptance rate =
accepted items / shown items, all over distinct (recommendation, item) pairs.

A purchase carrying both a client and a visitor id counts for each of the two subjects that was
answered (the client's own answers, and the anonymous cart answers of its session before it
logged in); the two may sit in different arms, so such a purchase can count in both. It is rare,
and the alternative (guessing which subject the purchase belongs to) would be a choice the data
cannot justify.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from eventstore.schema import SHOWING_CHANNELS
from scoring.contract import GROUPED_KINDS
from service.effect import attribution, estimator

CONTROL = "control"
GroupOf = Callable[[Sequence[str]], Sequence[str | None]]

DEFINITIONS = {
    "population": "clients (or visitors) answered in the period, each in the variant of its first exposure",
    "revenue": "price x quantity (1 when missing) of every purchase in [from, to), attributed or not",
    "incremental": "mean revenue per client of the variant minus that of control (intention-to-treat); total = "
                   "per client x the variant's clients",
    "ci": "95 % Welch t interval (unequal variances); bootstrap_per_client: percentile bootstrap over clients",
    "mde": "true difference per client found with 80 % power at two-sided alpha 0.05 with these samples",
    "shown": "distinct (answer, item) with a shown reaction, an email/push exposure, a click or an acceptance",
    "ctr": "clicked items / shown items", "acceptance_rate": "accepted items / shown items",
    "attributed": "purchases of a suggested item, or of its product group, within attribution days after the last "
                  "such exposure of the same client",
}


class EventReader(Protocol):
    """What the report reads from `eventstore.EventStore`."""

    def purchases(self, tenant: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame: ...

    def exposures_between(self, tenant: str, start: datetime, end: datetime) -> pd.DataFrame: ...

    def reactions_between(self, tenant: str, start: datetime, end: datetime) -> pd.DataFrame: ...


def effect_report(store: EventReader, tenant: str, start: datetime, end: datetime, *, kind: str | None = None,
                  channel: str | None = None, item_group: GroupOf | None = None, attribution_days: int = 14,
                  bootstrap_resamples: int = estimator.BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """The report of [start, end) for `tenant` (optionally one kind, one channel), read from `store`.
    `item_group` maps item ids to product groups (the serving model's); without it a purchase is
    attributed only to an exposure of the very item."""
    return report_from_frames(store.exposures_between(tenant, start, end), store.purchases(tenant, start, end),
                              store.reactions_between(tenant, start, end), start=start, end=end, tenant=tenant,
                              kind=kind, channel=channel, item_group=item_group, attribution_days=attribution_days,
                              bootstrap_resamples=bootstrap_resamples)


def report_from_frames(exposures: pd.DataFrame, purchases: pd.DataFrame, reactions: pd.DataFrame, *,
                       start: datetime, end: datetime, tenant: str = "default", kind: str | None = None,
                       channel: str | None = None, item_group: GroupOf | None = None, attribution_days: int = 14,
                       bootstrap_resamples: int = estimator.BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """`effect_report` over frames as the store's readers return them (pure)."""
    exposures = _in_period(exposures, "shown_at", start, end)
    purchases = _in_period(purchases, "occurred_at", start, end)
    if channel is not None:
        exposures = exposures[exposures["channel"] == channel].reset_index(drop=True)
    shown = attribution.exposed_items(exposures) if len(exposures) else _no_items()
    kinds_of = _kinds_by_exposure(exposures, shown)
    if kind is not None:  # the whole report about one kind: its exposures, and only its items in them
        keep = np.array([kind in kinds for kinds in kinds_of], dtype=bool)  # a bool mask even when empty
        exposures = exposures.loc[keep].reset_index(drop=True)
        kinds_of = [{kind} for _ in range(len(exposures))]
        exposures = exposures.assign(items=_items_of_kind(exposures, kind))
        shown = attribution.exposed_items(exposures) if len(exposures) else _no_items()
    assigned = _assignment(exposures)
    revenue = _revenue_per_subject(purchases, assigned.index)
    attributed = attribution.attribute(exposures, purchases, days=attribution_days, group_of=item_group)
    purchase_revenue = _revenue(purchases)
    counts = _item_reactions(shown, reactions)
    variants = sorted(set(assigned) | {CONTROL}, key=lambda v: (v != CONTROL, -int((assigned == v).sum()), v))
    report: dict[str, Any] = {
        "tenant": tenant, "period": {"from": start.isoformat(), "to": end.isoformat()},
        "filters": {"kind": kind, "channel": channel},
        "method": "welch", "confidence": 1 - estimator.ALPHA, "power": estimator.POWER,
        "attribution": {"days": attribution_days, "match": "item or product group" if item_group else "item only"},
        "definitions": DEFINITIONS,
        "variants": {v: _variant_figures(v, assigned, revenue, exposures, counts, attributed, purchase_revenue)
                     for v in variants},
    }
    report["effects"] = _against_control(variants, assigned, revenue, bootstrap_resamples)
    report["by_kind"] = _by_kind(exposures, kinds_of, assigned, revenue, variants)
    report["between_variants"] = _between(variants, assigned, revenue, bootstrap_resamples)
    report["notes"] = _notes(report, item_group, assigned)
    return report


# ---- inputs ----

def _no_items() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in
                         ("exposure", "item_id", "group", "kind", "recommendation_id", "variant", "channel", "subject",
                          "shown_at")})


def _in_period(frame: pd.DataFrame, column: str, start: datetime, end: datetime) -> pd.DataFrame:
    if not len(frame):
        return frame
    times = attribution.utc(frame[column])
    return frame[(times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))].reset_index(drop=True)


def _kinds_by_exposure(exposures: pd.DataFrame, shown: pd.DataFrame) -> list[set[str]]:
    """The kinds each exposure asked for or showed: its own kind (`all`: every grouped kind) and
    its items' kinds, so a control answer of another kind still counts for the kind asked."""
    by_row: list[set[str]] = [set() for _ in range(len(exposures))]
    for row, item_kind in zip(shown["exposure"].to_numpy(), shown["kind"].to_numpy(object), strict=True):
        if item_kind is not None:
            by_row[int(row)].add(str(item_kind))
    for row, own in enumerate(exposures["kind"].to_numpy(object) if len(exposures) else []):
        if own == "all":
            by_row[row].update(GROUPED_KINDS)
        elif own is not None and not pd.isna(own):
            by_row[row].add(str(own))
    return by_row


def _items_of_kind(exposures: pd.DataFrame, kind: str) -> list[list[dict[str, Any]]]:
    """Each exposure's items of `kind` (an item without a kind has its exposure's)."""
    return [[item for item in attribution.items_list(items) if isinstance(item, dict)
             and (item.get("kind") or own) == kind]
            for items, own in zip(exposures["items"], exposures["kind"], strict=True)]


def _assignment(exposures: pd.DataFrame) -> pd.Series:
    """subject -> variant of its first exposure in the period, in subject order (so the bootstrap
    resamples the same arrays whatever order the rows were read in)."""
    if not len(exposures):
        return pd.Series(dtype=object)
    frame = pd.DataFrame({"subject": attribution.subjects(exposures["client_id"], exposures["visitor_id"]),
                          "variant": exposures["variant"].astype(str).to_numpy(object),
                          "t": attribution.nanos(exposures["shown_at"])})
    frame = frame[frame["subject"].notna()].sort_values(["t", "subject"], kind="stable")
    return frame.drop_duplicates("subject").set_index("subject")["variant"].sort_index()


def _revenue(purchases: pd.DataFrame) -> np.ndarray:
    if not len(purchases):
        return np.zeros(0)
    price = pd.to_numeric(purchases["price"], errors="coerce").fillna(0.0).to_numpy(float)
    if "quantity" not in purchases:
        return price
    return price * pd.to_numeric(purchases["quantity"], errors="coerce").fillna(1.0).to_numpy(float)


def _revenue_per_subject(purchases: pd.DataFrame, population: pd.Index) -> pd.Series:
    """Revenue of each subject of the population in the period (0 for those who bought nothing)."""
    if not len(purchases) or not len(population):
        return pd.Series(0.0, index=population)
    longs = attribution.purchase_subjects(purchases)
    amounts = pd.Series(_revenue(purchases)[longs["purchase"].to_numpy()], index=longs["subject"].to_numpy())
    return amounts.groupby(level=0).sum().reindex(population, fill_value=0.0)


# ---- figures ----

def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


def _item_reactions(shown: pd.DataFrame, reactions: pd.DataFrame) -> pd.DataFrame:
    """Per variant: shown, clicked and accepted items, counted over distinct (answer, item) pairs
    of these exposures (see the module docstring for what counts as shown)."""
    pairs = shown.drop_duplicates(["recommendation_id", "item_id"])[["recommendation_id", "item_id", "variant", "channel"]]
    flags = pairs.assign(showing=pairs["channel"].isin(SHOWING_CHANNELS).to_numpy(bool))
    for name in ("shown", "clicked", "accepted"):
        flags[name] = False
    if len(reactions) and len(pairs):
        kept = reactions[reactions["reaction"].isin(("shown", "clicked", "accepted"))]
        wide = (kept.assign(flag=True).drop_duplicates(["recommendation_id", "item_id", "reaction"])
                .pivot_table(index=["recommendation_id", "item_id"], columns="reaction", values="flag",
                             aggfunc="any", fill_value=False))
        joined = flags[["recommendation_id", "item_id"]].merge(wide.reset_index(), how="left",
                                                              on=["recommendation_id", "item_id"])
        for name in ("shown", "clicked", "accepted"):
            if name in joined:
                flags[name] = joined[name].fillna(False).astype(bool).to_numpy()
    flags["seen"] = flags["showing"] | flags["shown"] | flags["clicked"] | flags["accepted"]
    return flags.groupby("variant")[["seen", "clicked", "accepted"]].sum()


def _variant_figures(variant: str, assigned: pd.Series, revenue: pd.Series, exposures: pd.DataFrame,
                     counts: pd.DataFrame, attributed: pd.DataFrame, purchase_revenue: np.ndarray) -> dict[str, Any]:
    members = assigned.index[assigned.to_numpy() == variant]
    values = revenue.reindex(members).to_numpy(float)
    seen, clicked, accepted = (int(counts.at[variant, c]) if variant in counts.index else 0
                               for c in ("seen", "clicked", "accepted"))
    credited = (attributed["variant"] == variant).to_numpy(bool)
    return {
        "clients": int(len(members)),
        "exposures": int((exposures["variant"].astype(str) == variant).sum()) if len(exposures) else 0,
        "shown_items": seen, "clicked_items": clicked, "accepted_items": accepted,
        "ctr": _rate(clicked, seen), "acceptance_rate": _rate(accepted, seen),
        "attributed_purchases": int(credited.sum()),
        "attributed_revenue": round(float(purchase_revenue[credited].sum()), 2) if len(purchase_revenue) else 0.0,
        "revenue": round(float(values.sum()), 2),
        "revenue_per_client": estimator.finite(round(float(values.mean()), 6)) if len(values) else None,
        "revenue_per_client_ci": _mean_interval(values),
    }


def _mean_interval(values: np.ndarray) -> dict[str, float | None]:
    """95 % t interval of one arm's mean revenue per client (the plot's error bars)."""
    if len(values) < 2:
        return {"low": None, "high": None}
    from scipy import stats

    half = float(stats.t.ppf(1 - estimator.ALPHA / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    mean = float(values.mean())
    return {"low": estimator.finite(round(mean - half, 6)), "high": estimator.finite(round(mean + half, 6))}


def _effect(variant: str, against: str, assigned: pd.Series, revenue: pd.Series, resamples: int) -> dict[str, Any]:
    values = revenue.to_numpy(float)
    groups = assigned.reindex(revenue.index).to_numpy(object)
    effect = estimator.incremental_effect(values[groups == variant], values[groups == against],
                                          bootstrap_resamples=resamples)
    return {"variant": variant, "against": against, **effect.as_dict()}


def _against_control(variants: list[str], assigned: pd.Series, revenue: pd.Series, resamples: int) -> list[dict]:
    return [_effect(v, CONTROL, assigned, revenue, resamples) for v in variants if v != CONTROL]


def _between(variants: list[str], assigned: pd.Series, revenue: pd.Series, resamples: int) -> list[dict]:
    """Each pair of non-control variants: the smaller (e.g. candidate) against the larger (champion)."""
    arms = [v for v in variants if v != CONTROL]
    return [_effect(arms[j], arms[i], assigned, revenue, resamples)
            for i in range(len(arms)) for j in range(i + 1, len(arms))]


def _by_kind(exposures: pd.DataFrame, kinds_of: list[set[str]], assigned: pd.Series, revenue: pd.Series,
             order: list[str]) -> dict[str, Any]:
    """The same comparison within the subjects whose exposures include each kind (Welch only: the
    bootstrap cross-checks the headline comparisons, and per kind it would multiply the cost)."""
    if not len(exposures):
        return {}
    subject = attribution.subjects(exposures["client_id"], exposures["visitor_id"])
    out: dict[str, Any] = {}
    for kind in sorted(set().union(*kinds_of)):
        members = pd.Index(sorted({s for s, kinds in zip(subject, kinds_of, strict=True)
                                   if s is not None and kind in kinds}))
        sub_assigned, sub_revenue = assigned.reindex(members), revenue.reindex(members)
        variants = [v for v in order if v in set(sub_assigned)]
        out[kind] = {
            "variants": {v: {"clients": int((sub_assigned == v).sum()),
                             "revenue_per_client": estimator.finite(round(float(sub_revenue[sub_assigned == v].mean()), 6))}
                         for v in variants},
            "effects": _against_control(variants, sub_assigned, sub_revenue, 0) if CONTROL in variants else [],
        }
    return out


def _notes(report: dict[str, Any], item_group: GroupOf | None, assigned: pd.Series) -> list[str]:
    notes = []
    if not len(assigned):
        notes.append("no exposures in the period: nothing to compare")
    elif not report["variants"][CONTROL]["clients"]:
        notes.append("no control client was answered in the period: no incremental effect (CONTROL_SHARE > 0?)")
    if item_group is None:
        notes.append("no item-to-group mapping: purchases are attributed by the exact item only")
    notes.extend(f"{e['variant']} vs {e['against']}: {e['note']}" for e in report["effects"] if e.get("note"))
    return notes
