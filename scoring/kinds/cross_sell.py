"""Cross-sell: products new to the client that fit what they buy.

The client's ALS taste blended with the neighbours of their items (co-bought, bought by the same
clients) and, as tuned, popularity; products only, never what the client owns, at most
`diversity_cap` per subcategory. When learnt coefficients or trees travel with the model, the
blend's top `learnt.CROSS_SELL_POOL` are re-ordered by the learnt chance of a first purchase. A client
the blend knows nothing about is answered along the fallback chain (`scoring.fallback`).
"""
from __future__ import annotations

import numpy as np

from scoring import fallback, learnt, reasons
from scoring.contract import Suggestion
from scoring.evidence import Evidence
from scoring.kinds.base import Ranked, SuggestionKind
from scoring.ranking import NEG, minmax, rank_with_rules, scatter_neighbours, strongest_seeds, top_indices


def blend(ev: Evidence, parts: dict[str, np.ndarray] | None = None) -> np.ndarray | None:
    """The personalised stage: dense blend scores, or None without a taste vector. `parts`, when
    given, receives the raw signals (taste, knn, cooc) whatever their weight, for the learnt
    re-ranking."""
    vec = ev.taste
    if vec is None:
        return None
    st, w, n = ev.state, ev.weights, ev.catalogue.n_items
    raw_taste = st.item_factors @ vec
    scores = minmax(raw_taste)  # signals weighted 0 (the tuning may drop one) are not computed
    every = parts is not None
    if w["cross_sell_cooc"] or every:
        cooc = scatter_neighbours(st.cooc_idx, st.cooc_score, ev.seeds, n, ev.seed_recency)
        scores = scores + w["cross_sell_cooc"] * minmax(cooc)
    if w["cross_sell_pop"]:
        scores = scores + w["cross_sell_pop"] * ev.catalogue.pop_score
    if w["cross_sell_recent"]:
        scores = scores + w["cross_sell_recent"] * ev.catalogue.recent_pop_score
    if w["cross_sell_knn"] or every:
        knn = scatter_neighbours(st.knn_idx, st.knn_score, ev.seeds, n, ev.seed_recency)
        scores = scores + w["cross_sell_knn"] * minmax(knn)
    if parts is not None:
        parts.update(taste=raw_taste, knn=knn, cooc=cooc)
    return scores


def offerable(ev: Evidence, allowed: np.ndarray) -> np.ndarray:
    """What cross-sell may offer: allowed products new to the client. Not what they own, nor
    another code of a product group they own, nor another brand or size of a product type they
    buy regularly (that is an upsell or a switch)."""
    return allowed & ev.catalogue.products & ~ev.owned & ~ev.owned_groups & ~ev.regular_types


