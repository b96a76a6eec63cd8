"""Next basket: the whole next basket as one ranked list, due repeats and new items together.

Why a kind of its own: replenishment answers from the client's own items only, so a client with
a short history gets a short list (issue 11: on a grocery set 29 % of lists held fewer than 10). A
next-basket predictor (TIFU-KNN, `training.tifu_knn`) ranks repeats and new items on one scale,
and this kind does the same with the model's two rankings:

- the client's own products, ordered by the replenishment score (the learnt chance of buying it
  again when the model has learnt coefficients, `scoring.kinds.replenishment`);
- products new to the client, ordered by the cross-sell blend (the learnt chance of a first
  purchase when learnt), which follows the fallback chain for a client it knows nothing about;
- then, only when both run out (a small catalogue, the diversity cap), the other products: first
  what cross-sell may offer, by its blend, then other brands and sizes of what the client buys
  regularly, by popularity; so the list is `limit` long whenever the catalogue has that many.

How the first two meet is the `next_basket_new` weight. 0 puts every own item first. A positive
value merges by probability, a new item's chance of a first purchase times that weight against an
own item's chance of a repeat. Both chances are fitted on the same inner window, so they are on
one scale; tuning keeps the value that ranks best on the inner split (`training.tuning`). Without
learnt coefficients on both sides no probability exists, so own items come first whatever the
weight says.

Products only (never a service nor a fee, `Catalogue.products`), one item per product group,
never what the request says was just bought.
"""
from __future__ import annotations

import numpy as np

from scoring import fallback, learnt, reasons
from scoring.contract import Suggestion
from scoring.evidence import Evidence
from scoring.kinds.base import Ranked, SuggestionKind
from scoring.kinds.cross_sell import CrossSell, offerable
from scoring.kinds.replenishment import Replenishment
from scoring.ranking import NEG, first_positions, top_indices

_OWN, _NEW = Replenishment(), CrossSell()
#: Where the fill's scores start: below every own and new item, whatever the list length (under
#: own first those score in (1, 3); under the probability merge the cross-sell tail in (-2, -1)).
#: The fill's popular part scores in the lower half of its band: its reason says so.
FILL_OWN_FIRST, FILL_BY_PROBABILITY = np.float32(0.0), np.float32(-4.0)


def merges_by_probability(ev: Evidence) -> bool:
    """Whether own and new items are ranked on one probability scale: learnt coefficients on both
    sides, a positive `next_basket_new` weight, and a client the personalised cross-sell stage
    answers (the learnt re-ranking runs there only; a fallback stage's scores are no chance)."""
    w = ev.weights
    return (float(w.get("next_basket_new", 0.0)) > 0.0
            and ev.catalogue.fallback[:1] == (fallback.PERSONALISED,) and ev.taste is not None
            and learnt.coefficients(w, learnt.REPLENISH_PREFIX, learnt.REPLENISH_FEATURES) is not None
            and learnt.coefficients(w, learnt.CROSS_SELL_PREFIX, learnt.CROSS_SELL_FEATURES) is not None)


