"""EASE: a closed-form linear item-item model, the strong baseline (notebook 04)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_lib.checks import check_float
from recsys_lib.models.base import Recommender


class EASERecommender(Recommender):
    """Embarrassingly Shallow Autoencoder (Steck, 2019).

    Solves min_B ||X - X B||^2 + lambda ||B||^2 subject to diag(B) = 0 in closed form:
    P = (X^T X + lambda I)^-1, B_ij = -P_ij / P_jj (i != j), B_jj = 0. Scores are X B.
    Memory and time grow with n_items^2 and n_items^3: fine up to ~20k items.

    Args:
        l2: the regularisation lambda (> 0); tune it on validation data.

    Explained in notebook 04.
    """

    name = "ease"

    def __init__(self, l2: float = 500.0) -> None:
        self.l2 = check_float("l2", l2)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        gram = (matrix.T @ matrix).toarray()
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)
        b[np.diag_indices_from(b)] = 0.0
        self.weights_ = b

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.matrix_[user_idx] @ self.weights_)
