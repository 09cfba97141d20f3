"""The one small interface every recommender in the course follows (notebook 05 uses it).

    model = SomeRecommender(...).fit(train)         # train: user_id, item_id[, rating, timestamp]
    recs = model.recommend([1, 2, 3], k=10)          # {user_id: [item_id, ...]}, seen excluded
    scores = model.score([1, 2, 3])                  # (3, n_items) scores over the catalogue

The catalogue is every item of the training table plus, optionally, ``items`` passed to
``fit`` (items nobody rated yet: only content-based models can score them above the rest).
Subclasses implement ``_fit(matrix)`` and ``_score(user_idx)``; this base class encodes ids,
builds the user-item matrix, excludes seen items and picks the top k.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_lib.checks import check_k
from recsys_lib.preprocessing import IdEncoder


class Recommender:
    """Base class: fit on a training table, score the catalogue, recommend the top k.

    Attributes set by ``fit``:
        users_, items_: :class:`IdEncoder` for user and item ids.
        matrix_: CSR user-item matrix (n_users, n_items); values are ratings when
            ``uses_ratings`` and the training table has a ``rating`` column, else 1.0.
        train_: the training table (user_id, item_id[, rating, timestamp]).

    Explained in notebook 05.
    """

    #: Short name used in results tables and by the benchmark.
    name = "base"
    #: True for rating-prediction models that learn from the rating values.
    uses_ratings = False
    #: Users scored per batch in ``recommend`` (bounds memory: batch x n_items floats).
    recommend_batch_size = 1024

    def fit(self, train: pd.DataFrame, items: Iterable | None = None) -> Recommender:
        """Learn from ``train``; ``items`` adds catalogue items with no interactions.

        Raises:
            ValueError: empty table or missing ``user_id`` / ``item_id`` columns.
        """
        if not isinstance(train, pd.DataFrame) or train.empty:
            raise ValueError("train must be a non-empty pandas DataFrame")
        missing = {"user_id", "item_id"} - set(train.columns)
        if missing:
            raise ValueError(f"train is missing column(s) {sorted(missing)}")
        self.train_ = train
        self.users_ = IdEncoder().fit(train["user_id"])
        catalogue = train["item_id"] if items is None else np.concatenate(
            [train["item_id"].to_numpy(), np.asarray(list(items))])
        self.items_ = IdEncoder().fit(catalogue)
        rows = self.users_.transform(train["user_id"])
        cols = self.items_.transform(train["item_id"])
        if self.uses_ratings and "rating" in train:
            values = train["rating"].to_numpy(dtype=np.float64)
        else:
            values = np.ones(len(train))
        shape = (len(self.users_), len(self.items_))
        matrix = sp.csr_matrix((values, (rows, cols)), shape=shape)
        matrix.sum_duplicates()
        if not (self.uses_ratings and "rating" in train):
            matrix.data[:] = 1.0  # repeated interactions count once
        self.matrix_ = matrix
        self._fit(matrix)
        return self

    # ----------------------------------------------------------------- for subclasses
    def _fit(self, matrix: sp.csr_matrix) -> None:
        raise NotImplementedError

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores (len(user_idx), n_items); higher is better."""
        raise NotImplementedError

    # ----------------------------------------------------------------- public API
    def _user_indices(self, users: Iterable) -> np.ndarray:
        if not hasattr(self, "users_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(train) first")
        try:
            return self.users_.transform(list(users))
        except ValueError as err:
            raise ValueError(f"{err}. {type(self).__name__} can only recommend for users "
                             "in its training data") from None

    def score(self, users: Iterable) -> np.ndarray:
        """Scores of every catalogue item (columns in ``items_.ids_`` order) for ``users``."""
        return self._score(self._user_indices(users))

    def recommend(self, users: Iterable, k: int = 10, exclude_seen: bool = True) -> dict:
        """Top-k items for each user, best first.

        Args:
            users: user ids seen in training.
            k: number of items per user (>= 1); fewer when the catalogue minus the seen
                items is smaller.
            exclude_seen: leave out items the user interacted with in training.

        Returns:
            ``{user_id: [item_id, ...]}`` in the order of ``users``.

        Raises:
            ArgumentError: k is not an integer >= 1.
            ValueError: an unknown user id, or scores with NaN (a model that diverged).
        """
        k = check_k(k)
        users = list(users)
        idx = self._user_indices(users)
        result, step = {}, self.recommend_batch_size
        for start in range(0, len(users), step):
            batch = idx[start:start + step]
            scores = np.asarray(self._score(batch), dtype=np.float64).copy()
            self._check_scores(scores, batch)
            if exclude_seen:
                seen = self.matrix_[batch]
                scores[np.repeat(np.arange(len(batch)), np.diff(seen.indptr)),
                       seen.indices] = -np.inf
            top = top_k_indices(scores, k)
            for row, user in enumerate(users[start:start + step]):
                valid = top[row][np.isfinite(scores[row, top[row]])]
                result[user] = self.items_.inverse_transform(valid).tolist()
        return result


    def _check_scores(self, scores: np.ndarray, user_idx: np.ndarray) -> None:
        """Raise if a score is NaN: a ranking with NaN in it is meaningless."""
        bad = np.isnan(scores).any(axis=1)
        if bad.any():
            users = self.users_.inverse_transform(user_idx[bad][:5]).tolist()
            raise ValueError(f"{type(self).__name__} ({self.name}) gave NaN scores for "
                             f"{int(bad.sum())} user(s), e.g. {users}: the model is broken "
                             "(training diverged, or a NaN in its input); refit it, e.g. with "
                             "a smaller learning rate, or clean the data")


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest scores per row, largest first.

    Ties are broken by the lower column index everywhere, also at the k-th place, so the
    top k is always a prefix of the top k + 1 (``recommend(k=10)`` equals the first ten of
    ``recommend(k=100)``).

    Args:
        scores: (n_rows, n_cols) array without NaN.
        k: how many; capped at n_cols.

    Explained in notebook 05.
    """
    k = min(k, scores.shape[1])
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1:k]  # the k-th largest per row
    greater = scores > kth
    tied = scores == kth
    room = k - greater.sum(axis=1, keepdims=True)
    chosen = greater | (tied & (np.cumsum(tied, axis=1) <= room))
    cols = np.nonzero(chosen)[1].reshape(len(scores), k)
    chosen_scores = np.take_along_axis(scores, cols, axis=1)
    order = np.lexsort((cols, -chosen_scores), axis=1)
    return np.take_along_axis(cols, order, axis=1)
