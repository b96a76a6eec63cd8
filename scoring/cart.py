"""The cart widget: what completes a basket, upsells of its items, bundle offers with their price.

Completion scores the basket's co-occurrence neighbours (shrunk confidence), plus the known
client's own frequent items and, as tuned, their taste; a basket without co-occurrence evidence
gets what is popular in its subcategories, else what is popular. The sparse path scores only
the items with evidence and gives the same answer whenever it can (`sparse_complete`).
"""
from __future__ import annotations

import numpy as np

from scoring import reasons
from scoring.catalogue import Catalogue
from scoring.contract import Suggestion
from scoring.evidence import Evidence
from scoring.fallback import RECENT_DAYS
from scoring.ranking import (
    NEG,
    first_positions,
    member_of,
    minmax,
    neighbour_sums,
    rank_with_rules,
    scatter_neighbours,
    strongest_seeds,
    top_indices,
)
from scoring.upgrades import STEPS, upgrade_detail


def complete(ev: Evidence, basket: np.ndarray, limit: int, *, sparse: tuple[np.ndarray, np.ndarray] | None,
             explain: bool = True) -> list[Suggestion]:
    """What completes `basket`: the ranking the cart widget shows and the evaluation scores.
    `sparse` is `sparse_complete`'s answer (None: rank every item)."""
    st, cat = ev.state, ev.catalogue
    if sparse is not None:
        ranked, values = sparse
    else:
        scores = dense_scores(ev, basket)
        ranked = rank_with_rules(scores, limit, allowed=offerable(cat, basket), unique=cat.groups)
        values = scores[ranked]
    if not explain:
        return [cat.suggestion(int(i), "cart", v, "") for i, v in zip(ranked, values, strict=True)]
    anchors, confs = strongest_seeds(st.cooc_idx, st.cooc_conf, basket, ranked)
    out = []
    for i, v, anchor, conf in zip(ranked.tolist(), values.tolist(), anchors.tolist(), confs.tolist(), strict=True):
        together = cat.together(anchor, conf) if anchor >= 0 else 0
        reason = (reasons.bought_together(cat.names[anchor], together, int(st.item_baskets[anchor]))
                  if together >= reasons.MIN_TOGETHER
                  else reasons.clients_like_you(None) if ev.known else reasons.popular_recently(RECENT_DAYS))
        out.append(cat.suggestion(i, "cart", v, reason))
    return out


