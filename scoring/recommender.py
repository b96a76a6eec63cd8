"""The scoring model: one object answers every kind of suggestion, in the service and offline.

It holds only arrays (`ModelState`) and needs numpy at serving time, not the fitting library.
The offline evaluation calls these same methods, so the figures we publish are for exactly the
answers the service gives, business rules included.

Signals, by kind:
- cross_sell:      client taste (ALS factors) blended with co-occurrence from the client's own
                   history; never an item the client bought; products only.
- replenishment:   the client's own items by recency-weighted frequency, boosted when the usual
                   repurchase interval has elapsed ("due").
- upsell:          pricier or higher-tier items in the subcategories the client buys regularly,
                   ranked by how much the client buys there, popularity, trade-up evidence and taste.
- service_package: services and packages by taste, co-occurrence with owned items and the
                   segment's adoption; A-class clients see premium tiers first; a client holding a
                   tier is offered the next one. Without a packages file, mined bundles are offered.
- cart:            what completes a basket (shrunk co-occurrence), personalised when the client
                   is known; upsells of cart items; bundle offers with their bundle price.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from scoring import learnt, reasons
from scoring.contract import KINDS, Suggestion
from scoring.ranking import (
    NEG,
    als_user_solve,
    member_of,
    minmax,
    neighbour_sums,
    rank_with_rules,
    scatter_neighbours,
    strongest_seeds,
    top_indices,
)
from scoring.state import ModelState

log = logging.getLogger(__name__)

ABC = ("A", "B", "C")
ACTIVITY = ("active", "lapsing", "inactive")

#: Kinds whose ranking for each known client is computed at training time, and how deep.
CANDIDATE_KINDS = ("cross_sell", "upsell", "service_package")
CANDIDATES = 50
#: Neighbour lists a kind's reasons name their anchor from ("bought together with X"): the
#: anchors of the stored lists are stored too, since finding them costs more than the ranking.
REASON_LISTS = {"cross_sell": ("cooc_idx", "cooc_conf"), "service_package": ("service_idx", "service_score")}

#: Blend weights per kind. Training chooses them on an inner time split (training.tuning) and
#: stores the choice in the model's meta; these are the starting point and the fallback.
DEFAULT_WEIGHTS: dict[str, float] = {
    "cross_sell_cooc": 0.0,      # co-occurrence with the client's history, against ALS taste (1)
    "cross_sell_pop": 0.0,       # popularity steadies sparse clients
    "cross_sell_recent": 0.0,    # what many clients bought in the last 30 days (season, novelties)
    "cross_sell_knn": 0.5,       # items bought by the same clients as the client's items
    "replenish_freq": 0.5,       # long-run frequency, against recency-weighted frequency (1)
    "replenish_recent": 0.0,     # what the client bought in the last weeks
    "replenish_due": 0.0,        # boost of items whose interval has elapsed (did not help offline)
    "replenish_repeat": 1.0,     # items people do buy again (milk) over one-off purchases (a grill)
    "replenish_knn": 0.0,        # items bought by the same clients as the client's other regulars
    "cart_personal": 1.0,        # the known client's own frequent items in the cart widget
    "cart_taste": 0.0,           # the known client's ALS taste in the cart widget
    "upsell_subcat": 0.0,        # how much the client buys in the subcategory, against popularity (1)
    "upsell_taste": 0.3,
    "upsell_tradeup": 0.3,
    "upsell_step": 0.0,          # penalty per doubling of price above the client's usual: small steps sell
    "service_taste": 1.0,        # ALS taste: what similar clients adopted
    "service_cooc": 5.0,         # co-occurrence with owned items
    "service_segment": 0.5,      # adoption in the client's ABC segment
    "diversity_cap": 3,          # at most this many suggestions per subcategory
    "upsell_cap": 3,             # the same rule for upsell lists
}


def _strings(table: Any, column: str) -> np.ndarray:
    """A table's column as plain Python strings (empty table: empty array)."""
    return table[column].astype(str).to_numpy(dtype=object) if len(table) else np.empty(0, dtype=object)


class Stored(NamedTuple):
    """A client's answer read from the candidate lists: items, scores, reason anchors (if stored)."""

    items: np.ndarray
    scores: np.ndarray
    anchors: tuple[np.ndarray, np.ndarray] | None


