"""The evidence one request has about its client, built once and read by every step of the answer.

A known client brings a purchase history (items, counts, recency); a request may add items bought
since training (`recent_purchases`, from the event stream). Every kind reads the same things from
them: the seed items and how often each was bought, the client's taste vector (refreshed by the
exact ALS user step when there are recent purchases: the one costly piece, computed only when a
kind asks and then once), and the mask of what the client owns, which no kind ever offers again.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property

import numpy as np

from scoring.catalogue import Catalogue
from scoring.ranking import als_user_solve, frequent_codes
from scoring.reasons import REGULAR_FROM


class Evidence:
    """What is known about one client for one request (`ci` None: a client unknown to the model)."""

    def __init__(self, catalogue: Catalogue, weights: Mapping[str, float], ci: int | None,
                 recent: np.ndarray, *, category: str | None = None, exclude: Sequence[str] = ()) -> None:
        self.catalogue = catalogue
        #: the request's filter: a category (or subcategory) and ids it must not get back, items,
        #: packages or bundles alike
        self.category = category
        self.exclude = frozenset(exclude)
        self.state = catalogue.state
        #: the model's blend weights at the time of the request (tuning swaps them between requests)
        self.weights = weights
        self.ci = ci
        #: items bought since training, as item positions
        self.recent = recent
        self.history, self.history_slice = catalogue.history(ci)
        #: the client's items: history, then just bought
        self.seeds = np.concatenate([self.history, recent])
        #: how often each seed was bought (a just-bought item counts once)
        self.seed_counts = np.concatenate([self.state.hist_count[self.history_slice] if ci is not None
                                           else np.empty(0, np.float32), np.ones(recent.size, np.float32)])

    @property
    def known(self) -> bool:
        return self.ci is not None

    @property
    def segment_label(self) -> str | None:
        return self.catalogue.segment_label(self.ci)

    @cached_property
    def owned(self) -> np.ndarray:
        """Items the client has bought or just bought: never offered as something new."""
        mask = np.zeros(self.catalogue.n_items, dtype=bool)
        mask[self.seeds] = True
        return mask

    @cached_property
    def owned_groups(self) -> np.ndarray:
        """Items of a product group the client has bought: the same thing to them, never "new"."""
        return self.catalogue.in_groups_of(self.seeds)

    @cached_property
    def merch_seeds(self) -> tuple[np.ndarray, np.ndarray]:
        """(the seeds that are merchandise, in seed order; their product groups): the items a reason may
        name as "who buy X, as you do" (never a fee), gathered once for the answer's ten reasons."""
        cat = self.catalogue
        merch = self.seeds[cat.state.item_merch[self.seeds]]
        return merch, cat.groups[merch]

    @cached_property
    def regular_types(self) -> np.ndarray:
        """Items of a product type the client buys regularly (`reasons.REGULAR_FROM` purchases of
        it, all its items together): another brand or size of it is an upsell or a switch, not a
        cross-sell."""
        cat = self.catalogue
        return cat.of_types(frequent_codes(cat.types[self.seeds], self.seed_counts, REGULAR_FROM))

    @cached_property
    def allowed(self) -> np.ndarray:
        """The request's filter over items offered on their own: in stock, in its category, not excluded."""
        return self.catalogue.allowed(category=self.category, exclude=tuple(self.exclude))

    @cached_property
    def members_allowed(self) -> np.ndarray:
        """What an offer made of several items (a package, a bundle) may hold: every member in stock
        and in the request's category. `exclude` names offers, not members: a bundle with what the
        client already has in it is the point of a bundle."""
        return self.catalogue.allowed(category=self.category, exclude=())

    @cached_property
    def seed_recency(self) -> np.ndarray | None:
        """Per seed, its recency-weighted occasions over the client's largest (just bought: 1);
        None when the client has no history (every seed then weighs the same)."""
        if self.ci is None or self.history.size == 0:
            return None
        w = self.state.hist_recency[self.history_slice]
        return np.concatenate([w / max(w.max(), 1e-9), np.ones(self.recent.size, np.float32)])

    @cached_property
    def taste(self) -> np.ndarray | None:
        """The client's ALS vector: the trained one, or recomputed from history plus just-bought
        items when there are any; None when nothing is known (an unknown client, nothing bought)."""
        ci, recent, st = self.ci, self.recent, self.state
        if ci is None and recent.size == 0:
            return None
        if recent.size == 0:
            return st.client_factors[ci]
        conf = st.hist_count[self.history_slice].astype(np.float32) if ci is not None else np.empty(0, np.float32)
        alpha = float(st.meta.get("params", {}).get("alpha", 1.0))
        all_items = np.concatenate([self.history, recent])
        all_conf = np.concatenate([1.0 + alpha * np.log1p(conf), np.full(recent.size, 1.0 + alpha, np.float32)])
        uniq, inv = np.unique(all_items, return_inverse=True)
        summed = np.zeros(uniq.size, dtype=np.float64)
        np.add.at(summed, inv, all_conf)
        return als_user_solve(st.item_factors, st.yty, uniq, summed, self.catalogue.reg)

    def history_positions(self, items: np.ndarray) -> np.ndarray:
        """Where each of `items` (all from the client's history) sits in its `hist_*` slice."""
        order = np.argsort(self.history, kind="stable")
        return order[np.searchsorted(self.history[order], items)]