def offerable(cat: Catalogue, basket: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
    """What the cart may offer: products in stock, none of the basket's product groups. Given `items`
    (positions, any shape), the same mask at those items only: the sparse path and the upsells look at a
    few hundred items, and the mask over every item costs a pass over the whole catalogue."""
    if items is None:
        return cat.products & ~cat.in_groups_of(basket)
    return cat.products[items] & ~member_of(cat.groups[items], cat.groups[basket], cat.n_groups)


def sparse_complete(ev: Evidence, basket: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray] | None:
    """`dense_scores` and the rules over the items with evidence only: the basket's neighbours
    and the client's history. Every other item scores exactly 0 there, so the answer is the
    same whenever `limit` items with evidence score above 0; otherwise (or with a taste
    weight, which scores every item) None, and the dense path answers."""
    st, cat, w = ev.state, ev.catalogue, ev.weights
    if basket.size == 0 or (ev.known and w["cart_taste"]):
        return None
    rows = st.cooc_idx[basket]
    hist = ev.history
    seen = np.zeros(cat.n_items, dtype=bool)  # np.unique of the two, sorted, without its hashing and sort
    seen[rows[rows >= 0]] = True
    seen[hist] = True
    cand = np.flatnonzero(seen)
    if cand.size >= cat.n_items:
        return None
    cooc = neighbour_sums(st.cooc_idx, st.cooc_score, basket, cand)
    top = float(cooc.max(initial=0.0))
    if not top > 0:
        return None  # no co-occurrence evidence: the dense path falls back to categories
    scores = cooc / np.float32(top)  # minmax over all items: the minimum is an untouched 0
    if hist.size:
        personal = np.zeros(cand.size, dtype=np.float32)
        personal[np.searchsorted(cand, hist)] = st.hist_recency[ev.history_slice]
        most = float(personal.max())
        if not most > 0:
            return None
        scores = scores + w["cart_personal"] * (personal / np.float32(most))
    allowed = offerable(cat, basket, cand)
    pos = top_indices(np.where(allowed, scores, NEG), limit * 4)
    pos = pos[first_positions(cat.groups[cand[pos]])][:limit]
    if pos.size < limit or not scores[pos[-1]] > 0:
        return None
    return cand[pos], scores[pos]


def dense_scores(ev: Evidence, basket: np.ndarray) -> np.ndarray:
    """Scores over every item for completing `basket`, personalised when the client is known."""
    st, cat, w = ev.state, ev.catalogue, ev.weights
    cooc = scatter_neighbours(st.cooc_idx, st.cooc_score, basket, cat.n_items)
    if basket.size == 0 or not (cooc > 0).any():
        # no co-occurrence evidence: items popular in the basket's categories, else popular
        cooc = cat.pop_score * 0.01
        subs = st.item_subcat[basket]
        if subs.size:
            cooc = cooc + np.isin(st.item_subcat, subs[subs >= 0]) * cat.pop_score
    scores = minmax(cooc)
    if ev.known:
        personal = np.zeros(cat.n_items, dtype=np.float32)
        personal[ev.history] = st.hist_recency[ev.history_slice]
        scores = scores + w["cart_personal"] * minmax(personal)
        vec = ev.taste if w["cart_taste"] else None
        if vec is not None:
            scores = scores + w["cart_taste"] * minmax(st.item_factors @ vec)
    return scores


def upsells(cat: Catalogue, basket: np.ndarray, limit: int) -> list[Suggestion]:
    """Per cart item, its best stored upsell (`scoring.upgrades`) that is a product in stock and of
    none of the cart's product groups, scored by that upsell's own score; best first."""
    st = cat.state
    stored = st.upsell_idx[basket]
    allowed = offerable(cat, basket, np.maximum(stored, 0))  # at each stored upsell (-1: none, never read)
    out: list[Suggestion] = []
    taken: set[int] = set()
    for row, b in enumerate(basket.tolist()):
        for j, ok, score, step, moves in zip(stored[row], allowed[row], st.upsell_score[b], st.upsell_step[b],
                                             st.upsell_moves[b], strict=True):
            if j >= 0 and ok and int(cat.groups[j]) not in taken:
                diff = float(st.item_price[j] - st.item_price[b])
                name = STEPS[int(step)] or "larger_pack"
                reason = reasons.upgrade(name, cat.names[b], upgrade_detail(cat, int(j), name), diff, cat.currency,
                                         int(moves))
                out.append(cat.suggestion(int(j), "upsell", float(score), reason, upsell_step=name,
                                          upgrade_from=str(cat.item_ids[b]), price_difference=round(diff, 2)))
                taken.add(int(cat.groups[j]))
                break
    out.sort(key=lambda s: -s["score"])
    return out[:limit]


def bundle_offers(cat: Catalogue, seeds: np.ndarray, allowed: np.ndarray, limit: int,
                  kind: str = "bundle") -> list[Suggestion]:
    """Mined bundles holding something the client (or cart) has and something it lacks, all of
    their items allowed; most items held, then highest lift, first."""
    st = cat.state
    members = st.bundle_items
    if members.size == 0 or seeds.size == 0:
        return []
    valid = members >= 0
    safe = np.where(valid, members, 0)
    has = (member_of(safe, seeds, cat.n_items) & valid).sum(1)
    lacks = valid.sum(1) - has
    ok = (has > 0) & (lacks > 0) & np.all(np.where(valid, allowed[safe], True), axis=1)
    order = np.flatnonzero(ok)
    order = order[np.lexsort((-st.bundle_lift[order], -has[order]))][:limit]
    discount = float(st.meta.get("params", {}).get("bundle_discount", 0.1))
    n_baskets = float(st.meta.get("n_baskets") or 0)
    out: list[Suggestion] = []
    seeds_held = set(seeds.tolist())  # a bundle has two or three members: a set beats np.isin's setup
    # the chosen bundles' rows gathered at once (the per-bundle scalar lookups were most of the time); the
    # score's arithmetic stays per bundle, on the same numpy scalars, so it is the same to the last bit
    lifts, has_of, sizes = st.bundle_lift[order], has[order], valid[order].sum(1)
    baskets_of = st.item_baskets
    for k, (b, row, ok_row, support, full, price) in enumerate(zip(
            order.tolist(), safe[order].tolist(), valid[order].tolist(), st.bundle_support[order].tolist(),
            st.bundle_full_price[order].tolist(), st.bundle_price[order].tolist(), strict=True)):
        members = [m for m, ok in zip(row, ok_row, strict=True) if ok]
        ids = [str(cat.item_ids[i]) for i in members]
        held = [m for m in members if m in seeds_held]
        anchor = held[int(np.argmax(baskets_of[held]))]
        together = int(round(support * n_baskets))
        out.append({"bundle_id": cat.bundle_ids[b], "item_id": cat.bundle_ids[b],
                    "name": cat.bundle_names[b], "kind": kind, "items": ids,
                    "score": round(float(np.log1p(lifts[k]) * has_of[k] / sizes[k]), 6),
                    "price": round(full, 2),
                    "bundle_price": round(price, 2),
                    "reason": reasons.bundle(len(ids), together, cat.names[anchor], int(baskets_of[anchor]),
                                             discount)})
    return out
