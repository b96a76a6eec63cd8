"""Client segments a CRM already speaks in: RFM scores, ABC revenue classes and activity states.

Segments steer which suggestions a client gets (win-back offers for the lapsing, upsell for
A clients) and a client sliding down a segment is the earliest churn signal the CRM can act on.
"""
from __future__ import annotations

import inspect

import numpy as np
import pandas as pd

from features.schema import CLIENT, ORDER, PRICE, QUANTITY, TIMESTAMP

ABC_ORDER = {"A": 0, "B": 1, "C": 2}
ACTIVITY_ORDER = {"active": 0, "lapsing": 1, "inactive": 2}


def _reference_time(transactions: pd.DataFrame, now: pd.Timestamp | None) -> pd.Timestamp:
    return transactions[TIMESTAMP].max() if now is None else pd.Timestamp(now)


def _clients(transactions: pd.DataFrame) -> pd.Index:
    return pd.Index(transactions[CLIENT].dropna().unique(), name=CLIENT).sort_values()


def _line_revenue(transactions: pd.DataFrame) -> pd.Series:
    """quantity * unit price per line, unknown prices counting as 0."""
    return (transactions[QUANTITY] * transactions[PRICE]).fillna(0.0)


def _days_since_last_purchase(transactions: pd.DataFrame, now: pd.Timestamp) -> pd.Series:
    """Per client, days (float) since the last positive line; NaN for clients who only returned."""
    bought = transactions[transactions[QUANTITY] > 0]
    last = bought.groupby(CLIENT)[TIMESTAMP].max()
    days = (now - last) / pd.Timedelta(days=1)
    return days.reindex(_clients(transactions)).rename("recency_days")


def _quantile_score(values: pd.Series, bins: int, higher_is_better: bool = True) -> pd.Series:
    """1..bins by percentile rank (ties share a score); missing values score 1, the worst."""
    pct = values.rank(method="average", pct=True, ascending=higher_is_better)
    score = np.ceil(pct.to_numpy(dtype=np.float64, na_value=np.nan) * bins - 1e-9)
    return pd.Series(np.clip(np.nan_to_num(score, nan=1.0), 1, bins).astype(np.int64), index=values.index)


def rfm_scores(transactions: pd.DataFrame, now: pd.Timestamp | None = None, bins: int = 5) -> pd.DataFrame:
    """index client_id; columns recency_days, frequency (distinct orders), monetary (sum quantity*price over positive lines, NaN price -> 0), r_score, f_score, m_score (1..bins quantile scores, higher = better; recency: more recent = higher), rfm (string like "545").

    Why: the classic three questions about a client (how lately, how often, how much) on one
    comparable scale, so campaigns can target "555" champions or "155" big spenders gone quiet.
    Scores are percentile ranks within the clients given, ties sharing a score; a client who has
    only returns has NaN recency and scores 1 on it.
    """
    if bins < 1:
        raise ValueError("bins must be at least 1")
    now = _reference_time(transactions, now)
    clients = _clients(transactions)
    bought = transactions[transactions[QUANTITY] > 0]
    frequency = bought.groupby(CLIENT)[ORDER].nunique().reindex(clients, fill_value=0)
    monetary = _line_revenue(bought).groupby(bought[CLIENT]).sum().reindex(clients, fill_value=0.0)
    scores = pd.DataFrame(
        {
            "recency_days": _days_since_last_purchase(transactions, now),
            "frequency": frequency.astype(np.int64),
            "monetary": monetary.astype(np.float64),
        },
        index=clients,
    )
    scores["r_score"] = _quantile_score(scores["recency_days"], bins, higher_is_better=False)
    scores["f_score"] = _quantile_score(scores["frequency"], bins)
    scores["m_score"] = _quantile_score(scores["monetary"], bins)
    scores["rfm"] = (
        scores["r_score"].astype("str") + scores["f_score"].astype("str") + scores["m_score"].astype("str")
    )
    return scores


def abc_classes(transactions: pd.DataFrame, a_share: float = 0.80, b_share: float = 0.95) -> pd.Series:
    """client_id -> "A"/"B"/"C" by revenue Pareto.

    Sort clients by revenue (descending, ties by client id); a client whose cumulative share of
    revenue *before* them is < a_share is A (so the top clients making 80% are A), < b_share B,
    else C. Clients with zero revenue are C. Revenue is net: returns (negative quantities with a
    known price) reduce it, clipped at 0. Why: a key-account manager cannot call everyone; A is
    the short list that pays the bills.
    """
    if not 0.0 <= a_share <= b_share <= 1.0:
        raise ValueError("expected 0 <= a_share <= b_share <= 1")
    revenue = _line_revenue(transactions).groupby(transactions[CLIENT]).sum().clip(lower=0.0)
    revenue = revenue.reindex(_clients(transactions), fill_value=0.0).rename("revenue")
    ranked = revenue.reset_index().sort_values(["revenue", CLIENT], ascending=[False, True])
    ranked_revenue = ranked["revenue"].to_numpy(dtype=np.float64)
    total = ranked_revenue.sum()
    revenue_before = np.concatenate([[0.0], np.cumsum(ranked_revenue)])[: len(ranked_revenue)]
    share_before = revenue_before / total if total > 0 else np.ones(len(ranked))
    tolerance = 1e-12  # a client starting exactly at the boundary belongs to the lower class
    classes = np.select(
        [ranked_revenue <= 0, share_before < a_share - tolerance, share_before < b_share - tolerance],
        ["C", "A", "B"],
        default="C",
    )
    result = pd.Series(classes, index=pd.Index(ranked[CLIENT].to_numpy(), name=CLIENT), name="abc")
    return result.sort_index().astype("str")


