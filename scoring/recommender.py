"""The scoring model: one object answers every kind of suggestion, in the service and offline.

It holds only arrays (`ModelState`) and needs numpy at serving time, not the fitting library.
The offline evaluation calls these same methods, so the figures we publish are for exactly the
answers the service gives, business rules included.

This module is the façade; each answer is built where its name says:
- `scoring.evidence`   what a request knows about its client, built once per request;
- `scoring.kinds`      one module per kind (cross_sell, upsell, service_package, replenishment,
                       next_basket), each ranking and explaining through one interface, found
                       by `REGISTRY`;
- `scoring.fallback`   the chain that answers a client the personalised blend knows nothing about;
- `scoring.candidates` the per-client rankings precomputed at training time;
- `scoring.cart`       basket completion, cart upsells, bundle offers; `scoring.similar` items
                       like an item; `scoring.weights` the blend weights' defaults.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from scoring import candidates, client_state, crm, value
from scoring import cart as cart_answers
from scoring import objective as objectives
from scoring.candidates import CANDIDATE_KINDS, CANDIDATES, CandidateLists
from scoring.catalogue import ABC, ACTIVITY, Catalogue
from scoring.contract import KINDS, CartAnswer, Suggestion, SuggestionModel
from scoring.evidence import Evidence
from scoring.kinds import REGISTRY, Ranked
from scoring.kinds.cross_sell import pool
from scoring.similar import similar_items
from scoring.state import ModelState
from scoring.weights import DEFAULT_WEIGHTS

log = logging.getLogger(__name__)

__all__ = ["ABC", "ACTIVITY", "CANDIDATES", "CANDIDATE_KINDS", "DEFAULT_WEIGHTS", "Recommender"]


class Recommender(SuggestionModel):
    """Implements `scoring.contract.SuggestionModel` over a `ModelState`.

    `weights` may be replaced between requests (the tuning searches them on one fitted model);
    everything derived from the arrays lives in `catalogue` and is shared by copies.
    """

    def __init__(self, state: ModelState) -> None:
        self.state = state
        self.meta = state.meta
        self.weights: dict[str, float] = {**DEFAULT_WEIGHTS, **state.meta.get("weights", {})}
        self.catalogue = Catalogue(state)
        cat = self.catalogue
        self.item_ids, self.client_ids, self.n_items = cat.item_ids, cat.client_ids, cat.n_items
        self._item_pos, self._client_pos = cat.item_pos, cat.client_pos
        self._names, self._subcategories = cat.names, cat.subcategories
        self._candidates = CandidateLists(state)

    # ----- persistence and copies ----------------------------------------------------------------
    @classmethod
    def load(cls, folder: str | Path) -> Recommender:
        return cls(ModelState.load(folder))

    def save(self, folder: str | Path) -> None:
        self.state.save(folder)

    def with_weights(self, weights: Mapping[str, float]) -> Recommender:
        """A view of this model (arrays shared) that answers with `weights` over its own."""
        other = copy.copy(self)
        other.weights = {**self.weights, **weights}
        return other

    def viewing(self, state: ModelState, catalogue: Catalogue) -> Recommender:
        """A view of this model over `state` and `catalogue` (`scoring.client_state.one_client_view`)."""
        view = copy.copy(self)
        view.state, view.catalogue = state, catalogue
        view.client_ids, view._client_pos = catalogue.client_ids, catalogue.client_pos
        view._candidates = CandidateLists(state)
        return view

    # ----- client state in Redis (`scoring.client_state`, `scoring.contract.ClientStateInRedis`) ---
    def client_state_models(self) -> str | None:
        spec = client_state.stored_in_redis(self.meta)
        return None if spec is None else str(spec["id"])

    def client_state_key(self, client_id: str) -> str | None:
        return client_state.key_of(self.meta, client_id)

    def with_client_state(self, client_id: str, value: bytes | None) -> Recommender:
        """This model answering for one client from its stored value; itself (which knows no client)
        when the value is None."""
        if value is None or self._client_layout is None:
            return self
        return client_state.one_client_view(self, client_id, client_state.decode(self._client_layout, value))

    @cached_property
    def _client_layout(self) -> tuple[list[client_state.Part], list[tuple[str, np.dtype]]] | None:
        spec = client_state.stored_in_redis(self.meta)
        return None if spec is None else client_state.parse(spec)

    def without_candidates(self) -> Recommender:
        """A view of this model (arrays shared) that answers every request by the exact path:
        what the candidates are measured against."""
        exact = copy.copy(self)
        exact._candidates = CandidateLists()
        return exact

    # ----- lookups -----------------------------------------------------------------------------
    def knows_client(self, client_id: str) -> bool:
        return client_id in self._client_pos

    def knows_item(self, item_id: str) -> bool:
        return item_id in self._item_pos

    def item_index(self, item_ids: Sequence[str]) -> np.ndarray:
        return self.catalogue.item_index(item_ids)

    def groups_of(self, item_ids: Sequence[str]) -> list[str | None]:
        """`scoring.contract.ItemGroups`: each item's product group as suggestions name it."""
        groups, pos = self.catalogue.groups, self._item_pos
        return [str(int(groups[pos[i]])) if i in pos else None for i in item_ids]

    def segment(self, client_id: str) -> dict[str, Any]:
        ci = self._client_pos.get(client_id)
        if ci is None:
            return {"abc": None, "activity": None, "rfm": None}
        return {name: (None if values[ci] is None else str(values[ci]))
                for name, values in self.catalogue.segments.items()}

    def client_value(self, client_id: str) -> dict[str, Any] | None:
        """`scoring.contract.ClientValues`: the client's value figures (`scoring.value`), or None."""
        return value.client_value(self.meta.get("value_model"), self.state.extras, self._client_pos.get(client_id))

    def segment_before(self, client_id: str) -> dict[str, Any]:
        """`scoring.contract.ClientChanges`: the client's segments a period before the data's end."""
        return crm.segments_before(self.meta.get("crm"), self.state.extras, self._client_pos.get(client_id))

    def transitions(self, client_id: str | None = None) -> list[dict[str, Any]]:
        """`scoring.contract.ClientChanges`: every transition found at training, or one client's."""
        if client_id is None:
            return crm.transitions(self.meta.get("crm"), self.state.extras, self.client_ids)
        ci = self._client_pos.get(client_id)
        return [] if ci is None else crm.transitions(self.meta.get("crm"), self.state.extras, self.client_ids, ci)

    def holdings(self, client_id: str) -> list[dict[str, Any]]:
        """`scoring.contract.ClientChanges`: the service packages the client holds (every member bought)."""
        ci = self._client_pos.get(client_id)
        if ci is None:
            return []
        st = self.state
        history = st.hist_indices[st.hist_indptr[ci]: st.hist_indptr[ci + 1]]
        return crm.held_packages(st.package_items, st.package_tier, self.catalogue.package_ids,
                                 self.catalogue.package_names, history)

    def segment_label(self, ci: int | None) -> str | None:
        return self.catalogue.segment_label(ci)

    def evidence(self, ci: int | None, recent: np.ndarray, *, category: str | None = None,
                 exclude: Sequence[str] = ()) -> Evidence:
        """What one request knows about client position `ci` (None: unknown) and its just-bought
        items, with the request's filter."""
        return Evidence(self.catalogue, self.weights, ci, recent, category=category, exclude=exclude)

    def _history(self, ci: int | None) -> tuple[np.ndarray, slice]:
        return self.catalogue.history(ci)

    # ----- the contract ------------------------------------------------------------------------
    def suggest(self, client_id: str, kind: str, limit: int = 10, *, category: str | None = None,
                exclude: Sequence[str] = (), recent_purchases: Sequence[str] = (),
                objective: str = objectives.RELEVANCE, explain: bool = True) -> list[Suggestion]:
        """See the contract. `explain=False` lets a kind skip the reason texts (the ranking is the
        same): the offline evaluation scores thousands of lists and reads none of them. (The
        HTTP API's `explain=true`, showing each suggestion's breakdown, is the service's.)

        Under `objective` revenue or margin the kind ranks `scoring.objective.POOL_FACTOR` times
        deeper and that pool is re-ordered by expected value."""
        model = REGISTRY.get(kind)
        if model is None:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        objectives.check(objective, self.has_margins)
        depth = objectives.pool_size(limit, objective)
        ci = self._client_pos.get(client_id)
        ev = self.evidence(ci, self.item_index(recent_purchases), category=category, exclude=exclude)
        ranked = self._from_candidates(kind, ci, ev.recent, category, exclude, depth)
        if ranked is None:
            ranked = model.rank(ev, ev.allowed.copy(), depth)
        answer = model.explain(ev, ranked, depth, with_reasons=explain)
        return objectives.with_objective(
            answer, objective, source=objectives.LEARNT if model.scores_are_probabilities(ev) else objectives.RANK,
            rate=self.weights.get(objectives.RATE_PREFIX + kind), margins=self._margins_of(answer), limit=limit)

    @property
    def has_margins(self) -> bool:
        return self.catalogue.has_margins

    def _margins_of(self, answer: Sequence[Suggestion]) -> np.ndarray | None:
        """Each suggestion's margin per unit (NaN: unknown, and always for packages and bundles,
        whose margin nobody gave), or None for a model without margins."""
        if not self.has_margins:
            return None
        margin = self.state.item_margin
        return np.array([np.nan if "items" in s or s["item_id"] not in self._item_pos
                         else float(margin[self._item_pos[s["item_id"]]]) for s in answer], dtype=np.float64)

    def cart(self, items: Sequence[str], client_id: str | None = None, limit: int = 10, *,
             recent_purchases: Sequence[str] = ()) -> CartAnswer:
        basket = self.item_index(items)
        unknown = [i for i in items if i not in self._item_pos]
        ci = self._client_pos.get(client_id) if client_id else None
        return {"complete": self.cart_complete(basket, ci, limit, self.item_index(recent_purchases)),
                "upsell": cart_answers.upsells(self.catalogue, basket, limit),
                "bundles": cart_answers.bundle_offers(self.catalogue, basket, self.state.item_in_stock, limit),
                "unknown_items": unknown}

    def similar(self, item_id: str, limit: int = 10) -> list[Suggestion]:
        i = self._item_pos.get(item_id)
        if i is None:
            raise KeyError(item_id)
        return similar_items(self.catalogue, i, limit)

    def smoke_check(self) -> None:
        """Refuse a model that answers wrongly before it ever serves (see the contract). A model whose
        clients live in Redis is checked through the one client's value it carries."""
        spec = client_state.stored_in_redis(self.meta)
        if spec is not None and len(self.client_ids) == 0:
            sample = self.state.extras.get("client_state_sample")
            if sample is None:
                raise ValueError("the model's clients are in Redis but it carries no sample client to check")
            self.with_client_state(str(spec["sample_client"]), np.asarray(sample, np.uint8).tobytes()).smoke_check()
            return
        st = self.state
        if self.n_items == 0 or len(self.client_ids) == 0:
            raise ValueError("model has no items or no clients")
        for name in ("item_factors", "client_factors", "cooc_score"):
            if not np.isfinite(getattr(st, name)).all():
                raise ValueError(f"{name} holds NaN or infinite values")
        busiest = int(np.argmax(np.diff(st.hist_indptr)))
        client = str(self.client_ids[busiest])
        owned = self.evidence(busiest, np.empty(0, np.int64)).owned
        # cross-sell may rightly be empty for a client who already owns every product in stock
        kinds = ("cross_sell", "replenishment") if (self.catalogue.products & ~owned).any() else ("replenishment",)
        if self.catalogue.products.any():  # a full basket while the catalogue has products
            kinds = (*kinds, "next_basket")
        for kind in kinds:
            got = self.suggest(client, kind, 5)
            if not got:
                raise ValueError(f"no {kind} suggestion for the busiest known client {client}")
            for s in got:
                if not np.isfinite(s["score"]) or s["item_id"] not in self._item_pos:
                    raise ValueError(f"bad {kind} suggestion for {client}: {s}")
        if not self.suggest("__smoke_unknown_client__", "cross_sell", 3):
            raise ValueError("no cold-start suggestion for an unknown client")
        answer = self.cart([str(self.item_ids[st.hist_indices[st.hist_indptr[busiest]]])], limit=3)
        if not answer["complete"]:
            raise ValueError("no cart suggestion for a known item")

    # ----- precomputed candidates (training computes them, `training.candidates`) --------------
    def candidate_kinds(self) -> list[str]:
        return candidates.candidate_kinds(self.catalogue)

    def rank_candidates(self, clients: range, size: int = CANDIDATES) -> dict[str, dict[str, np.ndarray]]:
        """See `scoring.candidates.rank_candidates`."""
        return candidates.rank_candidates(self.catalogue, self.weights, clients, size)

    def set_candidates(self, ranked: dict[str, dict[str, np.ndarray]], size: int) -> None:
        """Keep precomputed rankings (one row per known client) in the model's arrays."""
        CandidateLists.store(self.state, ranked, size)
        self._candidates = CandidateLists(self.state)

    def _from_candidates(self, kind: str, ci: int | None, recent: np.ndarray, category: str | None,
                         exclude: Sequence[str], limit: int) -> Ranked | None:
        """The stored ranking less `exclude`, or None where only the exact path is right."""
        return self._candidates.read(self.catalogue, kind, ci, recent, category, exclude, limit)

    # ----- what training and the evaluation call besides the contract --------------------------
    def cross_sell_pool(self, ci: int | None, recent: np.ndarray,
                        allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """See `scoring.kinds.cross_sell.pool` (the learnt re-ranking is fitted on these pools)."""
        return pool(self.evidence(ci, recent), allowed)

    def cart_complete(self, basket: np.ndarray, ci: int | None, limit: int, recent: np.ndarray,
                      explain: bool = True) -> list[Suggestion]:
        """What completes this basket: the ranking the cart widget shows and the evaluation scores."""
        ev = self.evidence(ci, recent)
        return cart_answers.complete(ev, basket, limit, sparse=self._cart_sparse(ev, basket, limit), explain=explain)

    def _cart_sparse(self, ev: Evidence, basket: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray] | None:
        # a method, so that a benchmark can turn the sparse path off (tests/bench/bench_scoring.py)
        return cart_answers.sparse_complete(ev, basket, limit)

    def cart_scores(self, basket: np.ndarray, ci: int | None, recent: np.ndarray) -> np.ndarray:
        """Dense scores over items for completing `basket`, personalised when `ci` is known."""
        return cart_answers.dense_scores(self.evidence(ci, recent), basket)
