"""The fallback chain: which source answers a client when the better ones know nothing about them.

As gorse's `[recommend.fallback]`, the order is configuration, not code paths: each stage either
scores every item or says it has no evidence (None), and the first stage with evidence answers.

    personalised     the kind's own blend over the client's taste and items (known client, or an
                     unknown one who just bought something)
    item_to_item     neighbours of the client's items only (co-bought, bought by the same clients)
    segment_popular  what the client's ABC segment buys (known client)
    popular          what everyone bought lately

The default `FALLBACK` is the order the model always followed; a model overrides it with a
`"fallback"` list in its meta (`ModelState.meta`), e.g. `["item_to_item", "popular"]` to serve
without ALS taste. Cross-sell follows the chain, and so do next_basket's new items (they are
cross-sell's). Upsell and replenishment answer from the client's
own items or not at all, and service packages blend the segment's adoption in for every client
(`segment_or_popular`), so neither has a stage to fall back to.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from scoring.ranking import NEG, minmax, scatter_neighbours

if TYPE_CHECKING:
    from scoring.evidence import Evidence

PERSONALISED = "personalised"
ITEM_TO_ITEM = "item_to_item"
SEGMENT_POPULAR = "segment_popular"
POPULAR = "popular"

#: The default chain, best evidence first. With it an unknown client who bought nothing gets the
#: popular list, and everyone else the personalised blend (anyone with seeds has a taste vector).
FALLBACK: tuple[str, ...] = (PERSONALISED, ITEM_TO_ITEM, SEGMENT_POPULAR, POPULAR)
#: The period the "popular lately" list counts (training.fit builds it over these last days).
RECENT_DAYS = 30
#: The meta key that overrides the default chain.
META_KEY = "fallback"

Scorer = Callable[["Evidence"], "np.ndarray | None"]


def chain(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The model's chain: its meta's `"fallback"` list if any, else `FALLBACK`; ValueError on a
    stage that does not exist (a typo would otherwise silently serve the popular list)."""
    stages = tuple(meta.get(META_KEY) or FALLBACK)
    unknown = [s for s in stages if s not in FALLBACK]
    if unknown:
        raise ValueError(f"unknown fallback stage(s) {unknown}; expected some of {list(FALLBACK)}")
    return stages


def first_answer(ev: Evidence, personalised: Scorer) -> tuple[str, np.ndarray]:
    """(the stage that answered, its dense scores over items) along the model's chain; every item
    at NEG when no stage has evidence (the answer is then empty)."""
    generic: dict[str, Scorer] = {ITEM_TO_ITEM: item_to_item, SEGMENT_POPULAR: segment_popular, POPULAR: popular}
    for stage in ev.catalogue.fallback:
        scores = personalised(ev) if stage == PERSONALISED else generic[stage](ev)
        if scores is not None:
            return stage, scores
    return "", np.full(ev.catalogue.n_items, NEG, dtype=np.float32)


def item_to_item(ev: Evidence) -> np.ndarray | None:
    """Co-bought and same-buyer neighbours of the client's items (recency-weighted); only items
    some seed lists score, so this never guesses. None without seeds or neighbours."""
    st = ev.state
    if ev.seeds.size == 0:
        return None
    n = ev.catalogue.n_items
    knn = scatter_neighbours(st.knn_idx, st.knn_score, ev.seeds, n, ev.seed_recency)
    cooc = scatter_neighbours(st.cooc_idx, st.cooc_score, ev.seeds, n, ev.seed_recency)
    listed = (knn > 0) | (cooc > 0)
    if not listed.any():
        return None
    return np.where(listed, minmax(knn) + minmax(cooc), NEG).astype(np.float32)


def _ranked_list(n_items: int, ranked: np.ndarray) -> np.ndarray:
    """A precomputed top list as scores: 1.0 for the first down to 0.5 for the last, NEG elsewhere."""
    scores = np.full(n_items, NEG, dtype=np.float32)
    ranked = ranked[ranked >= 0]
    scores[ranked] = np.linspace(1.0, 0.5, ranked.size, dtype=np.float32)
    return scores


def segment_popular(ev: Evidence) -> np.ndarray | None:
    """The most bought items of the client's ABC segment; None for an unknown client or an
    empty list."""
    if ev.ci is None:
        return None
    ranked = ev.state.segment_popular[ev.state.client_abc[ev.ci]]
    return _ranked_list(ev.catalogue.n_items, ranked) if (ranked >= 0).any() else None


def popular(ev: Evidence) -> np.ndarray | None:
    """The most bought items lately, for everyone; None only for a model without any."""
    ranked = ev.state.global_popular
    return _ranked_list(ev.catalogue.n_items, ranked) if (ranked >= 0).any() else None


def segment_or_popular(ev: Evidence) -> np.ndarray:
    """What the client's segment buys, or what everyone buys lately for an unknown client (a
    signal blended in by service packages, whatever the chain)."""
    ranked = ev.state.global_popular if ev.ci is None else ev.state.segment_popular[ev.state.client_abc[ev.ci]]
    return _ranked_list(ev.catalogue.n_items, ranked)
