"""Replenishment: the client's own items that they are likely to buy again now.

The hand blend: recency-weighted frequency plus long-run frequency, boosted for items people do
buy again (milk over a grill). With learnt coefficients in the model, the learnt chance of a
repurchase replaces it. Items whose usual interval has elapsed are flagged "due". Nothing for a
client without history; never what the request says was just bought.
"""
from __future__ import annotations

import numpy as np

from scoring import learnt, reasons
from scoring.contract import Suggestion
from scoring.evidence import Evidence
from scoring.kinds.base import Ranked, SuggestionKind
from scoring.ranking import NEG, first_positions, top_indices


def due_ratio(ev: Evidence) -> np.ndarray:
    """Per history item, days since the last purchase over its usual interval (0 without one)."""
    sl = ev.history_slice
    interval, age = ev.state.hist_interval[sl], ev.state.hist_last_age[sl]
    return np.where(np.isnan(interval), 0.0, age / np.maximum(interval, 1.0))


def blend(ev: Evidence) -> np.ndarray:
    """The hand blend over the client's history slice."""
    st, sl, w = ev.state, ev.history_slice, ev.weights
    recency = st.hist_recency[sl] / max(float(st.hist_recency[sl].max()), 1e-9)
    freq = np.log1p(st.hist_count[sl]) / max(float(np.log1p(st.hist_count[sl]).max()), 1e-9)
    return (recency + w["replenish_freq"] * freq) * (1.0 + w["replenish_repeat"] * st.item_repeat[ev.history])


class Replenishment(SuggestionKind):
    name = "replenishment"

    def rank(self, ev: Evidence, allowed: np.ndarray, limit: int) -> Ranked:
        hist = ev.history
        if hist.size == 0:
            return Ranked(np.empty(0, np.int64), np.empty(0, np.float32), None)
        model = learnt.coefficients(ev.weights, learnt.REPLENISH_PREFIX, learnt.REPLENISH_FEATURES)
        if model is not None:  # the chance of buying it again, learnt on the inner split
            score = learnt.probability(learnt.replenishment_features(ev.state, ev.history_slice, hist), model)
        else:
            score = blend(ev)
        # never a fee or a coupon, and one code per product group (two sodas of one name read twice)
        score = np.where(allowed[hist] & ev.state.item_merch[hist] & ~np.isin(hist, ev.recent), score, NEG)
        fetch = limit
        while True:
            top = top_indices(score, fetch)
            kept = top[first_positions(ev.catalogue.groups[hist[top]])][:limit]
            if kept.size >= limit or top.size < fetch:
                return Ranked(hist[kept], score[kept], None)
            fetch *= 4

    def scores_are_probabilities(self, ev: Evidence) -> bool:
        return learnt.coefficients(ev.weights, learnt.REPLENISH_PREFIX, learnt.REPLENISH_FEATURES) is not None

    def explain(self, ev: Evidence, ranked: Ranked, limit: int, *, with_reasons: bool = True) -> list[Suggestion]:
        """Due or regular, with the days until it is due."""
        st, sl = ev.state, ev.history_slice
        interval, age, count = st.hist_interval[sl], st.hist_last_age[sl], st.hist_count[sl]
        ratio = due_ratio(ev)
        out = []
        for pos, i, value in zip(ev.history_positions(ranked.items).tolist(), ranked.items.tolist(),
                                 ranked.scores, strict=True):
            is_due = bool(ratio[pos] >= 1.0)
            reason = reasons.due(interval[pos], age[pos]) if is_due else reasons.bought_before(count[pos], age[pos])
            days_left = None if np.isnan(interval[pos]) else round(float(interval[pos] - age[pos]), 1)
            out.append(ev.catalogue.suggestion(i, self.name, value, reason, due=is_due, due_in_days=days_left))
        return out