def activity_states(
    transactions: pd.DataFrame,
    now: pd.Timestamp | None = None,
    lapsing_days: int = 30,
    inactive_days: int = 120,
) -> pd.Series:
    """client_id -> "active" (days since last purchase <= lapsing_days) / "lapsing" (<= inactive_days) / "inactive".

    Why: the lapsing window is when a win-back offer still works; the inactive have gone.
    Days are fractional; a client with only returns is inactive.
    """
    if lapsing_days > inactive_days:
        raise ValueError("lapsing_days must not exceed inactive_days")
    days = _days_since_last_purchase(transactions, _reference_time(transactions, now)).to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    states = np.select([days <= lapsing_days, days <= inactive_days], ["active", "lapsing"], default="inactive")
    return pd.Series(states, index=_clients(transactions), name="activity").astype("str")


def _split_thresholds(thresholds: dict) -> tuple[dict, dict, dict]:
    """Route keyword thresholds to rfm_scores, abc_classes and activity_states; unknown keys are an error."""
    routed = []
    for function in (rfm_scores, abc_classes, activity_states):
        names = set(inspect.signature(function).parameters) - {"transactions", "now"}
        routed.append({key: value for key, value in thresholds.items() if key in names})
    unknown = set(thresholds) - set().union(*routed)
    if unknown:
        raise ValueError(f"unknown segment thresholds: {sorted(unknown)}")
    return routed[0], routed[1], routed[2]


def client_segments(transactions: pd.DataFrame, now: pd.Timestamp | None = None, **thresholds) -> pd.DataFrame:
    """index client_id; columns abc, activity, r_score, f_score, m_score, rfm, recency_days, frequency, monetary.

    thresholds: bins, a_share, b_share, lapsing_days, inactive_days (see the functions above).
    """
    rfm_kwargs, abc_kwargs, activity_kwargs = _split_thresholds(thresholds)
    rfm = rfm_scores(transactions, now=now, **rfm_kwargs)
    segments = pd.DataFrame(
        {
            "abc": abc_classes(transactions, **abc_kwargs),
            "activity": activity_states(transactions, now=now, **activity_kwargs),
        },
        index=rfm.index,
    )
    columns = ["r_score", "f_score", "m_score", "rfm", "recency_days", "frequency", "monetary"]
    return pd.concat([segments, rfm[columns]], axis=1)


def segment_changes(
    transactions: pd.DataFrame, before: pd.Timestamp, after: pd.Timestamp, **thresholds
) -> pd.DataFrame:
    """Segments computed on history up to `before` and up to `after`; index client_id; columns abc_before, abc_after, activity_before, activity_after, moved ("up"/"down"/"same").

    "down" when the ABC class worsened (A->B, B->C, A->C) or activity worsened
    (active->lapsing->inactive); "up" when either improved and neither worsened. A client who
    moved down is a churn signal for the CRM. Clients who first bought after `before` have
    missing *_before values and are compared as if they had been C and inactive (so usually "up").
    """
    before, after = pd.Timestamp(before), pd.Timestamp(after)
    if after < before:
        raise ValueError("after must not be earlier than before")
    earlier = client_segments(transactions[transactions[TIMESTAMP] <= before], now=before, **thresholds)
    later = client_segments(transactions[transactions[TIMESTAMP] <= after], now=after, **thresholds)
    changes = pd.DataFrame(
        {
            "abc_before": earlier["abc"],
            "abc_after": later["abc"],
            "activity_before": earlier["activity"],
            "activity_after": later["activity"],
        },
        index=later.index.union(earlier.index),
    )
    abc_delta = _rank(changes["abc_after"], ABC_ORDER) - _rank(changes["abc_before"], ABC_ORDER)
    activity_delta = _rank(changes["activity_after"], ACTIVITY_ORDER) - _rank(
        changes["activity_before"], ACTIVITY_ORDER
    )
    worse = (abc_delta > 0) | (activity_delta > 0)
    better = (abc_delta < 0) | (activity_delta < 0)
    changes["moved"] = pd.Series(
        np.select([worse, better], ["down", "up"], default="same"), index=changes.index
    ).astype("str")
    return changes


def _rank(labels: pd.Series, order: dict[str, int]) -> np.ndarray:
    """Position of each label in its ordering (0 = best); missing labels count as the worst."""
    return labels.map(order).fillna(max(order.values())).to_numpy(dtype=np.int64)