class NextBasket(SuggestionKind):
    name = "next_basket"
    anchored = True  # new items' reasons name an owned item found in a neighbour list

    def rank(self, ev: Evidence, allowed: np.ndarray, limit: int) -> Ranked:
        """The first `limit` of one descending sequence: own and new items merged, then the fill.

        Scores depend on the items alone, never on `limit`, so a shorter list is the prefix of a
        longer one (what lets the candidate lists stored at training time answer every limit)."""
        if limit <= 0:
            return Ranked(np.empty(0, np.int64), np.empty(0, np.float32), None)
        offer = allowed & ev.catalogue.products
        own = _OWN.rank(ev, offer.copy(), ev.history.size)  # every own product, best first
        by_probability = merges_by_probability(ev)
        if not by_probability:  # own first: enough own products make the list, no catalogue pass
            items, scores = _first_of_each_group(ev, own.items, (2.0 + _squash(own.scores)).astype(np.float32), limit)
            if items.size >= limit:
                return Ranked(items, scores, None)
        fetch = limit
        while True:
            new = _NEW.rank(ev, offer.copy(), fetch)  # products the client does not own, best first
            exhausted = new.items.size < fetch
            items, scores, exact = _merge(ev, own, new, by_probability, exhausted)
            items, scores = _first_of_each_group(ev, items[:exact], scores[:exact], limit)
            if items.size >= limit or exhausted:
                break
            fetch *= 4  # product groups (or a probability merge) used up what was fetched
        if items.size < limit:
            items, scores = _fill(ev, offer, new.dense, items, scores, limit, by_probability)
        return Ranked(items, scores, None)

    def scores_are_probabilities(self, ev: Evidence) -> bool:
        """Under the probability merge at weight 1, every score in [0, 1] is a learnt chance (the
        cross-sell tail and the fill score below 0, as no chance); at another weight a new item's
        score is a weighted chance, so the objective reads the places instead."""
        return merges_by_probability(ev) and float(ev.weights["next_basket_new"]) == 1.0

    def anchors(self, ev: Evidence, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New items: the cross-sell anchor; own items: none (their reason is their own history)."""
        own = _is_own(ev, items)
        anchors = np.full(items.size, -1, dtype=np.int64)
        confs = np.zeros(items.size, dtype=np.float32)
        if (~own).any():
            anchors[~own], confs[~own] = _NEW.anchors(ev, items[~own])
        return anchors, confs

    def explain(self, ev: Evidence, ranked: Ranked, limit: int, *, with_reasons: bool = True) -> list[Suggestion]:
        cat = ev.catalogue
        if not with_reasons:
            return [cat.suggestion(int(i), self.name, v, "") for i, v in zip(ranked.items, ranked.scores, strict=True)]
        own = _is_own(ev, ranked.items)
        new_reasons: list[Suggestion] = []
        if (~own).any():  # the cross-sell reasons ("bought together with X ...")
            new_items = ranked.items[~own]
            anchors = ((ranked.anchors[0][~own], ranked.anchors[1][~own]) if ranked.anchors is not None
                       else _NEW.anchors(ev, new_items))
            new_reasons = _NEW.explain(ev, Ranked(new_items, ranked.scores[~own], None, anchors), limit)
        own_facts = _own_facts(ev, ranked.items[own])
        new_iter = iter(new_reasons)
        out: list[Suggestion] = []
        for i, value, mine in zip(ranked.items.tolist(), ranked.scores, own.tolist(), strict=True):
            if mine:
                reason, extra = own_facts[i]
                out.append(cat.suggestion(i, self.name, value, reason, **extra))
            else:
                out.append({**next(new_iter), "kind": self.name})
        popular = _popular_fill(ev, ranked.scores)
        for pos in np.flatnonzero(popular & ~own).tolist():  # not the cross-sell's: its reason is popularity
            out[pos]["reason"] = reasons.bought_by(int(ev.state.item_pop[int(ranked.items[pos])]))
        return out


def _is_own(ev: Evidence, items: np.ndarray) -> np.ndarray:
    """Which of a listed `items` are the client's own. (`owned` also holds what was just bought,
    which this kind never lists, so among listed items it means bought before.)"""
    return ev.owned[items] if items.size else np.zeros(0, dtype=bool)


def _own_facts(ev: Evidence, items: np.ndarray) -> dict[int, tuple[str, dict]]:
    """Per own item: its reason (due, bought regularly, or bought N times) and the due fields."""
    if items.size == 0:
        return {}
    st, sl = ev.state, ev.history_slice
    pos = ev.history_positions(items) + sl.start
    interval, age, count = st.hist_interval[pos], st.hist_last_age[pos], st.hist_count[pos]
    known = ~np.isnan(interval)
    ratio = np.where(known, age / np.maximum(np.where(known, interval, 1.0), 1.0), 0.0)  # as `due_ratio`
    out = {}
    for k, i in enumerate(items.tolist()):
        is_due = bool(ratio[k] >= 1.0)
        reason = reasons.due(interval[k], age[k]) if is_due else reasons.bought_before(count[k], age[k])
        days_left = None if not known[k] else round(float(interval[k] - age[k]), 1)
        out[i] = (reason, {"due": is_due, "due_in_days": days_left})
    return out


def _first_of_each_group(ev: Evidence, items: np.ndarray, scores: np.ndarray,
                         limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `limit` items, keeping the best of each product group (an item twice is one
    group twice)."""
    keep = first_positions(ev.catalogue.groups[items])[:limit]
    return items[keep], scores[keep]