def pool(ev: Evidence, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(the blend's top `CROSS_SELL_POOL` offerable items, their learnt features, the dense blend
    with every item that may not be offered at NEG), or None without a taste vector (a cold
    client has nothing to re-rank). Training fits the learnt re-ranking on these pools."""
    parts: dict[str, np.ndarray] = {}
    scores = blend(ev, parts)
    if scores is None:
        return None
    return _pooled(ev, np.where(offerable(ev, allowed), scores, NEG), parts)


def _pooled(ev: Evidence, masked: np.ndarray, parts: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    top = top_indices(masked, learnt.CROSS_SELL_POOL)
    x = learnt.cross_sell_features(ev.state, top, masked, parts["taste"], parts["knn"], parts["cooc"],
                                   ev.seeds, ev.seed_counts)
    return top, x, masked


class CrossSell(SuggestionKind):
    name = "cross_sell"
    anchored = True

    def rank(self, ev: Evidence, allowed: np.ndarray, limit: int) -> Ranked:
        model = learnt.chance(ev.weights, ev.state.extras, learnt.CROSS_SELL_PREFIX, learnt.CROSS_SELL_TREES,
                              learnt.CROSS_SELL_FEATURES)
        parts: dict[str, np.ndarray] | None = {} if model is not None else None
        stage, scores = fallback.first_answer(ev, lambda e: blend(e, parts))
        allowed = offerable(ev, allowed)
        if model is not None and parts and stage == fallback.PERSONALISED:
            # the blend finds the candidates and the learnt chance of a first purchase orders them;
            # the rest follow in the blend's order, below every probability, so a list never runs short
            top, x, masked = _pooled(ev, np.where(allowed, scores, NEG), parts)
            scores = np.where(np.isfinite(masked), minmax(masked) - np.float32(2.0), NEG)
            scores[top] = model(x)
            allowed = np.isfinite(scores)
        ranked = rank_with_rules(scores, limit, allowed=allowed, groups=ev.state.item_subcat,
                                 cap=int(ev.weights["diversity_cap"]), unique=ev.catalogue.groups)
        return Ranked(ranked, scores[ranked], scores)

    def scores_are_probabilities(self, ev: Evidence) -> bool:
        """Learnt, and the personalised stage answers: it heads the chain and the client has a
        taste vector (a cold client's fallback lists are not re-ranked, see `rank`)."""
        model = learnt.chance(ev.weights, ev.state.extras, learnt.CROSS_SELL_PREFIX, learnt.CROSS_SELL_TREES,
                              learnt.CROSS_SELL_FEATURES)
        chain = ev.catalogue.fallback
        return model is not None and bool(chain) and chain[0] == fallback.PERSONALISED and ev.taste is not None

    def anchors(self, ev: Evidence, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return strongest_seeds(ev.state.cooc_idx, ev.state.cooc_conf, ev.seeds, items)

    def explain(self, ev: Evidence, ranked: Ranked, limit: int, *, with_reasons: bool = True) -> list[Suggestion]:
        cat = ev.catalogue
        items, scores = ranked.items.tolist(), ranked.scores.tolist()
        if not with_reasons:
            return [cat.suggestion(i, self.name, v, "") for i, v in zip(items, scores, strict=True)]
        anchors, confs = ranked.anchors or self.anchors(ev, ranked.items)
        return [cat.suggestion(i, self.name, v, reason)
                for i, v, reason in zip(items, scores, _reasons(ev, ranked.items, anchors, confs), strict=True)]


def _reasons(ev: Evidence, items: np.ndarray, anchors: np.ndarray, confs: np.ndarray) -> list[str]:
    """Each item's reason: bought together with an owned item when enough baskets say so, else the
    owned item nearest in taste; for a client with no items, what the popular list really is. The
    catalogue's facts of the whole list are read at once, not item by item (most of a reason's cost)."""
    cat = ev.catalogue
    if ev.seeds.size == 0:
        return [cold_reason(ev)] * len(items)
    known = np.maximum(anchors, 0)  # -1: no anchor, never read below
    out = []
    for target, anchor, conf, group, anchor_group, baskets in zip(
            items.tolist(), anchors.tolist(), confs.tolist(), cat.groups[items].tolist(), cat.groups[known].tolist(),
            cat.state.item_baskets[known].tolist(), strict=True):
        if anchor >= 0 and anchor_group != group:
            together = int(round(conf * baskets))  # `Catalogue.together`
            if together >= reasons.MIN_TOGETHER:
                out.append(reasons.bought_together(cat.names[anchor], together, int(baskets)))
                continue
        out.append(_nearest_in_taste(ev, target, group))
    return out


def _nearest_in_taste(ev: Evidence, target: int, group: int) -> str:
    """The owned item nearest in taste, of another group than the target's, and merchandise (never
    "who buy Gasoline")."""
    cat = ev.catalogue
    merch, merch_groups = ev.merch_seeds
    others = merch[merch_groups != group]
    if others.size == 0:
        return reasons.clients_like_you(None)
    sims = cat.unit_factors[others] @ cat.unit_factors[target]
    return reasons.clients_like_you(cat.names[others[int(np.argmax(sims))]])


def cold_reason(ev: Evidence) -> str:
    """A client without items is answered from a popular list: say which."""
    label = ev.segment_label
    return reasons.popular_in_segment(label) if label else reasons.popular_recently(fallback.RECENT_DAYS)
