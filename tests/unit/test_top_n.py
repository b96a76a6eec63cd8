"""The project's one top-n (`scoring.ranking.top_indices` and its batch form) and the sparse
neighbour lists cut with it (`training.models.toplists`): best first, ties to the lower index,
non-finite never picked, a shallow list a prefix of a deeper one."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from scoring.ranking import top_indices, top_indices_per_row
from training.models.toplists import keep_top_per_row, top_per_row


def test_top_indices_per_row_orders_best_first_and_never_returns_forbidden_items() -> None:
    scores = np.array([[0.1, 0.5, -np.inf, 0.3], [-np.inf] * 4], dtype=np.float32)
    np.testing.assert_array_equal(top_indices_per_row(scores, 3), [[1, 3, 0], [-1, -1, -1]])
    np.testing.assert_array_equal(top_indices_per_row(scores[:1], 5), [[1, 3, 0, -1, -1]])
    np.testing.assert_array_equal(top_indices_per_row(np.array([[np.nan, 1.0, np.inf]]), 3), [[1, -1, -1]])


def test_ties_go_to_the_lower_index_so_a_short_list_is_a_prefix_of_a_long_one() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, size=(20, 40)).astype(np.float32)  # many ties at every boundary
    deep = top_indices_per_row(scores, 30)
    for n in range(1, 30):
        np.testing.assert_array_equal(top_indices_per_row(scores, n), deep[:, :n])
    for row in range(scores.shape[0]):
        expected = np.lexsort((np.arange(40), -scores[row]))[:30]
        np.testing.assert_array_equal(deep[row], expected)
        np.testing.assert_array_equal(top_indices(scores[row], 30), expected)


def _confidence() -> sp.csr_matrix:
    counts = np.array([[0, 2, 2, 0], [2, 0, 1, 1], [2, 1, 0, 0], [0, 1, 0, 0]], dtype=np.float32)
    return sp.csr_matrix(counts / np.array([3, 3, 2, 1], dtype=np.float32)[:, None])


def test_top_per_row_descending_with_ties_to_lower_column() -> None:
    columns, values = top_per_row(_confidence(), 2)
    assert columns.dtype == np.int32
    assert values.dtype == np.float32
    np.testing.assert_array_equal(columns, [[1, 2], [0, 2], [0, 1], [1, -1]])
    np.testing.assert_allclose(values, [[2 / 3, 2 / 3], [2 / 3, 1 / 3], [1, 1 / 2], [1, 0]], rtol=1e-6)
    np.testing.assert_array_equal(top_per_row(_confidence(), 1)[0][:, 0], columns[:, 0])


def test_top_per_row_pads_empty_rows_and_rejects_k_below_one() -> None:
    matrix = sp.csr_matrix(np.array([[0, 0, 0], [0.5, 0, 2.0]], dtype=np.float32))
    columns, values = top_per_row(matrix, 3)
    np.testing.assert_array_equal(columns, [[-1, -1, -1], [2, 0, -1]])
    np.testing.assert_array_equal(values, [[0, 0, 0], [2.0, 0.5, 0]])
    with pytest.raises(ValueError):
        top_per_row(matrix, 0)


def test_keep_top_per_row_cuts_long_rows_only_and_breaks_ties_by_column() -> None:
    matrix = sp.csr_matrix(np.array([[0.1, 0.5, 0.3], [1.0, 0.0, 0.0], [0.2, 0.2, 0.2]]))
    np.testing.assert_allclose(keep_top_per_row(matrix, 2).toarray(),
                               [[0.0, 0.5, 0.3], [1.0, 0.0, 0.0], [0.2, 0.2, 0.0]])
    # unsorted column indices (as a product may leave them) give the same lists
    shuffled = sp.csr_matrix((np.array([0.2, 0.2, 0.2]), np.array([2, 0, 1]), np.array([0, 3])), shape=(1, 3))
    np.testing.assert_allclose(keep_top_per_row(shuffled, 1).toarray(), [[0.2, 0.0, 0.0]])
