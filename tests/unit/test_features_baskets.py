"""Baskets and co-occurrence on four hand-made baskets whose measures are worked out by hand.

Baskets: o1 {a, b, c}, o2 {a, b}, o3 {a, c}, o4 {b, d}. Items a, b, c, d sit in 3, 3, 2, 1 baskets;
pairs: ab 2, ac 2, bc 1, bd 1.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from support.factories import make_transactions

from features.baskets import Cooccurrence, basket_matrix, cooccurrence
from features.matrix import IdIndex

ITEMS = IdIndex.from_ids(["a", "b", "c", "d"])


@pytest.fixture()
def baskets() -> tuple[sp.csr_matrix, np.ndarray]:
    history = make_transactions(
        [
            ("c1", "a", "2024-01-01", "o1", 2.0),
            ("c1", "a", "2024-01-01", "o1", 1.0),  # the same item twice is still one basket entry
            ("c1", "b", "2024-01-01", "o1"),
            ("c1", "c", "2024-01-01", "o1"),
            ("c1", "z", "2024-01-01", "o1"),  # not in the item index
            ("c2", "a", "2024-01-02", "o2"),
            ("c2", "b", "2024-01-02", "o2"),
            ("c3", "c", "2024-01-03", "o3"),
            ("c3", "a", "2024-01-03", "o3"),
            ("c3", "d", "2024-01-03", "o3", -1.0),  # a return is not part of the basket
            ("c4", "b", "2024-01-04", "o4"),
            ("c4", "d", "2024-01-04", "o4"),
            ("c4", "d", "2024-01-05", "o5", -1.0),  # a basket of returns only is dropped
            ("c5", "z", "2024-01-05", "o6"),  # a basket of unknown items only is dropped
        ]
    )
    return basket_matrix(history, ITEMS)


@pytest.fixture()
def together(baskets) -> Cooccurrence:
    return cooccurrence(baskets[0])


def test_basket_matrix_is_binary_positive_lines_by_sorted_order(baskets) -> None:
    matrix, orders = baskets
    assert matrix.dtype == np.float32
    assert list(orders) == ["o1", "o2", "o3", "o4"]
    np.testing.assert_array_equal(
        matrix.toarray(), [[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1]]
    )


def test_cooccurrence_counts_pairs_without_the_diagonal(together) -> None:
    assert together.n_baskets == 4
    assert together.item_baskets.dtype == np.float64
    np.testing.assert_array_equal(together.item_baskets, [3, 3, 2, 1])
    assert together.counts.dtype == np.float32
    np.testing.assert_array_equal(
        together.counts.toarray(), [[0, 2, 2, 0], [2, 0, 1, 1], [2, 1, 0, 0], [0, 1, 0, 0]]
    )
    assert together.counts.diagonal().sum() == 0
    assert together.counts.nnz == 8  # no explicit zeros stored


def test_min_count_drops_rare_pairs_but_keeps_item_counts(baskets) -> None:
    frequent = cooccurrence(baskets[0], min_count=2)
    np.testing.assert_array_equal(
        frequent.counts.toarray(), [[0, 2, 2, 0], [2, 0, 0, 0], [2, 0, 0, 0], [0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(frequent.item_baskets, [3, 3, 2, 1])


def test_support(together) -> None:
    np.testing.assert_allclose(
        together.support().toarray(),
        [[0, 0.5, 0.5, 0], [0.5, 0, 0.25, 0.25], [0.5, 0.25, 0, 0], [0, 0.25, 0, 0]],
    )


def test_confidence_is_conditional_on_the_row_item(together) -> None:
    np.testing.assert_allclose(
        together.confidence().toarray(),
        [[0, 2 / 3, 2 / 3, 0], [2 / 3, 0, 1 / 3, 1 / 3], [1, 1 / 2, 0, 0], [0, 1, 0, 0]],
        rtol=1e-6,
    )


def test_lift_divides_by_the_base_rate_of_the_suggestion(together) -> None:
    lift = together.lift()
    assert lift.dtype == np.float32
    np.testing.assert_allclose(
        lift.toarray(),
        [[0, 8 / 9, 4 / 3, 0], [8 / 9, 0, 2 / 3, 4 / 3], [4 / 3, 2 / 3, 0, 0], [0, 4 / 3, 0, 0]],
        rtol=1e-6,
    )


def test_shrunk_confidence_damps_rare_antecedents(together) -> None:
    plain = together.confidence()
    shrunk = together.shrunk_confidence(shrinkage=2.0)
    # d (1 basket) -> b and c (2 baskets) -> a both have confidence 1; shrinkage prefers c -> a
    assert plain[3, 1] == plain[2, 0] == pytest.approx(1.0)
    assert shrunk[3, 1] == pytest.approx(1 / 3)
    assert shrunk[2, 0] == pytest.approx(2 / 4)
    assert shrunk[0, 1] == pytest.approx(2 / 5)
    np.testing.assert_allclose(together.shrunk_confidence(0.0).toarray(), plain.toarray(), rtol=1e-6)
