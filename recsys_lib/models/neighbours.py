"""Neighbourhood collaborative filtering with sparse matrices (notebook 03)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_lib.checks import check_float, check_int
from recsys_lib.models.base import Recommender


def cosine_similarity(matrix: sp.csr_matrix, shrinkage: float = 0.0) -> sp.csr_matrix:
    """Cosine similarity between the columns of a sparse matrix, with optional shrinkage.

    sim(i, j) = <x_i, x_j> / (||x_i|| ||x_j|| + shrinkage); the shrinkage term pulls the
    similarity of pairs with little support towards 0. The diagonal is set to 0.

    Args:
        matrix: (n_rows, n_cols) sparse matrix.
        shrinkage: >= 0.

    Returns:
        (n_cols, n_cols) CSR similarity matrix.

    Explained in notebook 03.
    """
    shrinkage = check_float("shrinkage", shrinkage, strict=False)
    matrix = sp.csc_matrix(matrix, dtype=np.float64)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    dot = (matrix.T @ matrix).tocoo()
    denom = norms[dot.row] * norms[dot.col] + shrinkage
    values = np.divide(dot.data, denom, out=np.zeros_like(dot.data), where=denom > 0)
    sim = sp.csr_matrix((values, (dot.row, dot.col)), shape=dot.shape)
    sim.setdiag(0.0)
    sim.eliminate_zeros()
    return sim


def keep_top_neighbours(sim: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row of a similarity matrix (others set to 0).

    Explained in notebook 03.
    """
    k = check_int("k", k)
    sim = sim.tocsr()
    sim.sort_indices()
    rows = np.repeat(np.arange(sim.shape[0]), np.diff(sim.indptr))
    order = np.lexsort((-sim.data, rows))  # by row, then by similarity, largest first
    rank = np.arange(len(order)) - sim.indptr[rows[order]]
    keep = order[rank < k]
    return sp.csr_matrix((sim.data[keep], (rows[keep], sim.indices[keep])), shape=sim.shape)


def top_k_cosine_similarity(matrix: sp.csr_matrix, k: int, shrinkage: float = 0.0,
                            block_size: int = 1024) -> sp.csr_matrix:
    """The k largest cosine similarities of each column, computed block by block.

    Equal to ``keep_top_neighbours(cosine_similarity(matrix, shrinkage), k)`` (up to ties and
    zeros), but never holds the full n_cols x n_cols matrix: each block of columns is a dense
    (block_size, n_cols) product, pruned to k entries per row at once.

    Explained in notebook 03.
    """
    k, shrinkage = check_int("k", k), check_float("shrinkage", shrinkage, strict=False)
    block_size = check_int("block_size", block_size)
    csc = sp.csc_matrix(matrix, dtype=np.float64)
    norms = np.sqrt(np.asarray(csc.multiply(csc).sum(axis=0)).ravel())
    n = csc.shape[1]
    k = min(k, n - 1) if n > 1 else 1
    # a dense float32 product (multi-threaded BLAS) when the matrix fits easily in memory
    dense = csc.toarray().astype(np.float32) if csc.shape[0] * n <= 50_000_000 else None
    rows, cols, vals = [], [], []
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        if dense is not None:
            dot = (dense[:, start:stop].T @ dense).astype(np.float64)  # (block, n)
        else:
            dot = (csc[:, start:stop].T @ csc).toarray()
        denom = np.outer(norms[start:stop], norms) + shrinkage
        sim = np.divide(dot, denom, out=np.zeros_like(dot), where=denom > 0)
        sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        values = np.take_along_axis(sim, top, axis=1)
        keep = values > 0
        rows.append(np.repeat(np.arange(start, stop), keep.sum(axis=1)))
        cols.append(top[keep])
        vals.append(values[keep])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n, n))


class ItemKNNRecommender(Recommender):
    """Item-based kNN: score(u, j) = sum of sim(i, j) over the items i the user interacted with.

    Args:
        k: neighbours kept per item (>= 1).
        shrinkage: shrinkage of the cosine similarity (>= 0).

    Raises:
        ArgumentError: a bad ``k`` or ``shrinkage``.

    Explained in notebook 03.
    """

    name = "item_knn"

    def __init__(self, k: int = 100, shrinkage: float = 10.0) -> None:
        self.k = check_int("k", k)
        self.shrinkage = check_float("shrinkage", shrinkage, strict=False)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.similarity_ = top_k_cosine_similarity(matrix, self.k, self.shrinkage)

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        return (self.matrix_[user_idx] @ self.similarity_).toarray()


class UserKNNRecommender(Recommender):
    """User-based kNN: score(u, j) = sum of sim(u, v) over the k most similar users v with j.

    Args:
        k: neighbours kept per user (>= 1).
        shrinkage: shrinkage of the cosine similarity (>= 0).

    Raises:
        ArgumentError: a bad ``k`` or ``shrinkage``.

    Explained in notebook 03.
    """

    name = "user_knn"

    def __init__(self, k: int = 50, shrinkage: float = 10.0) -> None:
        self.k = check_int("k", k)
        self.shrinkage = check_float("shrinkage", shrinkage, strict=False)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.similarity_ = top_k_cosine_similarity(matrix.T.tocsr(), self.k, self.shrinkage)

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        return (self.similarity_[user_idx] @ self.matrix_).toarray()