class Recommender:
    """Implements `scoring.contract.SuggestionModel` over a `ModelState`."""

    def __init__(self, state: ModelState) -> None:
        self.state = state
        self.meta = state.meta
        self.weights = {**DEFAULT_WEIGHTS, **state.meta.get("weights", {})}
        items, clients = state.items, state.clients
        self.item_ids = items["item_id"].to_numpy(dtype=object)
        self.client_ids = clients["client_id"].to_numpy(dtype=object)
        self._item_pos = {item_id: i for i, item_id in enumerate(self.item_ids.tolist())}
        self._client_pos = {cid: i for i, cid in enumerate(self.client_ids.tolist())}
        self._segments = {name: clients[name].astype(object).where(clients[name].notna(), None).to_numpy()
                          for name in ("abc", "activity", "rfm")}
        self._names = items["name"].fillna(items["item_id"]).astype(str).to_numpy(dtype=object)
        self._kinds = np.where(state.item_service, "service", "product")
        self._categories = items["category"].astype(object).to_numpy()
        self._subcategories = items["subcategory"].astype(object).to_numpy()
        self.n_items = len(self.item_ids)
        norms = np.linalg.norm(state.item_factors, axis=1, keepdims=True)
        self._unit_factors = np.divide(state.item_factors, norms, out=np.zeros_like(state.item_factors),
                                       where=norms > 0)
        self._pop_score = minmax(np.log1p(state.item_pop))
        self._recent_pop_score = minmax(np.log1p(state.item_recent_pop))
        self._products = ~state.item_service & state.item_in_stock
        self._packages = state.packages
        self._bundles = state.bundles
        # plain arrays: a pandas row lookup costs ~0.1 ms, ten of them per answer was most of its time
        self._bundle_ids, self._bundle_names = _strings(state.bundles, "bundle_id"), _strings(state.bundles, "name")
        self._package_ids, self._package_names = _strings(state.packages, "package_id"), _strings(state.packages, "name")
        self.reg = float(state.meta.get("params", {}).get("regularization", 0.01))
        self._load_candidates()

    # ----- persistence -------------------------------------------------------------------------
    @classmethod
    def load(cls, folder: str | Path) -> Recommender:
        return cls(ModelState.load(folder))

    def save(self, folder: str | Path) -> None:
        self.state.save(folder)

    # ----- lookups -----------------------------------------------------------------------------
    def knows_client(self, client_id: str) -> bool:
        return client_id in self._client_pos

    def knows_item(self, item_id: str) -> bool:
        return item_id in self._item_pos

    def item_index(self, item_ids: Sequence[str]) -> np.ndarray:
        return np.array([self._item_pos[i] for i in item_ids if i in self._item_pos], dtype=np.int64)

    def segment(self, client_id: str) -> dict[str, Any]:
        ci = self._client_pos.get(client_id)
        if ci is None:
            return {"abc": None, "activity": None, "rfm": None}
        return {name: (None if values[ci] is None else str(values[ci])) for name, values in self._segments.items()}

    def _history(self, ci: int | None) -> tuple[np.ndarray, slice]:
        if ci is None:
            return np.empty(0, dtype=np.int64), slice(0, 0)
        lo, hi = self.state.hist_indptr[ci], self.state.hist_indptr[ci + 1]
        return self.state.hist_indices[lo:hi].astype(np.int64), slice(lo, hi)

    def _client_vector(self, ci: int | None, recent: np.ndarray) -> np.ndarray | None:
        """The client's taste; recomputed from history plus just-bought items when there are any."""
        if ci is None and recent.size == 0:
            return None
        if recent.size == 0:
            return self.state.client_factors[ci]
        items, sl = self._history(ci)
        conf = self.state.hist_count[sl].astype(np.float32) if ci is not None else np.empty(0, np.float32)
        alpha = float(self.meta.get("params", {}).get("alpha", 1.0))
        all_items = np.concatenate([items, recent])
        all_conf = np.concatenate([1.0 + alpha * np.log1p(conf), np.full(recent.size, 1.0 + alpha, np.float32)])
        uniq, inv = np.unique(all_items, return_inverse=True)
        summed = np.zeros(uniq.size, dtype=np.float64)
        np.add.at(summed, inv, all_conf)
        return als_user_solve(self.state.item_factors, self.state.yty, uniq, summed, self.reg)

    def _suggestion(self, idx: int, kind: str, score: float, reason: str, **extra: Any) -> Suggestion:
        price = float(self.state.item_price[idx])
        out: Suggestion = {
            "item_id": str(self.item_ids[idx]),
            "name": str(self._names[idx]),
            "kind": kind,
            "score": round(float(score), 6),
            "price": None if np.isnan(price) else round(price, 2),
            "reason": reason,
        }
        out.update(extra)
        return out

    def _allowed(self, *, category: str | None, exclude: Sequence[str]) -> np.ndarray:
        allowed = self.state.item_in_stock.copy()
        if category:
            allowed &= (self._categories == category) | (self._subcategories == category)
        ex = self.item_index(exclude)
        allowed[ex] = False
        return allowed

    # ----- the contract ------------------------------------------------------------------------
    def suggest(self, client_id: str, kind: str, limit: int = 10, *, category: str | None = None,
                exclude: Sequence[str] = (), recent_purchases: Sequence[str] = (),
                explain: bool = True) -> list[Suggestion]:
        """See the contract. `explain=False` leaves `reason` empty (the ranking is the same): the
        offline evaluation scores thousands of lists and reads none of the reasons."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        ci = self._client_pos.get(client_id)
        recent = self.item_index(recent_purchases)
        if kind in CANDIDATE_KINDS:
            fast = self._from_candidates(kind, ci, recent, category, exclude, limit)
            if fast is not None:
                return self._answers(kind, ci, recent, fast.items, fast.scores, None, explain=explain, limit=limit,
                                     anchors=fast.anchors)
        allowed = self._allowed(category=category, exclude=exclude)
        if kind == "replenishment":
            return self._replenishment(ci, recent, allowed, limit, explain)
        ranked, values, dense = self._rank(kind, ci, recent, allowed, limit)
        return self._answers(kind, ci, recent, ranked, values, dense, explain=explain, limit=limit)

    # ----- precomputed candidates ------------------------------------------------------------
    def _rank(self, kind: str, ci: int | None, recent: np.ndarray, allowed: np.ndarray,
              limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Exact ranking over every item: (ranked item indices, their scores, dense scores)."""
        return getattr(self, f"_rank_{kind}")(ci, recent, allowed, limit)

    def _answers(self, kind: str, ci: int | None, recent: np.ndarray, ranked: np.ndarray, values: np.ndarray,
                 dense: np.ndarray | None, *, explain: bool, limit: int | None = None,
                 anchors: tuple[np.ndarray, np.ndarray] | None = None) -> list[Suggestion]:
        """`anchors`: the reason anchors stored with the candidates (else found here)."""
        return getattr(self, f"_{kind}_answers")(ci, recent, ranked, values, dense, explain=explain,
                                                 limit=limit or len(ranked), anchors=anchors)

    def rank_candidates(self, clients: range, size: int = CANDIDATES) -> dict[str, dict[str, np.ndarray]]:
        """The exact `size`-deep rankings of `clients` for every kind answered from candidates:
        {kind: {"items": indices -1 padded, "score": ..., and for kinds in REASON_LISTS "anchor",
        "conf": each item's reason anchor}}. Training calls it (`training.candidates`)."""
        st = self.state
        empty = np.empty(0, dtype=np.int64)
        n = len(clients)
        out: dict[str, dict[str, np.ndarray]] = {}
        for kind in self.candidate_kinds():
            out[kind] = {"items": np.full((n, size), -1, dtype=np.int32), "score": np.zeros((n, size), dtype=np.float32)}
            if kind in REASON_LISTS:
                out[kind].update(anchor=np.full((n, size), -1, dtype=np.int32), conf=np.zeros((n, size), dtype=np.float32))
        with threadpool_limits(1, "blas"):  # one small product per client: threads only cost
            for row, ci in enumerate(clients):
                for kind, arrays in out.items():
                    ranked, values, _ = self._rank(kind, ci, empty, st.item_in_stock.copy(), size)
                    arrays["items"][row, : ranked.size] = ranked
                    arrays["score"][row, : ranked.size] = values
                    if kind in REASON_LISTS:
                        idx_name, val_name = REASON_LISTS[kind]
                        anchors, confs = strongest_seeds(getattr(st, idx_name), getattr(st, val_name),
                                                         self._seeds(ci, empty), ranked)
                        arrays["anchor"][row, : ranked.size] = anchors
                        arrays["conf"][row, : ranked.size] = confs
        return out

    def candidate_kinds(self) -> list[str]:
        # business packages are scored from their members' dense scores: exact path only
        return [k for k in CANDIDATE_KINDS if k != "service_package" or len(self._packages) == 0]

    def set_candidates(self, ranked: dict[str, dict[str, np.ndarray]], size: int) -> None:
        """Keep precomputed rankings (one row per known client) in the model's arrays.

        Why: a client's answer then needs no pass over the catalogue. The request only drops what
        it excludes from the stored list (`_from_candidates`); the exact path remains for what
        was not precomputed: unknown clients, just-bought items, a category filter, long lists.
        """
        for kind, arrays in ranked.items():
            for part, array in arrays.items():
                if array.shape != (len(self.client_ids), size):
                    raise ValueError(f"{kind} candidate {part} have shape {array.shape}, "
                                     f"expected {(len(self.client_ids), size)}")
                self.state.extras[f"cand_{kind}" if part == "items" else f"cand_{kind}_{part}"] = array
        self.meta["candidates"] = {"size": size, "kinds": sorted(ranked)}
        self._load_candidates()

    def without_candidates(self) -> Recommender:
        """A view of this model (arrays shared) that answers every request by the exact path:
        what the candidates are measured against."""
        exact = copy.copy(self)
        exact._candidates = {}
        return exact

    def _load_candidates(self) -> None:
        extras = self.state.extras
        self._candidates = {kind: (extras[f"cand_{kind}"], extras[f"cand_{kind}_score"],
                                   extras.get(f"cand_{kind}_anchor"), extras.get(f"cand_{kind}_conf"))
                            for kind in self.meta.get("candidates", {}).get("kinds", [])
                            if f"cand_{kind}" in extras}

    def _from_candidates(self, kind: str, ci: int | None, recent: np.ndarray, category: str | None,
                         exclude: Sequence[str], limit: int) -> Stored | None:
        """The stored ranking less the excluded items, or None where only the exact path is right.

        Dropping items keeps a capped list capped, so the answer equals the exact one except when
        an excluded item had pushed another of its subcategory past the diversity cap; the
        benchmark measures that loss (`training.candidates.candidate_recall`).
        """
        stored = self._candidates.get(kind)
        if stored is None or ci is None or recent.size or category:
            return None
        keep = stored[0][ci] >= 0
        full = bool(keep.all())  # a short list means the exact ranking had no more to give
        if exclude:
            keep &= ~np.isin(stored[0][ci], self.item_index(exclude))
        if keep.sum() < limit and full:
            return None
        chosen = np.flatnonzero(keep)[:limit]
        row, values, anchors, confs = (None if a is None else a[ci][chosen] for a in stored)
        return Stored(row.astype(np.int64), values, None if anchors is None else (anchors.astype(np.int64), confs))

    def _cross_sell_scores(self, ci: int | None, recent: np.ndarray,
                           parts: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(dense blend scores, seeds). `parts`, when given, receives the raw signals (taste, knn,
        cooc) whatever their weight, for the learnt re-ranking; it stays empty for a cold client."""
        vec = self._client_vector(ci, recent)
        hist, sl = self._history(ci)
        seeds = np.concatenate([hist, recent])
        if vec is None:
            return self._cold_scores(ci), seeds
        raw_taste = self.state.item_factors @ vec
        taste = minmax(raw_taste)
        weights = None
        if ci is not None and hist.size:
            w = self.state.hist_recency[sl]
            weights = np.concatenate([w / max(w.max(), 1e-9), np.ones(recent.size, np.float32)])
        w = self.weights
        every = parts is not None
        scores = taste  # signals weighted 0 (the tuning may drop one) are not computed
        if w["cross_sell_cooc"] or every:
            cooc = scatter_neighbours(self.state.cooc_idx, self.state.cooc_score, seeds, self.n_items, weights)
            scores = scores + w["cross_sell_cooc"] * minmax(cooc)
        if w["cross_sell_pop"]:
            scores = scores + w["cross_sell_pop"] * self._pop_score
        if w["cross_sell_recent"]:
            scores = scores + w["cross_sell_recent"] * self._recent_pop_score
        if w["cross_sell_knn"] or every:
            knn = scatter_neighbours(self.state.knn_idx, self.state.knn_score, seeds, self.n_items, weights)
            scores = scores + w["cross_sell_knn"] * minmax(knn)
        if every:
            parts.update(taste=raw_taste, knn=knn, cooc=cooc)
        return scores, seeds

    def cross_sell_pool(self, ci: int | None, recent: np.ndarray,
                        allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(the blend's top `CROSS_SELL_POOL` allowed items, their learnt features, the dense blend
        with every item that may not be suggested at NEG), or None for a cold client (no taste:
        the segment's list answers)."""
        parts: dict[str, np.ndarray] = {}
        scores, seeds = self._cross_sell_scores(ci, recent, parts)
        if not parts:
            return None
        allowed = allowed & self._products
        allowed[seeds] = False  # never what the client already bought
        scores = np.where(allowed, scores, NEG)
        pool = top_indices(scores, learnt.CROSS_SELL_POOL)
        _, sl = self._history(ci)
        counts = np.concatenate([self.state.hist_count[sl] if ci is not None else np.empty(0, np.float32),
                                 np.ones(recent.size, np.float32)])
        x = learnt.cross_sell_features(self.state, pool, scores, parts["taste"], parts["knn"], parts["cooc"],
                                       seeds, counts)
        return pool, x, scores

    def _cold_scores(self, ci: int | None) -> np.ndarray:
        """Unknown client: what their segment buys (or what everyone buys lately)."""
        ranked = self.state.global_popular if ci is None else self.state.segment_popular[self.state.client_abc[ci]]
        scores = np.full(self.n_items, NEG, dtype=np.float32)
        ranked = ranked[ranked >= 0]
        scores[ranked] = np.linspace(1.0, 0.5, ranked.size, dtype=np.float32)
        return scores

    def _rank_cross_sell(self, ci: int | None, recent: np.ndarray, allowed: np.ndarray,
                         limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        model = learnt.coefficients(self.weights, learnt.CROSS_SELL_PREFIX, learnt.CROSS_SELL_FEATURES)
        pooled = self.cross_sell_pool(ci, recent, allowed) if model is not None else None
        if pooled is not None:
            # the blend finds the candidates and the learnt chance of a first purchase orders them;
            # the rest follow in the blend's order, below every probability, so a list never runs short
            pool, x, blend = pooled
            scores = np.where(np.isfinite(blend), minmax(blend) - np.float32(2.0), NEG)
            scores[pool] = learnt.probability(x, model)
            allowed = np.isfinite(scores)
        else:
            scores, seeds = self._cross_sell_scores(ci, recent)
            allowed = allowed & self._products
            allowed[seeds] = False  # never what the client already bought
        ranked = rank_with_rules(scores, limit, allowed=allowed, groups=self.state.item_subcat,
                                 cap=int(self.weights["diversity_cap"]))
        return ranked, scores[ranked], scores

    def _seeds(self, ci: int | None, recent: np.ndarray) -> np.ndarray:
        return np.concatenate([self._history(ci)[0], recent])

    def _cross_sell_answers(self, ci: int | None, recent: np.ndarray, ranked: np.ndarray, values: np.ndarray,
                            dense: np.ndarray | None, *, explain: bool, limit: int,
                            anchors: tuple[np.ndarray, np.ndarray] | None = None) -> list[Suggestion]:
        if not explain:
            return [self._suggestion(int(i), "cross_sell", v, "") for i, v in zip(ranked, values, strict=True)]
        seeds = self._seeds(ci, recent)
        anchors, confs = anchors or strongest_seeds(self.state.cooc_idx, self.state.cooc_conf, seeds, ranked)
        return [self._suggestion(int(i), "cross_sell", v, self._cross_sell_reason(ci, seeds, int(i), int(a), float(c)))
                for i, v, a, c in zip(ranked, values, anchors, confs, strict=True)]

    def _cross_sell_reason(self, ci: int | None, seeds: np.ndarray, target: int, anchor: int, conf: float) -> str:
        if ci is None and seeds.size == 0:
            return reasons.popular(None)
        if anchor >= 0 and conf >= 0.05:
            return reasons.bought_together(self._names[anchor], conf)
        if seeds.size == 0:
            return reasons.popular(self.segment_label(ci))
        sims = self._unit_factors[seeds] @ self._unit_factors[target]
        return reasons.clients_like_you(self._names[seeds[int(np.argmax(sims))]] if sims.size else None)

    def segment_label(self, ci: int | None) -> str | None:
        return None if ci is None else ABC[int(self.state.client_abc[ci])]

    def _replenishment(self, ci: int | None, recent: np.ndarray, allowed: np.ndarray, limit: int,
                      explain: bool = True) -> list[Suggestion]:
        hist, sl = self._history(ci)
        if hist.size == 0:
            return []
        st = self.state
        interval, age = st.hist_interval[sl], st.hist_last_age[sl]
        ratio = np.where(np.isnan(interval), 0.0, age / np.maximum(interval, 1.0))
        w = self.weights
        base = st.hist_recency[sl] / max(float(st.hist_recency[sl].max()), 1e-9)
        base = base + w["replenish_recent"] * st.hist_recent[sl] / max(float(st.hist_recent[sl].max()), 1e-9)
        freq = np.log1p(st.hist_count[sl]) / max(float(np.log1p(st.hist_count[sl]).max()), 1e-9)
        if w["replenish_knn"]:
            knn = scatter_neighbours(st.knn_idx, st.knn_score, hist, self.n_items, st.hist_recency[sl])[hist]
            base = base + w["replenish_knn"] * knn / max(float(knn.max()), 1e-9)
        model = learnt.coefficients(w, learnt.REPLENISH_PREFIX, learnt.REPLENISH_FEATURES)
        if model is not None:  # the chance of buying it again, learnt on the inner split
            score = learnt.probability(learnt.replenishment_features(st, sl, hist), model)
        else:
            score = ((base + w["replenish_freq"] * freq) * (1.0 + w["replenish_due"] * np.clip(ratio, 0.0, 1.5))
                     * (1.0 + w["replenish_repeat"] * st.item_repeat[hist]))
        keep = allowed[hist] & ~np.isin(hist, recent)
        score = np.where(keep, score, NEG)
        out = []
        for pos in top_indices(score, limit):
            i = int(hist[pos])
            is_due = bool(ratio[pos] >= 1.0)
            reason = (reasons.due(interval[pos], age[pos]) if is_due
                      else reasons.regular(st.hist_count[sl][pos], age[pos]))
            days_left = None if np.isnan(interval[pos]) else round(float(interval[pos] - age[pos]), 1)
            out.append(self._suggestion(i, "replenishment", score[pos], reason, due=is_due, due_in_days=days_left))
        return out

    def _upsell_seeds(self, ci: int | None, recent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The client's items (history, then just bought) and how often each was bought."""
        hist, sl = self._history(ci)
        counts = self.state.hist_count[sl] if ci is not None else np.empty(0, np.float32)
        return np.concatenate([hist, recent]), np.concatenate([counts, np.ones(recent.size, np.float32)])

    def _rank_upsell(self, ci: int | None, recent: np.ndarray, allowed: np.ndarray,
                     limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        seeds, weight = self._upsell_seeds(ci, recent)
        nothing = (np.empty(0, np.int64), np.empty(0, np.float32), None)
        if seeds.size == 0:
            return nothing
        st = self.state
        sub = st.item_subcat[seeds]
        price = st.item_price[seeds]
        known = (sub >= 0) & ~np.isnan(price)
        if not known.any():
            return nothing
        n_sub = int(st.item_subcat.max()) + 1
        sub_weight = np.bincount(sub[known], weights=weight[known], minlength=n_sub).astype(np.float32)
        ceiling = np.full(n_sub, np.inf, dtype=np.float32)  # no upsell where the client never bought
        ceiling[sub[known]] = -np.inf
        np.maximum.at(ceiling, sub[known], price[known])
        item_sub = st.item_subcat
        cand = (item_sub >= 0) & allowed & self._products
        cand &= np.where(item_sub >= 0, st.item_price > ceiling[np.maximum(item_sub, 0)] * 1.0001, False)
        cand[seeds] = False
        if not cand.any():
            return nothing
        vec = self._client_vector(ci, recent)
        taste = minmax(st.item_factors @ vec) if vec is not None else np.zeros(self.n_items, np.float32)
        trade = scatter_neighbours(st.upsell_idx, st.upsell_moves, seeds, self.n_items)
        w = self.weights
        step = np.log2(np.maximum(st.item_price / np.maximum(ceiling[np.maximum(item_sub, 0)], 1e-6), 1.0))
        step = np.where(np.isfinite(step), step, 0.0)
        scores = (self._pop_score + w["upsell_subcat"] * minmax(np.log1p(sub_weight))[np.maximum(item_sub, 0)]
                  + w["upsell_taste"] * taste + w["upsell_tradeup"] * minmax(np.log1p(trade))
                  - w["upsell_step"] * step)
        ranked = rank_with_rules(scores, limit, allowed=cand, groups=item_sub, cap=int(w["upsell_cap"]))
        return ranked, scores[ranked], scores

    def _upsell_answers(self, ci: int | None, recent: np.ndarray, ranked: np.ndarray, values: np.ndarray,
                        dense: np.ndarray | None, *, explain: bool, limit: int,
                        anchors: tuple[np.ndarray, np.ndarray] | None = None) -> list[Suggestion]:
        """Each upsell names what it replaces (the client's most bought item of that subcategory)
        and the price step; the trade-up count makes the reason when clients did move that way."""
        st = self.state
        seeds, weight = self._upsell_seeds(ci, recent)
        sub = st.item_subcat[seeds]
        trade = neighbour_sums(st.upsell_idx, st.upsell_moves, seeds, ranked)
        out = []
        for i, value, moves in zip(ranked.tolist(), values.tolist(), trade.tolist(), strict=True):
            mine = sub == st.item_subcat[i]
            current = int(seeds[mine][np.argmax(weight[mine])]) if mine.any() else -1
            diff = float(st.item_price[i] - st.item_price[current]) if current >= 0 else float("nan")
            reason = (reasons.traded_up(int(moves), self._names[current]) if moves >= 2 and current >= 0
                      else reasons.upgrade(self._names[current] if current >= 0 else "what you buy", diff))
            out.append(self._suggestion(i, "upsell", value, reason,
                                        price_difference=None if np.isnan(diff) else round(diff, 2),
                                        upgrade_from=str(self.item_ids[current]) if current >= 0 else None))
        return out

    def _service_scores(self, ci: int | None, recent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        st = self.state
        vec = self._client_vector(ci, recent)
        hist, sl = self._history(ci)
        seeds = np.concatenate([hist, recent])
        taste = minmax(st.item_factors @ vec) if vec is not None else np.zeros(self.n_items, np.float32)
        # each owned item counts as often as the client bought it
        counts = np.concatenate([st.hist_count[sl] if ci is not None else np.empty(0, np.float32),
                                 np.ones(recent.size, np.float32)])
        cooc = minmax(scatter_neighbours(st.service_idx, st.service_score, seeds, self.n_items, counts))
        seg = self._cold_scores(ci)
        seg = np.where(np.isfinite(seg), seg, 0.0)
        w = self.weights
        return (w["service_taste"] * taste + w["service_cooc"] * cooc + w["service_segment"] * seg
                + 0.1 * self._pop_score), seeds

    def _rank_service_package(self, ci: int | None, recent: np.ndarray, allowed: np.ndarray,
                              limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scores, seeds = self._service_scores(ci, recent)
        allowed = allowed & self.state.item_service
        allowed[seeds] = False  # a service the client already uses is not an offer
        ranked = rank_with_rules(scores, limit, allowed=allowed)
        return ranked, scores[ranked], scores

    def _service_package_answers(self, ci: int | None, recent: np.ndarray, ranked: np.ndarray, values: np.ndarray,
                                 dense: np.ndarray | None, *, explain: bool, limit: int,
                                 anchors: tuple[np.ndarray, np.ndarray] | None = None) -> list[Suggestion]:
        """Services, then package offers. Business packages are scored from their members' dense
        scores, so they are never answered from candidates (`dense` is then always given)."""
        st = self.state
        seeds = self._seeds(ci, recent)
        services = []
        anchors, confs = anchors or strongest_seeds(st.service_idx, st.service_score, seeds, ranked)
        for i, value, anchor, conf in zip(ranked.tolist(), values.tolist(), anchors.tolist(), confs.tolist(), strict=True):
            services.append(self._suggestion(i, "service_package", value,
                                             reasons.service_affinity(self._names[anchor] if conf >= 0.05 else None)))
        offers = self._package_offers(ci, seeds, dense, st.item_in_stock, limit)
        if len(self._packages):
            # business packages are scored on the services' scale: one ranking
            return sorted(services + offers, key=lambda s: -s["score"])[:limit]
        # mined bundles only fill what the services leave
        return (services + offers)[:limit]

    def _package_offers(self, ci: int | None, seeds: np.ndarray, scores: np.ndarray,
                        allowed: np.ndarray, limit: int) -> list[Suggestion]:
        """Business packages ranked for this client; tier rules decide the order among a line."""
        st = self.state
        if len(self._packages) == 0:
            return self._bundle_offers(seeds, allowed, limit, kind="service_package")
        members = st.package_items
        valid = members >= 0
        safe = np.where(valid, members, 0)
        mean = np.where(valid, np.where(np.isfinite(scores[safe]), scores[safe], 0.0), 0.0).sum(1) / np.maximum(valid.sum(1), 1)
        owned = np.isin(safe, seeds) & valid
        held = owned.sum(1) == valid.sum(1)
        tier = np.nan_to_num(st.package_tier, nan=0.0)
        abc = self.segment_label(ci)
        out = []
        held_tier = {}
        for p in np.flatnonzero(held):
            held_tier[p] = tier[p]
        for p in range(len(self._packages)):
            if held[p] or not allowed[safe[p][valid[p]]].all():
                continue
            # a package line: packages whose items share a subcategory (care basic -> care premium)
            overlap_held = [q for q in held_tier if np.isin(st.item_subcat[safe[p][valid[p]]],
                                                            st.item_subcat[safe[q][valid[q]]]).any()]
            bonus, reason = 0.0, reasons.service_affinity(None)
            if overlap_held:
                q = max(overlap_held, key=lambda q: held_tier[q])
                line = [r for r in range(len(self._packages)) if tier[r] > held_tier[q] and np.isin(
                    st.item_subcat[safe[r][valid[r]]], st.item_subcat[safe[q][valid[q]]]).any()]
                if line and tier[p] == min(tier[r] for r in line):
                    bonus, reason = 2.0, reasons.next_tier(self._package_names[q])
                elif tier[p] <= held_tier[q]:
                    continue  # never offer a lower or equal tier of what the client holds
            elif abc == "A" and tier[p] > 0:
                bonus, reason = 0.25 * tier[p], reasons.premium_first(abc)
            price = float(st.package_price[p])
            out.append({"item_id": self._package_ids[p], "name": self._package_names[p], "kind": "service_package",
                        "score": round(float(mean[p] + bonus), 6),
                        "price": None if np.isnan(price) else round(price, 2), "reason": reason,
                        "items": [str(self.item_ids[i]) for i in safe[p][valid[p]]],
                        "tier": None if np.isnan(st.package_tier[p]) else float(st.package_tier[p])})
        out.sort(key=lambda s: -s["score"])
        return out[:limit]

    def _bundle_offers(self, seeds: np.ndarray, allowed: np.ndarray, limit: int, kind: str = "bundle") -> list[dict[str, Any]]:
        """Mined bundles holding something the client (or cart) has and something it lacks."""
        st = self.state
        members = st.bundle_items
        if members.size == 0 or seeds.size == 0:
            return []
        valid = members >= 0
        safe = np.where(valid, members, 0)
        has = (member_of(safe, seeds, self.n_items) & valid).sum(1)
        lacks = valid.sum(1) - has
        ok = (has > 0) & (lacks > 0) & np.all(np.where(valid, allowed[safe], True), axis=1)
        order = np.flatnonzero(ok)
        order = order[np.lexsort((-st.bundle_lift[order], -has[order]))][:limit]
        discount = float(self.meta.get("params", {}).get("bundle_discount", 0.1))
        out = []
        for b in order:
            ids = [str(self.item_ids[i]) for i in safe[b][valid[b]]]
            out.append({"bundle_id": self._bundle_ids[b], "item_id": self._bundle_ids[b],
                        "name": self._bundle_names[b], "kind": kind, "items": ids,
                        "score": round(float(np.log1p(st.bundle_lift[b]) * has[b] / valid[b].sum()), 6),
                        "price": round(float(st.bundle_full_price[b]), 2),
                        "bundle_price": round(float(st.bundle_price[b]), 2),
                        "reason": reasons.bundle(len(ids), float(st.bundle_lift[b]), discount)})
        return out

    def cart(self, items: Sequence[str], client_id: str | None = None, limit: int = 10, *,
             recent_purchases: Sequence[str] = ()) -> dict[str, Any]:
        st = self.state
        basket = self.item_index(items)
        unknown = [i for i in items if i not in self._item_pos]
        ci = self._client_pos.get(client_id) if client_id else None
        complete = self.cart_complete(basket, ci, limit, self.item_index(recent_purchases))
        allowed = st.item_in_stock & self._products
        allowed[basket] = False
        upsell = []
        for b in basket:
            for j, moves in zip(st.upsell_idx[b], st.upsell_moves[b], strict=True):
                if j >= 0 and allowed[j]:
                    diff = float(st.item_price[j] - st.item_price[b])
                    reason = (reasons.traded_up(int(moves), self._names[b]) if moves >= 2
                              else reasons.upgrade(self._names[b], diff))
                    upsell.append(self._suggestion(int(j), "upsell", float(st.upsell_score[b][0]), reason,
                                                   upgrade_from=str(self.item_ids[b]), price_difference=round(diff, 2)))
                    break
        upsell.sort(key=lambda s: -s["score"])
        return {"complete": complete, "upsell": upsell[:limit],
                "bundles": self._bundle_offers(basket, st.item_in_stock, limit), "unknown_items": unknown}

    def cart_complete(self, basket: np.ndarray, ci: int | None, limit: int, recent: np.ndarray,
                      explain: bool = True) -> list[Suggestion]:
        """What completes this basket: the ranking the cart widget shows and the evaluation scores."""
        st = self.state
        sparse = self._cart_sparse(basket, ci, recent, limit)
        if sparse is not None:
            ranked, values = sparse
        else:
            scores = self.cart_scores(basket, ci, recent)
            allowed = st.item_in_stock & self._products
            allowed[basket] = False
            ranked = rank_with_rules(scores, limit, allowed=allowed)
            values = scores[ranked]
        if not explain:
            return [self._suggestion(int(i), "cart", v, "") for i, v in zip(ranked, values, strict=True)]
        anchors, confs = strongest_seeds(st.cooc_idx, st.cooc_conf, basket, ranked)
        out = []
        for i, v, anchor, conf in zip(ranked.tolist(), values.tolist(), anchors.tolist(), confs.tolist(), strict=True):
            reason = (reasons.bought_together(self._names[anchor], conf) if anchor >= 0 and conf > 0
                      else reasons.clients_like_you(None) if ci is not None else reasons.popular(None))
            out.append(self._suggestion(i, "cart", v, reason))
        return out

    def _cart_sparse(self, basket: np.ndarray, ci: int | None, recent: np.ndarray,
                     limit: int) -> tuple[np.ndarray, np.ndarray] | None:
        """`cart_scores` and the rules over the items with evidence only: the basket's neighbours
        and the client's history. Every other item scores exactly 0 there, so the answer is the
        same whenever `limit` items with evidence score above 0; otherwise (or with a taste
        weight, which scores every item) None, and the dense path answers."""
        st = self.state
        if basket.size == 0 or (ci is not None and self.weights["cart_taste"]):
            return None
        rows = st.cooc_idx[basket]
        hist, sl = self._history(ci)
        cand = np.unique(np.concatenate([rows[rows >= 0], hist]))
        if cand.size >= self.n_items:
            return None
        cooc = neighbour_sums(st.cooc_idx, st.cooc_score, basket, cand)
        top = float(cooc.max(initial=0.0))
        if not top > 0:
            return None  # no co-occurrence evidence: the dense path falls back to categories
        scores = cooc / np.float32(top)  # minmax over all items: the minimum is an untouched 0
        if hist.size:
            personal = np.zeros(cand.size, dtype=np.float32)
            personal[np.searchsorted(cand, hist)] = st.hist_recency[sl]
            most = float(personal.max())
            if not most > 0:
                return None
            scores = scores + self.weights["cart_personal"] * (personal / np.float32(most))
        allowed = st.item_in_stock[cand] & self._products[cand] & ~member_of(cand, basket, self.n_items)
        pos = top_indices(np.where(allowed, scores, NEG), limit)
        if pos.size < limit or not scores[pos[-1]] > 0:
            return None
        return cand[pos], scores[pos]

    def cart_scores(self, basket: np.ndarray, ci: int | None, recent: np.ndarray) -> np.ndarray:
        """Dense scores over items for completing `basket`, personalised when `ci` is known."""
        st = self.state
        cooc = scatter_neighbours(st.cooc_idx, st.cooc_score, basket, self.n_items)
        if basket.size == 0 or not (cooc > 0).any():
            # no co-occurrence evidence: items popular in the basket's categories, else popular
            cooc = self._pop_score * 0.01
            subs = st.item_subcat[basket]
            if subs.size:
                cooc = cooc + np.isin(st.item_subcat, subs[subs >= 0]) * self._pop_score
        scores = minmax(cooc)
        if ci is not None:
            hist, sl = self._history(ci)
            personal = np.zeros(self.n_items, dtype=np.float32)
            personal[hist] = st.hist_recency[sl]
            scores = scores + self.weights["cart_personal"] * minmax(personal)
            vec = self._client_vector(ci, recent) if self.weights["cart_taste"] else None
            if vec is not None:
                scores = scores + self.weights["cart_taste"] * minmax(st.item_factors @ vec)
        return scores

    def similar(self, item_id: str, limit: int = 10) -> list[Suggestion]:
        i = self._item_pos.get(item_id)
        if i is None:
            raise KeyError(item_id)
        st = self.state
        sims = self._unit_factors @ self._unit_factors[i]
        cooc = scatter_neighbours(st.cooc_idx, st.cooc_score, np.array([i]), self.n_items)
        scores = minmax(sims) + minmax(cooc)
        if not np.any(self._unit_factors[i]) and not cooc.any():
            # an item without history is reached through its category
            same = (st.item_subcat == st.item_subcat[i]) if st.item_subcat[i] >= 0 else (st.item_category == st.item_category[i])
            scores = np.where(same, self._pop_score + 0.01, NEG).astype(np.float32)
            reason = reasons.category_popular(str(self._subcategories[i] or self._categories[i]))
        else:
            reason = None
        allowed = st.item_in_stock.copy()
        allowed[i] = False
        out = []
        for j in rank_with_rules(scores, limit, allowed=allowed):
            j = int(j)
            if reason is None:
                conf = float(st.cooc_conf[i][st.cooc_idx[i] == j].max(initial=0.0))
                r = reasons.bought_together(self._names[i], conf) if conf >= 0.05 else reasons.clients_like_you(self._names[i])
            else:
                r = reason
            out.append(self._suggestion(j, "similar", scores[j], r))
        return out

    def smoke_check(self) -> None:
        """Refuse a model that answers wrongly before it ever serves (see the contract)."""
        st = self.state
        if self.n_items == 0 or len(self.client_ids) == 0:
            raise ValueError("model has no items or no clients")
        for name in ("item_factors", "client_factors", "cooc_score", "item_price"):
            arr = getattr(st, name)
            if name != "item_price" and not np.isfinite(arr).all():
                raise ValueError(f"{name} holds NaN or infinite values")
        busiest = int(np.argmax(np.diff(st.hist_indptr)))
        client = str(self.client_ids[busiest])
        owned = np.zeros(self.n_items, dtype=bool)
        owned[self._history(busiest)[0]] = True
        # cross-sell may rightly be empty for a client who already owns every product in stock
        kinds = ("cross_sell", "replenishment") if (self._products & ~owned).any() else ("replenishment",)
        for kind in kinds:
            got = self.suggest(client, kind, 5)
            if not got:
                raise ValueError(f"no {kind} suggestion for the busiest known client {client}")
            for s in got:
                if not np.isfinite(s["score"]) or s["item_id"] not in self._item_pos:
                    raise ValueError(f"bad {kind} suggestion for {client}: {s}")
        if not self.suggest("__smoke_unknown_client__", "cross_sell", 3):
            raise ValueError("no cold-start suggestion for an unknown client")
        cart = self.cart([str(self.item_ids[st.hist_indices[st.hist_indptr[busiest]]])], limit=3)
        if not cart["complete"]:
            raise ValueError("no cart suggestion for a known item")
