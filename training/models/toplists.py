"""The strongest entries of each row of a sparse item x item matrix: the neighbour lists models keep.

A best seller co-occurs with almost everything; the strongest few neighbours carry the signal,
and storing or summing thousands of weak ones costs time and adds noise. Each row is cut with
`scoring.ranking.top_indices`, the project's one top-n, so a stored list follows the same tie
rule as every answer (ties to the lower column: lists are reproducible, and a shorter list is a
prefix of a longer one). Only rows longer than the cut are partitioned: O(nnz) overall, several
times faster than one global sort of all entries. A cut row never keeps a non-finite entry.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from scoring.ranking import top_indices


def _sorted_csr(matrix: sp.spmatrix) -> sp.csr_matrix:
    """A canonical csr copy: duplicates summed, column indices ascending within each row."""
    matrix = sp.csr_matrix(matrix, copy=True)
    matrix.sum_duplicates()  # also sorts the indices: a row's position order is its column order
    return matrix


def top_per_row(matrix: sp.spmatrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the column indices (int32, n_rows x k, -1 padded) and values (float32, 0 padded)
    of its k largest entries, descending."""
    if k < 1:
        raise ValueError("k must be at least 1")
    matrix = _sorted_csr(matrix)
    columns = np.full((matrix.shape[0], k), -1, dtype=np.int32)
    values = np.zeros((matrix.shape[0], k), dtype=np.float32)
    indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
    for row in np.flatnonzero(np.diff(indptr)):
        lo, hi = indptr[row], indptr[row + 1]
        best = top_indices(data[lo:hi], k)
        columns[row, : best.size] = indices[lo:hi][best]
        values[row, : best.size] = data[lo:hi][best]
    return columns, values


def keep_top_per_row(matrix: sp.spmatrix, n: int) -> sp.csr_matrix:
    """The n largest entries of each row, as a csr of the same shape (other rows unchanged)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    matrix = _sorted_csr(matrix)
    counts = np.diff(matrix.indptr)
    if counts.max(initial=0) <= n:
        return matrix
    keep = np.ones(matrix.nnz, dtype=bool)
    for row in np.flatnonzero(counts > n):
        lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
        keep[lo:hi] = False
        keep[lo + top_indices(matrix.data[lo:hi], n)] = True
    row_of = np.repeat(np.arange(matrix.shape[0]), counts)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row_of[keep], minlength=matrix.shape[0]))])
    return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)