def _squash(values: np.ndarray) -> np.ndarray:
    """Any score into (0, 1), order kept and the same for every list length (minmax would not be)."""
    values = np.asarray(values, dtype=np.float64)
    return (0.5 + 0.5 * values / (1.0 + np.abs(values))).astype(np.float32)


def _merge(ev: Evidence, own: Ranked, new: Ranked, by_probability: bool,
           exhausted: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """(items, scores, exact): own and new items on one descending scale, of which the first
    `exact` are certain: past the last new item fetched, a new item not fetched could come first.

    By probability: an own item scores its chance of a repeat, a new item of the learnt pool its
    chance of a first purchase times `next_basket_new` (the rest of the cross-sell list follows
    below 0, as the learnt cross-sell scores it). Own first: own items in (2, 3), new in (1, 2)."""
    if not by_probability:
        items = np.concatenate([own.items, new.items])
        scores = np.concatenate([2.0 + _squash(own.scores), 1.0 + _squash(new.scores)]).astype(np.float32)
        return items, scores, items.size
    weight = np.float32(ev.weights["next_basket_new"])
    new_scores = np.where(new.scores > 0, new.scores * weight, new.scores).astype(np.float32)
    items = np.concatenate([own.items, new.items])
    scores = np.concatenate([own.scores.astype(np.float32), new_scores])
    order = np.lexsort((np.arange(items.size), -scores))
    items, scores = items[order], scores[order]
    if exhausted or new.items.size == 0:
        return items, scores, items.size
    last_new = int(np.flatnonzero(np.isin(items, new.items[-1:]))[0])
    return items, scores, last_new + 1


def _fill(ev: Evidence, offer: np.ndarray, dense: np.ndarray | None, items: np.ndarray, scores: np.ndarray,
          limit: int, by_probability: bool) -> tuple[np.ndarray, np.ndarray]:
    """The list topped up from the other products, below what is listed: first what cross-sell
    may offer, by the score its stage gave (past its diversity cap), then other codes of product
    types the client buys regularly, by popularity. Never a group the client owns or the list holds."""
    cat = ev.catalogue
    rest = offer & ~ev.owned & ~ev.owned_groups & ~cat.in_groups_of(items)
    new = offerable(ev, offer)
    key = 0.5 * cat.pop_score.astype(np.float32)  # [0, 0.5]
    if dense is not None:
        scored = new & np.isfinite(dense)
        key = np.where(scored, 0.5 + 0.5 * _squash(np.where(scored, dense, 0.0)), key)  # (0.5, 1)
    key = np.where(rest, key, NEG).astype(np.float32)
    base = FILL_BY_PROBABILITY if by_probability else FILL_OWN_FIRST
    fetch = 2 * (limit - items.size)
    while True:
        extra = top_indices(key, fetch)
        more, more_scores = _first_of_each_group(ev, np.concatenate([items, extra]),
                                                 np.concatenate([scores, base + key[extra]]), limit)
        if more.size >= limit or extra.size < fetch:
            return more, more_scores.astype(np.float32)
        fetch *= 4


def _popular_fill(ev: Evidence, scores: np.ndarray) -> np.ndarray:
    """Which listed scores are the fill's popular part (see `_fill`)."""
    base = FILL_BY_PROBABILITY if merges_by_probability(ev) else FILL_OWN_FIRST
    return (scores >= base) & (scores <= base + np.float32(0.5))
