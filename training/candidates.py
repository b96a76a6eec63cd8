"""Per-client candidate lists, computed when a model is trained, and the accuracy they cost.

Why: answering a known client by scoring every item costs 1-3 ms at 68k items and grows with the
catalogue. The registered model instead carries each known client's exact ranking for the heavy
kinds, `CANDIDATES` deep; a request drops what it excludes and reads the top (0.1-0.4 ms, no pass
over the catalogue). Requests the lists cannot answer exactly (unknown clients, just-bought items,
a category filter, a list longer than what is left) take the exact path. The one loss: when an
excluded item had pushed another item of its subcategory past the diversity cap, the exact answer
would now take that item and the stored list does not hold it. `candidate_recall` measures it.
"""
from __future__ import annotations

import logging
import multiprocessing
import time
from typing import Any

import numpy as np
from tqdm import tqdm

from scoring.recommender import CANDIDATES, Recommender

log = logging.getLogger(__name__)
CHUNK = 128

_shared: Recommender | None = None  # the model a forked worker ranks (inherited, not pickled)


def _rank_chunk(chunk: tuple[int, int, int]) -> tuple[int, dict[str, dict[str, np.ndarray]], int]:
    """(first client, rankings, clients) of the clients lo..hi, `size` deep."""
    lo, hi, size = chunk
    assert _shared is not None
    return lo, _shared.rank_candidates(range(lo, hi), size), hi - lo


def precompute(rec: Recommender, size: int = CANDIDATES, workers: int = 1) -> float:
    """Rank every known client of `rec` for its candidate kinds and store the lists in the model.

    `workers` > 1 forks that many processes (each reads the parent's arrays copy-on-write; only
    the small result arrays travel back). Returns the seconds taken.
    """
    global _shared
    started = time.perf_counter()
    n = len(rec.client_ids)
    kinds = rec.candidate_kinds()
    shapes = rec.rank_candidates(range(0), size)  # the arrays each kind stores, empty
    merged = {k: {name: np.full((n, size), -1 if a.dtype.kind == "i" else 0, dtype=a.dtype) for name, a in arrays.items()}
              for k, arrays in shapes.items()}
    chunks = [(lo, min(lo + CHUNK, n), size) for lo in range(0, n, CHUNK)]
    bar = tqdm(total=n, desc="candidates", unit="client", mininterval=2.0, leave=False)
    _shared = rec
    try:
        if workers > 1 and n > CHUNK and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                results = pool.imap_unordered(_rank_chunk, chunks)
                _merge(results, merged, bar)
        else:
            _merge(map(_rank_chunk, chunks), merged, bar)
    finally:
        _shared = None
        bar.close()
    rec.set_candidates(merged, size)
    seconds = time.perf_counter() - started
    log.info("candidates: %d clients x %s, %d deep, in %.1fs", n, "/".join(kinds), size, seconds)
    return seconds


def _merge(results: Any, merged: dict[str, dict[str, np.ndarray]], bar: tqdm) -> None:
    for lo, part, count in results:
        for kind, arrays in part.items():
            for name, array in arrays.items():
                merged[kind][name][lo: lo + count] = array
        bar.update(count)


def candidate_recall(rec: Recommender, k: int = 10, clients: int = 500, exclude: int = 3,
                     seed: int = 0) -> dict[str, dict[str, float]]:
    """Recall@k of the answers served from candidates against the exact path, per kind.

    Each sampled known client is asked twice: as is, and excluding `exclude` items drawn from its
    exact top 2k (the "already shown" filter a CRM screen sends). Also reports how often the lists
    could not answer and the exact path ran instead (`exact_share`).
    """
    exact = rec.without_candidates()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(rec.client_ids), size=min(clients, len(rec.client_ids)), replace=False)
    out: dict[str, dict[str, float]] = {}
    for kind in rec.candidate_kinds():
        hits = total = fallbacks = asked = 0
        for ci in chosen:
            client = str(rec.client_ids[ci])
            wide = [s["item_id"] for s in exact.suggest(client, kind, 2 * k, explain=False)]
            drop = list(rng.choice(wide, size=min(exclude, len(wide)), replace=False)) if wide else []
            for excluded in ([], drop):
                want = {s["item_id"] for s in exact.suggest(client, kind, k, exclude=excluded, explain=False)}
                got = {s["item_id"] for s in rec.suggest(client, kind, k, exclude=excluded, explain=False)}
                hits += len(want & got)
                total += len(want)
                asked += 1
                fallbacks += rec._from_candidates(kind, int(ci), np.empty(0, np.int64), None, excluded, k) is None
        out[kind] = {"recall": round(hits / total, 4) if total else 1.0, "exact_share": round(fallbacks / asked, 4),
                     "requests": asked}
    return out
