"""Non-personalised baselines every results table needs (notebook 05)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_lib.checks import check_int
from recsys_lib.config import DEFAULT_SEED
from recsys_lib.models.base import Recommender


class PopularityRecommender(Recommender):
    """Recommend the items with the most training interactions (the same list for everyone).

    Simple and often strong: a personalised model that does not beat it has learned little.

    Explained in notebook 05.
    """

    name = "popularity"

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.popularity_ = np.asarray(matrix.sum(axis=0)).ravel()

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(user_idx), len(self.popularity_)))


class RandomRecommender(Recommender):
    """Recommend random items: the floor every model must clear.

    Args:
        seed: the same seed gives the same recommendations for the same users.

    Explained in notebook 05.
    """

    name = "random"

    def __init__(self, seed: int = DEFAULT_SEED) -> None:
        self.seed = check_int("seed", seed, minimum=0)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.n_items_ = matrix.shape[1]

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        rows = [np.random.default_rng([self.seed, int(u)]).random(self.n_items_)
                for u in user_idx]
        return np.vstack(rows)
