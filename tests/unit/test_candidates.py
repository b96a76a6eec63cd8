"""Answers served from precomputed candidate lists equal the exact answers, on a real slice."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.loader import load_dataset
from scoring.ranking import member_of, neighbour_sums, scatter_neighbours, top_indices
from scoring.recommender import Recommender
from training.candidates import candidate_recall, precompute
from training.config import TrainConfig
from training.context import TrainContext
from training.fit import fit_recommender

CONFIG = TrainConfig(als_factors=(16,), als_iterations=8, threads=1)
SIZE = 30


@pytest.fixture(scope="module")
def served(slice_dir: Path) -> Recommender:
    ds = load_dataset(slice_dir)
    rec = fit_recommender(TrainContext.build(ds.transactions, ds.items, ds.packages), CONFIG)
    precompute(rec, size=SIZE, workers=2)  # the forked path, as `train` runs it on two cores
    return rec


def test_every_client_gets_the_exact_answer(served: Recommender) -> None:
    exact = served.without_candidates()
    kinds = served.candidate_kinds()
    # the slice has the demo packages, scored from their members' dense scores: never precomputed
    assert served.catalogue.n_packages > 0 and set(kinds) == {"cross_sell", "upsell", "next_basket"}
    for client in served.client_ids[:80]:
        for kind in kinds:
            assert served._from_candidates(kind, served._client_pos[client], np.empty(0, np.int64), None, (), 10) \
                is not None, (client, kind)
            answer = exact.suggest(str(client), kind, 10)
            assert answer, (client, kind)
            assert served.suggest(str(client), kind, 10) == answer, (client, kind)


def test_recall_with_exclusions_stays_above_the_target(served: Recommender) -> None:
    recall = candidate_recall(served, k=10, clients=60, exclude=3)
    for kind, figures in recall.items():
        assert figures["recall"] >= 0.98, (kind, figures)
        assert figures["requests"] == 120


def test_what_the_lists_cannot_answer_takes_the_exact_path(served: Recommender) -> None:
    client = str(served.client_ids[0])
    ci = served._client_pos[client]
    item = str(served.item_ids[served.state.hist_indices[served.state.hist_indptr[ci]]])
    empty = np.empty(0, np.int64)
    assert served._from_candidates("cross_sell", ci, served.item_index([item]), None, (), 10) is None
    assert served._from_candidates("cross_sell", ci, empty, "DAIRY", (), 10) is None
    assert served._from_candidates("cross_sell", ci, empty, None, (), SIZE + 1) is None
    assert served._from_candidates("cross_sell", None, empty, None, (), 10) is None
    exact = served.without_candidates()
    long = served.suggest(client, "cross_sell", SIZE + 5)
    assert len(long) == SIZE + 5 and long == exact.suggest(client, "cross_sell", SIZE + 5)


def test_candidates_survive_save_and_load(served: Recommender, tmp_path: Path) -> None:
    served.save(tmp_path / "m")
    again = Recommender.load(tmp_path / "m")
    assert again.meta["candidates"] == {"size": SIZE, "kinds": sorted(served.candidate_kinds())}
    client = str(served.client_ids[3])
    assert again._from_candidates("upsell", 3, np.empty(0, np.int64), None, (), 10) is not None
    assert again.suggest(client, "upsell", 10) == served.suggest(client, "upsell", 10)


def test_top_n_is_a_prefix_of_a_deeper_top_n_even_through_ties() -> None:
    scores = np.array([0.5, 0.9, 0.5, 0.5, -np.inf, 0.7, 0.5, 0.5], dtype=np.float32)
    deep = top_indices(scores, 6).tolist()
    assert deep == [1, 5, 0, 2, 3, 6]
    for n in range(1, 6):
        assert top_indices(scores, n).tolist() == deep[:n]


def test_sparse_helpers_agree_with_the_dense_scatter() -> None:
    rng = np.random.default_rng(0)
    idx = rng.integers(-1, 40, size=(40, 6)).astype(np.int32)
    val = rng.random((40, 6)).astype(np.float32)
    seeds = np.array([3, 7, 11, 19])
    targets = np.array([5, 0, 33, 12])
    dense = scatter_neighbours(idx, val, seeds, 40)
    assert neighbour_sums(idx, val, seeds, targets) == pytest.approx(dense[targets], rel=1e-5)
    assert member_of(idx, targets, 40).tolist() == np.isin(idx, targets).tolist()
    assert not member_of(np.array([-1]), np.array([39]), 40)[0]  # padding is never a member
