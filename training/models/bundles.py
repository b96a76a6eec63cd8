"""Bundle affinity: what is bought together, as item -> items lists and mined 2-3 item bundles.

Rare pairs must not dominate (plain lift ranks two items bought once, together, above everything),
so neighbours are ranked by shrunk confidence and bundles must clear both a minimum basket count
and a minimum lift shrunk towards 1. Non-merchandise lines (fees, coupons) are left out of the
baskets before anything is counted (`training.fit`), so they are nobody's neighbour.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.baskets import Cooccurrence, cooccurrence
from training.models.toplists import top_per_row

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Neighbours:
    idx: np.ndarray     # int32 n_items x M
    score: np.ndarray   # float32 shrunk confidence
    conf: np.ndarray    # float32 plain confidence, for the reason text

    @classmethod
    def empty(cls, n_items: int) -> Neighbours:
        """No neighbour for any item (a model that answers no kind reading them)."""
        return cls(np.full((n_items, 1), -1, dtype=np.int32), np.zeros((n_items, 1), dtype=np.float32),
                   np.zeros((n_items, 1), dtype=np.float32))


#: Baskets a pair must share to count as bought together at all.
MIN_PAIR_BASKETS = 2


def pair_counts(baskets: sp.csr_matrix) -> Cooccurrence:
    """Co-occurrence of item pairs seen in at least MIN_PAIR_BASKETS baskets."""
    return cooccurrence(baskets, min_count=MIN_PAIR_BASKETS)


def neighbour_lists(co: Cooccurrence, neighbours: int, shrinkage: float) -> Neighbours:
    """Top `neighbours` items per item by shrunk confidence, with their plain confidence."""
    idx, score = top_per_row(co.shrunk_confidence(shrinkage), neighbours)
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1]).reshape(idx.shape)
    n_i = co.item_baskets[rows].astype(np.float32)
    conf = np.where(idx >= 0, score * (n_i + shrinkage) / np.maximum(n_i, 1), 0.0).astype(np.float32)
    return Neighbours(idx, score.astype(np.float32), conf)


def bought_with_services(co: Cooccurrence, is_service: np.ndarray, neighbours: int,
                         shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    """Per item, the services most often taken with it (shrunk confidence), so services are not
    crowded out of the general neighbour lists by groceries bought a hundred times more often."""
    conf = co.shrunk_confidence(shrinkage).tocsc()
    keep = sp.diags(is_service.astype(np.float32))
    return top_per_row(sp.csr_matrix(conf @ keep), neighbours)


@dataclass(frozen=True)
class Bundles:
    items: np.ndarray    # int32 n x 3, -1 padded
    baskets: np.ndarray  # int32 baskets holding the whole bundle
    support: np.ndarray  # float32 share of baskets
    lift: np.ndarray     # float32 observed / expected under independence

    @classmethod
    def empty(cls) -> Bundles:
        return cls(np.empty((0, 3), dtype=np.int32), np.empty(0, np.int32), np.empty(0, np.float32),
                   np.empty(0, np.float32))


def shrunk_lift(together: np.ndarray, expected: np.ndarray, prior: float) -> np.ndarray:
    """Lift pulled towards 1 for small counts: (observed + prior) / (expected + prior).

    Plain lift divides by the chance of a coincidence, which for two rare items is tiny: three
    shared baskets then read "2161x more than chance". Adding `prior` pseudo-baskets to both
    sides leaves a well-supported lift almost unchanged and caps a three-basket one near 1.
    """
    return (together + prior) / (expected + prior)


def mine_bundles(baskets: sp.csr_matrix, co: Cooccurrence, min_baskets: int, min_lift: float,
                 max_pairs: int = 300, max_triples: int = 100, *, groups: np.ndarray | None = None,
                 offerable: np.ndarray | None = None, prior: float = 10.0) -> Bundles:
    """Pairs and triples bought together far more than chance, that people would buy together.

    Every member is `offerable` (merchandise, not a fee or a coupon) and from another product
    `groups` than the others (two sizes of one soda are no bundle); the bundle sells in at least
    `min_baskets` baskets and its shrunk lift (`shrunk_lift`) clears `min_lift`. Pairs come from
    the co-occurrence counts; each strong pair is then extended by the item most often bought
    with both, kept when the triple itself clears the thresholds.
    """
    n_items = baskets.shape[1]
    groups = np.arange(n_items) if groups is None else np.asarray(groups)
    offerable = np.ones(n_items, bool) if offerable is None else np.asarray(offerable, bool)
    n = max(co.n_baskets, 1)
    p = co.item_baskets / n
    counts = sp.triu(co.counts, k=1).tocoo()
    a, b, c = counts.row, counts.col, counts.data
    keep = (c >= min_baskets) & offerable[a] & offerable[b] & (groups[a] != groups[b])
    a, b, c = a[keep], b[keep], c[keep]
    lift = shrunk_lift(c, n * p[a] * p[b], prior)
    ok = lift >= min_lift
    a, b, c, lift = a[ok], b[ok], c[ok], lift[ok]
    order = np.argsort(-(c * np.log(lift)), kind="stable")[:max_pairs]
    a, b, c, lift = a[order], b[order], c[order], lift[order]
    rows = [(int(x), int(y), -1, int(cnt), float(lf)) for x, y, cnt, lf in zip(a, b, c, lift, strict=True)]
    csc = baskets.tocsc()
    for x, y in zip(a[:max_triples], b[:max_triples], strict=True):
        both = np.intersect1d(csc.indices[csc.indptr[x]:csc.indptr[x + 1]], csc.indices[csc.indptr[y]:csc.indptr[y + 1]])
        if both.size < min_baskets:
            continue
        third = np.asarray(baskets[both].sum(axis=0)).ravel()
        third[~offerable | (groups == groups[x]) | (groups == groups[y])] = 0
        z = int(np.argmax(third))
        cnt = int(third[z])
        if cnt < min_baskets:
            continue
        tl = float(shrunk_lift(np.float64(cnt), n * p[x] * p[y] * p[z], prior))
        if tl >= min_lift:
            rows.append((int(x), int(y), z, cnt, tl))
    if not rows:
        return Bundles.empty()
    frame = pd.DataFrame(rows, columns=["a", "b", "c", "baskets", "lift"])
    key = np.sort(frame[["a", "b", "c"]].to_numpy(), axis=1)
    frame = frame[~pd.DataFrame(key).duplicated().to_numpy()].reset_index(drop=True)
    log.info("mined %d bundles (%d triples)", len(frame), int((frame["c"] >= 0).sum()))
    return Bundles(frame[["a", "b", "c"]].to_numpy(np.int32), frame["baskets"].to_numpy(np.int32),
                   (frame["baskets"] / n).to_numpy(np.float32), frame["lift"].to_numpy(np.float32))


def bundle_prices(items: np.ndarray, unit_price: np.ndarray, discount: float) -> tuple[np.ndarray, np.ndarray]:
    """(full price, suggested bundle price) = sum of unit prices, less `discount`."""
    valid = items >= 0
    prices = np.where(valid, unit_price[np.where(valid, items, 0)], 0.0)
    full = np.nansum(prices, axis=1).astype(np.float32)
    return full, (full * (1.0 - discount)).astype(np.float32)
