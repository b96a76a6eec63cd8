"""Replenishment: the client's own items that they are likely to buy again now.

The hand blend: recency-weighted frequency plus long-run frequency, boosted for items people do
buy again (milk over a grill). With learnt coefficients or trees in the model, the learnt chance
of a repurchase replaces it. Items whose usual interval has elapsed are flagged "due". Nothing for a
client without history; never what the request says was just bought.
"""
from __future__ import annotations

import numpy as np

from scoring import learnt, reasons, trees
from scoring.contract import Suggestion
from scoring.evidence import Evidence
from scoring.kinds.base import Ranked, SuggestionKind
from scoring.ranking import NEG, minmax, rank_with_rules, top_indices


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
        # never a fee or a coupon, and one code per product group (two sodas of one name read twice)
        ok = allowed[hist] & ev.state.item_merch[hist] & ~np.isin(hist, ev.recent)
        ensemble = trees.stored(ev.state.extras, learnt.REPLENISH_TREES)
        coef = learnt.coefficients(ev.weights, learnt.REPLENISH_PREFIX, learnt.REPLENISH_FEATURES)
        if ensemble is not None:
            # a second stage, as for cross-sell: the trees order the blend's top REPLENISH_POOL, the
            # rest follow in the blend's order below every probability (trees over a history of
            # thousands of items cost tens of milliseconds a request)
            base = np.where(ok, blend(ev), NEG)
            top = top_indices(base, learnt.REPLENISH_POOL)
            score = np.where(ok, minmax(base) - np.float32(2.0), NEG).astype(np.float64)
            x = learnt.replenishment_features(ev.state, ev.history_slice, hist)
            score[top] = learnt.tree_probability(x[top], ensemble)
        elif coef is not None:  # the chance of buying it again, learnt on the inner split
            score = np.where(ok, learnt.probability(learnt.replenishment_features(ev.state, ev.history_slice, hist),
                                                    coef), NEG)
        else:
            score = np.where(ok, blend(ev), NEG)
        kept = rank_with_rules(score, limit, unique=ev.catalogue.groups[hist])
        return Ranked(hist[kept], score[kept], None)

    def scores_are_probabilities(self, ev: Evidence) -> bool:
        return learnt.chance(ev.weights, ev.state.extras, learnt.REPLENISH_PREFIX, learnt.REPLENISH_TREES,
                             learnt.REPLENISH_FEATURES) is not None

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
