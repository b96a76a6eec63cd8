"""Upsell: pricier items in the subcategories the client already buys.

An item qualifies when it is a product in stock, priced above the dearest item the client bought
in its subcategory, and not owned; it scores by popularity, the client's taste and how many
clients traded up to it from the client's items. At most `upsell_cap` per subcategory. Each
suggestion names what it replaces (the client's most bought item of that subcategory).
"""
from __future__ import annotations

import numpy as np

from scoring import reasons
from scoring.contract import Suggestion
from scoring.evidence import Evidence
from scoring.kinds.base import Ranked, SuggestionKind
from scoring.ranking import minmax, neighbour_sums, rank_with_rules, scatter_neighbours

NOTHING = Ranked(np.empty(0, np.int64), np.empty(0, np.float32), None)


def price_ceilings(ev: Evidence) -> np.ndarray | None:
    """Per subcategory code, the dearest price the client paid there (inf where they never bought:
    no upsell there); None when no seed has a subcategory and a price."""
    st = ev.state
    sub, price = st.item_subcat[ev.seeds], st.item_price[ev.seeds]
    known = (sub >= 0) & ~np.isnan(price)
    if not known.any():
        return None
    ceiling = np.full(int(st.item_subcat.max()) + 1, np.inf, dtype=np.float32)
    ceiling[sub[known]] = -np.inf
    np.maximum.at(ceiling, sub[known], price[known])
    return ceiling


class Upsell(SuggestionKind):
    name = "upsell"

    def rank(self, ev: Evidence, allowed: np.ndarray, limit: int) -> Ranked:
        if ev.seeds.size == 0:
            return NOTHING
        ceiling = price_ceilings(ev)
        if ceiling is None:
            return NOTHING
        st, cat, w = ev.state, ev.catalogue, ev.weights
        item_sub = st.item_subcat
        cand = (item_sub >= 0) & allowed & cat.products & ~ev.owned
        cand &= np.where(item_sub >= 0, st.item_price > ceiling[np.maximum(item_sub, 0)] * 1.0001, False)
        if not cand.any():
            return NOTHING
        vec = ev.taste
        taste = minmax(st.item_factors @ vec) if vec is not None else np.zeros(cat.n_items, np.float32)
        trade = scatter_neighbours(st.upsell_idx, st.upsell_moves, ev.seeds, cat.n_items)
        scores = cat.pop_score + w["upsell_taste"] * taste + w["upsell_tradeup"] * minmax(np.log1p(trade))
        ranked = rank_with_rules(scores, limit, allowed=cand, groups=item_sub, cap=int(w["upsell_cap"]))
        return Ranked(ranked, scores[ranked], scores)

    def explain(self, ev: Evidence, ranked: Ranked, limit: int, *, with_reasons: bool = True) -> list[Suggestion]:
        """The price step over what it replaces; the trade-up count makes the reason when clients
        did move that way."""
        st, cat = ev.state, ev.catalogue
        seeds, weight = ev.seeds, ev.seed_counts
        sub = st.item_subcat[seeds]
        trade = neighbour_sums(st.upsell_idx, st.upsell_moves, seeds, ranked.items)
        out = []
        for i, value, moves in zip(ranked.items.tolist(), ranked.scores.tolist(), trade.tolist(), strict=True):
            mine = sub == st.item_subcat[i]
            current = int(seeds[mine][np.argmax(weight[mine])]) if mine.any() else -1
            diff = float(st.item_price[i] - st.item_price[current]) if current >= 0 else float("nan")
            reason = (reasons.traded_up(int(moves), cat.names[current]) if moves >= 2 and current >= 0
                      else reasons.upgrade(cat.names[current] if current >= 0 else "what you buy", diff))
            out.append(cat.suggestion(i, self.name, value, reason,
                                      price_difference=None if np.isnan(diff) else round(diff, 2),
                                      upgrade_from=str(cat.item_ids[current]) if current >= 0 else None))
        return out

