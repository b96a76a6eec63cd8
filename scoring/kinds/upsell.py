"""Upsell: the same need at a higher level, for what the client already buys.

Candidates come from each owned item's upsell list (computed at training time by
`scoring.upgrades.step_up`: same product type, dearer, a higher tier, a larger pack or a better
brand), never another product. They score by popularity, the client's taste and how many clients
traded up along that step; never what the client owns nor another code of a group they own; one
item per product group and at most `upsell_cap` per product type. Each suggestion names what it
replaces (the client's most bought item it is a step up from) and which step it is.
"""
from __future__ import annotations

import numpy as np

from scoring import reasons
from scoring.contract import Suggestion
from scoring.evidence import Evidence
from scoring.kinds.base import Ranked, SuggestionKind
from scoring.ranking import minmax, rank_with_rules, scatter_neighbours
from scoring.upgrades import STEPS, upgrade_detail

NOTHING = Ranked(np.empty(0, np.int64), np.empty(0, np.float32), None)


def upgrade_of(ev: Evidence, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item, (the owned item it is an upsell of, the step code, clients who took that step):
    the most bought owned item whose upsell list holds it (-1, 0, 0 where none does)."""
    st, seeds, weight = ev.state, ev.seeds, ev.seed_counts
    current = np.full(items.size, -1, dtype=np.int64)
    steps = np.zeros(items.size, dtype=np.int8)
    moves = np.zeros(items.size, dtype=np.int64)
    best = np.full(items.size, -np.inf)
    rows, codes, taken = st.upsell_idx[seeds], st.upsell_step[seeds], st.upsell_moves[seeds]
    for k, item in enumerate(items.tolist()):
        hit_seed, hit_col = np.nonzero(rows == item)
        for s_pos, col in zip(hit_seed.tolist(), hit_col.tolist(), strict=True):
            if weight[s_pos] > best[k]:
                best[k], current[k], steps[k], moves[k] = weight[s_pos], seeds[s_pos], codes[s_pos, col], taken[s_pos, col]
    return current, steps, moves


class Upsell(SuggestionKind):
    name = "upsell"

    def rank(self, ev: Evidence, allowed: np.ndarray, limit: int) -> Ranked:
        if ev.seeds.size == 0:
            return NOTHING
        st, cat, w = ev.state, ev.catalogue, ev.weights
        rows = st.upsell_idx[ev.seeds]
        listed = np.zeros(cat.n_items, dtype=bool)
        listed[rows[rows >= 0]] = True
        cand = listed & allowed & cat.products & ~ev.owned & ~ev.owned_groups
        if not cand.any():
            return NOTHING
        vec = ev.taste
        taste = minmax(st.item_factors @ vec) if vec is not None else np.zeros(cat.n_items, np.float32)
        trade = scatter_neighbours(st.upsell_idx, st.upsell_moves, ev.seeds, cat.n_items)
        scores = cat.pop_score + w["upsell_taste"] * taste + w["upsell_tradeup"] * minmax(np.log1p(trade))
        ranked = rank_with_rules(scores, limit, allowed=cand, groups=cat.types, cap=int(w["upsell_cap"]),
                                 unique=cat.groups)
        return Ranked(ranked, scores[ranked], scores)

    def explain(self, ev: Evidence, ranked: Ranked, limit: int, *, with_reasons: bool = True) -> list[Suggestion]:
        """The step over what it replaces, and the price difference."""
        st, cat = ev.state, ev.catalogue
        current, steps, moves = upgrade_of(ev, ranked.items)
        out = []
        for i, value, cur, step, moved in zip(ranked.items.tolist(), ranked.scores.tolist(), current.tolist(),
                                              steps.tolist(), moves.tolist(), strict=True):
            diff = float(st.item_price[i] - st.item_price[cur]) if cur >= 0 else float("nan")
            name = STEPS[step] or "larger_pack"
            reason = reasons.upgrade(name, cat.names[cur] if cur >= 0 else "what", upgrade_detail(cat, i, name),
                                     diff, cat.currency, moved) if with_reasons else ""
            out.append(cat.suggestion(i, self.name, value, reason, upsell_step=name,
                                      price_difference=None if np.isnan(diff) else round(diff, 2),
                                      upgrade_from=str(cat.item_ids[cur]) if cur >= 0 else None))
        return out

