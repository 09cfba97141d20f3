"""Neighbourhood collaborative filtering with sparse matrices (notebook 03)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

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
    """
    if shrinkage < 0:
        raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
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
    """Keep the k largest entries of each row of a similarity matrix (others set to 0)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    sim = sim.tocsr()
    rows, cols, vals = [], [], []
    for r in range(sim.shape[0]):
        start, end = sim.indptr[r], sim.indptr[r + 1]
        data, idx = sim.data[start:end], sim.indices[start:end]
        if len(data) > k:
            keep = np.argpartition(-data, k - 1)[:k]
            data, idx = data[keep], idx[keep]
        rows.append(np.full(len(data), r))
        cols.append(idx)
        vals.append(data)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=sim.shape)


class ItemKNNRecommender(Recommender):
    """Item-based kNN: score(u, j) = sum of sim(i, j) over the items i the user interacted with.

    Args:
        k: neighbours kept per item.
        shrinkage: shrinkage of the cosine similarity.
    """

    name = "item_knn"

    def __init__(self, k: int = 100, shrinkage: float = 10.0) -> None:
        self.k, self.shrinkage = k, shrinkage

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.similarity_ = keep_top_neighbours(cosine_similarity(matrix, self.shrinkage),
                                               self.k)

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        return (self.matrix_[user_idx] @ self.similarity_).toarray()


class UserKNNRecommender(Recommender):
    """User-based kNN: score(u, j) = sum of sim(u, v) over the k most similar users v with j.

    Args:
        k: neighbours kept per user.
        shrinkage: shrinkage of the cosine similarity.
    """

    name = "user_knn"

    def __init__(self, k: int = 50, shrinkage: float = 10.0) -> None:
        self.k, self.shrinkage = k, shrinkage

    def _fit(self, matrix: sp.csr_matrix) -> None:
        sim = cosine_similarity(matrix.T.tocsr(), self.shrinkage)
        self.similarity_ = keep_top_neighbours(sim, self.k)

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        return (self.similarity_[user_idx] @ self.matrix_).toarray()
