"""Client x item evidence: id maps, net quantities and CF confidence on hand-made histories."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from support.factories import make_transactions

from features.matrix import IdIndex, bm25_weight, confidence_matrix


def test_id_index_is_sorted_unique_and_looks_up_vectorised() -> None:
    index = IdIndex.from_ids(["b", "a", "b", "c"])
    assert list(index.ids) == ["a", "b", "c"]
    assert index.ids.dtype == object
    assert len(index) == 3
    positions = index.index_of(["c", "x", "a"])
    assert positions.dtype == np.int64
    assert positions.tolist() == [2, -1, 0]
    assert index.index_of(pd.Series(["b", None], dtype="str")).tolist() == [1, -1]
    assert index.id_of(1) == "b"
    assert index.get("c") == 2
    assert index.get("x") is None


def test_id_index_is_stable_and_rejects_unsorted_ids() -> None:
    assert IdIndex.from_ids(["c", "a"]) == IdIndex.from_ids(iter(["a", "c", "a"]))
    assert hash(IdIndex.from_ids(["c", "a"])) == hash(IdIndex.from_ids(["a", "c"]))
    with pytest.raises(ValueError):
        IdIndex(np.array(["b", "a"], dtype=object))


@pytest.fixture()
def history() -> pd.DataFrame:
    return make_transactions(
        [
            ("c1", "i1", "2024-01-01", "o1", 1.0),
            ("c1", "i1", "2024-01-01", "o1", 2.0),  # same order: one occasion
            ("c1", "i1", "2024-01-11", "o2", 1.0),
            ("c1", "i1", "2024-01-12", "r1", -1.0),  # a return cancels one occasion
            ("c1", "i2", "2024-01-05", "o3", 1.0),
            ("c1", "i2", "2024-01-06", "r2", -3.0),  # fully returned: no evidence
            ("c2", "i1", "2024-01-02", "o4", 4.0),
            ("c2", "i1", "2024-01-03", "o5", 1.0),
            ("c2", "i1", "2024-01-21", "o6", 1.0),
            ("c2", "i2", "2024-01-04", "o7", 5.0),
            ("c9", "i1", "2024-01-04", "o8", 1.0),  # client not in the index
            ("c1", "i9", "2024-01-04", "o9", 1.0),  # item not in the index
        ]
    )


@pytest.fixture()
def clients() -> IdIndex:
    return IdIndex.from_ids(["c1", "c2"])


@pytest.fixture()
def items() -> IdIndex:
    return IdIndex.from_ids(["i1", "i2"])


def test_count_confidence_counts_occasions_minus_returns(history, clients, items) -> None:
    matrix = confidence_matrix(history, clients, items, weighting="count")
    assert isinstance(matrix, sp.csr_matrix)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix.toarray(), [[1.0, 0.0], [3.0, 1.0]])
    assert matrix.nnz == 3


def test_log_confidence(history, clients, items) -> None:
    matrix = confidence_matrix(history, clients, items, weighting="log")
    np.testing.assert_allclose(matrix.toarray(), np.log1p([[1.0, 0.0], [3.0, 1.0]]), rtol=1e-6)


def test_recency_halves_evidence_every_half_life() -> None:
    history = make_transactions(
        [("c1", "i1", "2024-01-01", "o1"), ("c1", "i1", "2024-01-11", "o2"), ("c2", "i1", "2024-01-21", "o3")]
    )
    clients, items = IdIndex.from_ids(["c1", "c2"]), IdIndex.from_ids(["i1"])
    matrix = confidence_matrix(
        history, clients, items, weighting="count", recency_half_life_days=10, now=pd.Timestamp("2024-01-21")
    )
    # c1: ages 20 and 10 days -> 0.25 + 0.5; c2: age 0 -> 1
    np.testing.assert_allclose(matrix.toarray(), [[0.75], [1.0]], rtol=1e-6)
    default_now = confidence_matrix(history, clients, items, weighting="count", recency_half_life_days=10)
    np.testing.assert_allclose(default_now.toarray(), matrix.toarray(), rtol=1e-6)


def test_bm25_matches_the_formula_by_hand() -> None:
    history = make_transactions(
        [
            ("c1", "i1", "2024-01-01", "o1"),
            ("c1", "i1", "2024-01-02", "o2"),
            ("c2", "i2", "2024-01-01", "o3"),
            ("c3", "i2", "2024-01-01", "o4"),
            ("c4", "i3", "2024-01-01", "o5"),
        ]
    )
    clients, items = IdIndex.from_ids(["c1", "c2", "c3", "c4"]), IdIndex.from_ids(["i1", "i2", "i3"])
    matrix = confidence_matrix(history, clients, items, bm25_k1=1.2, bm25_b=0.75).toarray()
    # 4 clients; i1 and i3 bought by 1 client, i2 by 2; row sums 2, 1, 1, 1 (mean 1.25)
    idf_rare, idf_i2 = np.log(4) - np.log(2), np.log(4) - np.log(3)
    norm_c1, norm_other = 0.25 + 0.75 * 2 / 1.25, 0.25 + 0.75 * 1 / 1.25
    expected = np.zeros((4, 3))
    expected[0, 0] = 2 * 2.2 / (1.2 * norm_c1 + 2) * idf_rare
    expected[1, 1] = expected[2, 1] = 1 * 2.2 / (1.2 * norm_other + 1) * idf_i2
    expected[3, 2] = 1 * 2.2 / (1.2 * norm_other + 1) * idf_rare
    np.testing.assert_allclose(matrix, expected, rtol=1e-6)


def test_bm25_agrees_with_implicit() -> None:
    from implicit.nearest_neighbours import bm25_weight as implicit_bm25

    rng = np.random.default_rng(7)
    evidence = sp.random(50, 40, density=0.1, random_state=rng, format="csr") * 5
    evidence.data = np.ceil(evidence.data)
    ours = bm25_weight(evidence, k1=1.2, b=0.75)
    theirs = sp.csr_matrix(implicit_bm25(evidence, K1=1.2, B=0.75))
    np.testing.assert_allclose(ours.toarray(), theirs.toarray(), rtol=1e-9)


def test_bm25_gives_no_confidence_to_an_item_everybody_bought() -> None:
    history = make_transactions(
        [("c1", "i1", "2024-01-01"), ("c2", "i1", "2024-01-01"), ("c3", "i1", "2024-01-01"), ("c3", "i2", "2024-01-01")]
    )
    clients = IdIndex.from_ids(["c1", "c2", "c3"])
    matrix = confidence_matrix(history, clients, IdIndex.from_ids(["i1", "i2"]))
    assert matrix.nnz == 1  # idf of i1 = log(3) - log(4) < 0, floored to 0
    assert matrix[2, 1] > 0
    assert matrix.data.min() > 0


def test_unknown_weighting_is_a_configuration_error(history, clients, items) -> None:
    with pytest.raises(ValueError, match="weighting"):
        confidence_matrix(history, clients, items, weighting="tfidf")


def test_codes_computed_once_give_the_same_matrix(history, clients, items) -> None:
    """A caller that indexed the lines once (training's TrainContext) passes the codes instead."""
    codes = (clients.index_of(history["client_id"]), items.index_of(history["item_id"]))
    for weighting in ("count", "log", "bm25"):
        np.testing.assert_array_equal(confidence_matrix(history, clients, items, weighting=weighting, codes=codes).toarray(),
                                      confidence_matrix(history, clients, items, weighting=weighting).toarray())
    with pytest.raises(ValueError, match="one client and one item position per line"):
        confidence_matrix(history, clients, items, codes=(codes[0][:1], codes[1][:1]))
