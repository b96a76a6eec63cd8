"""Per-client candidate lists: each known client's exact ranking, computed at training time.

Why: a client's answer then needs no pass over the catalogue. The request only drops what it
excludes from the stored list (`CandidateLists.read`); the exact path remains for what was not
precomputed: unknown clients, just-bought items, a category filter, long lists. The lists live
in the model's arrays (`ModelState.extras["cand_<kind>"]`, `..._score`, `..._anchor`, `..._conf`)
and `meta["candidates"]` says how deep and for which kinds. `training.candidates` computes them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from scoring.catalogue import Catalogue
from scoring.evidence import Evidence
from scoring.kinds import REGISTRY, Ranked
from scoring.state import ModelState

#: Kinds whose ranking for each known client can be computed at training time, and how deep.
#: (Replenishment reads the client's own items only: its exact path never passes over the catalogue.)
CANDIDATE_KINDS = ("cross_sell", "upsell", "service_package", "next_basket")
CANDIDATES = 50


def candidate_kinds(catalogue: Catalogue) -> list[str]:
    """The kinds this model precomputes: business packages are scored from their members' dense
    scores, so with a packages file service packages take the exact path only."""
    return [k for k in CANDIDATE_KINDS if k != "service_package" or catalogue.n_packages == 0]


def rank_candidates(catalogue: Catalogue, weights: Mapping[str, float], clients: range,
                    size: int = CANDIDATES) -> dict[str, dict[str, np.ndarray]]:
    """The exact `size`-deep rankings of `clients` for every candidate kind: {kind: {"items":
    indices -1 padded, "score": ..., and for anchored kinds "anchor", "conf": each item's reason
    anchor}}. One evidence per client serves every kind."""
    st = catalogue.state
    empty = np.empty(0, dtype=np.int64)
    n = len(clients)
    out: dict[str, dict[str, np.ndarray]] = {}
    for kind in candidate_kinds(catalogue):
        out[kind] = {"items": np.full((n, size), -1, dtype=np.int32), "score": np.zeros((n, size), dtype=np.float32)}
        if REGISTRY[kind].anchored:
            out[kind].update(anchor=np.full((n, size), -1, dtype=np.int32), conf=np.zeros((n, size), dtype=np.float32))
    with threadpool_limits(1, "blas"):  # one small product per client: threads only cost
        for row, ci in enumerate(clients):
            ev = Evidence(catalogue, weights, ci, empty)
            for kind, arrays in out.items():
                model = REGISTRY[kind]
                ranked = model.rank(ev, st.item_in_stock.copy(), size)
                arrays["items"][row, : ranked.items.size] = ranked.items
                arrays["score"][row, : ranked.items.size] = ranked.scores
                if model.anchored:
                    anchors, confs = model.anchors(ev, ranked.items)
                    arrays["anchor"][row, : ranked.items.size] = anchors
                    arrays["conf"][row, : ranked.items.size] = confs
    return out


class CandidateLists:
    """The stored lists of one model, by kind: (items, scores, anchors or None, confs or None)."""

    def __init__(self, state: ModelState | None = None) -> None:
        self.lists: dict[str, tuple[np.ndarray, ...]] = {}
        if state is None:
            return
        extras = state.extras
        self.lists = {kind: (extras[f"cand_{kind}"], extras[f"cand_{kind}_score"],
                             extras.get(f"cand_{kind}_anchor"), extras.get(f"cand_{kind}_conf"))
                      for kind in state.meta.get("candidates", {}).get("kinds", [])
                      if f"cand_{kind}" in extras}

    @staticmethod
    def store(state: ModelState, ranked: dict[str, dict[str, np.ndarray]], size: int) -> None:
        """Keep `rank_candidates`' output for every known client in `state` (ValueError on a shape
        that is not one `size`-deep row per client)."""
        expected = (len(state.clients), size)
        for kind, arrays in ranked.items():
            for part, array in arrays.items():
                if array.shape != expected:
                    raise ValueError(f"{kind} candidate {part} have shape {array.shape}, expected {expected}")
                state.extras[f"cand_{kind}" if part == "items" else f"cand_{kind}_{part}"] = array
        state.meta["candidates"] = {"size": size, "kinds": sorted(ranked)}

    def read(self, catalogue: Catalogue, kind: str, ci: int | None, recent: np.ndarray, category: str | None,
             exclude: Sequence[str], limit: int) -> Ranked | None:
        """The stored ranking less the excluded items, or None where only the exact path is right.

        Dropping items keeps a capped list capped, so the answer equals the exact one except when
        an excluded item had pushed another of its subcategory past the diversity cap; the
        benchmark measures that loss (`training.candidates.candidate_recall`).
        """
        stored = self.lists.get(kind)
        if stored is None or ci is None or recent.size or category:
            return None
        keep = stored[0][ci] >= 0
        full = bool(keep.all())  # a short list means the exact ranking had no more to give
        if exclude:  # an excluded item takes its product group along (`Catalogue.allowed`)
            excluded = catalogue.item_index(exclude)
            if excluded.size:  # np.isin's answer for a few groups, without its setup (a third of this read)
                row_groups = catalogue.groups[np.maximum(stored[0][ci], 0)]
                keep &= ~(row_groups[:, None] == catalogue.groups[excluded][None, :]).any(axis=1)
        if keep.sum() < limit and full:
            return None
        chosen = np.flatnonzero(keep)[:limit]
        row, values, anchors, confs = (None if a is None else a[ci][chosen] for a in stored)
        assert row is not None and values is not None
        return Ranked(row.astype(np.int64), values, None,
                      None if anchors is None or confs is None else (anchors.astype(np.int64), confs))
