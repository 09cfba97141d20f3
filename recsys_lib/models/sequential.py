"""Sequence-aware baselines without deep learning: a Markov chain and sequential kNN (notebook 10).

Every baseline before notebook 10 treats a user's history as a *set*. These two read it in
time order, so that a comparison with the Transformer (SASRec) and the GRU (GRU4Rec) can tell
what attention adds beyond order itself:

* :class:`MarkovRecommender` (``"markov"``): a first-order Markov chain. It counts how often
  item j directly follows item i in the users' time-ordered histories and recommends, after
  the user's last item, its most frequent successors (smoothed towards popularity).
* :class:`SequentialKNNRecommender` (``"sknn"``): sequential nearest neighbours (V-SKNN,
  Ludewig & Jannach, 2018). The user's most recent items, the later ones weighted more,
  are compared with every other user's history; the most similar users vote for their items.

Both follow the course's recommender interface (:mod:`recsys_lib.models.base`); histories
are ordered with :func:`recsys_lib.splits.order_by_user_time` (ties in time keep the table's
order), exactly as SASRec orders them. NumPy and SciPy only: no TensorFlow is imported.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_lib.checks import check_choice, check_float, check_int, check_k
from recsys_lib.models.base import Recommender, top_k_indices
from recsys_lib.splits import order_by_user_time

#: Distributions the Markov chain's smoothing pseudo-counts can follow.
PRIORS = ("popularity", "uniform")


def _require_timestamp(train: object, model: str) -> None:
    if isinstance(train, pd.DataFrame) and "timestamp" not in train:
        raise ValueError(f"{model} needs a timestamp column to order each user's history")


def _ordered_indices(model: Recommender) -> tuple[np.ndarray, np.ndarray]:
    """User and item indices of the training rows, by user and then by time (stable)."""
    ordered = order_by_user_time(model.train_)
    return (model.users_.transform(ordered["user_id"]),
            model.items_.transform(ordered["item_id"]))


def _steps_back(users: np.ndarray) -> np.ndarray:
    """For rows grouped by user (time-ordered), how many rows of the same user come later."""
    is_last = np.r_[users[1:] != users[:-1], True]
    last = np.flatnonzero(is_last)
    group_end = last[np.searchsorted(last, np.arange(len(users)))]
    return group_end - np.arange(len(users))


def _history_indices(model: Recommender, item_ids: list) -> np.ndarray:
    """Indices of ``item_ids``; an empty history or unknown ids raise ValueError."""
    if not len(item_ids):
        raise ValueError("the history is empty: pass at least one item id")
    return model.items_.transform(item_ids)


def _top_for_history(model: Recommender, scores: np.ndarray, history: np.ndarray, k: int,
                     exclude_seen: bool) -> list:
    if exclude_seen:
        scores[history] = -np.inf
    top = np.argsort(-scores, kind="stable")[:k]
    return model.items_.inverse_transform(top[np.isfinite(scores[top])]).tolist()


class MarkovRecommender(Recommender):
    """First-order Markov chain: recommend what most often came right after the last item.

    Fitting counts the transitions ``c[i, j]``: how often item j directly follows item i in a
    user's time-ordered training history (consecutive pairs within one user, never across
    users). The next-item probabilities are smoothed with ``smoothing`` pseudo-counts spread
    over the catalogue like the ``prior`` distribution ``q``::

        P(j | i) = (c[i, j] + smoothing * q[j]) / (n[i] + smoothing),   n[i] = sum_j c[i, j]

    and ``score(user)`` is the row ``P(. | last training item of the user)``. With the
    popularity prior (``q`` = share of the training interactions of each item), the
    successors of i come first, ordered by count, and popularity ranks the rest and breaks
    ties; an item that was never followed by anything (e.g. one that was always a user's last)
    backs off to popularity alone. Each row sums to 1. With the uniform prior this is classic
    additive (Laplace) smoothing, which adds the same amount to every item of a row and so
    never changes a ranking: items outside the observed successors tie (broken by catalogue
    order). The transition matrix stays sparse (only observed pairs are stored), so 10,000+
    items need no dense n x n matrix.

    Args:
        smoothing: total pseudo-count added to each row (>= 0); larger values pull every
            row towards the prior, 0 keeps the raw frequencies (rows without any transition
            still fall back to the prior).
        prior: ``"popularity"`` (default) or ``"uniform"``: how the pseudo-counts are spread.

    Attributes set by ``fit``:
        transitions_: CSR (n_items, n_items) counts ``c[i, j]`` (columns in ``items_.ids_``
            order).
        out_counts_: (n_items,) ``n[i]``, the transitions leaving each item.
        prior_: (n_items,) the prior ``q`` (sums to 1).
        last_item_: (n_users,) index of each user's last training item.

    Raises:
        ArgumentError: a negative or non-finite ``smoothing``, an unknown ``prior``.

    Explained in notebook 10.
    """

    name = "markov"

    def __init__(self, smoothing: float = 10.0, prior: str = "popularity") -> None:
        self.smoothing = check_float("smoothing", smoothing, strict=False)
        self.prior = check_choice("prior", prior, PRIORS)

    def fit(self, train: pd.DataFrame, items: Iterable | None = None) -> MarkovRecommender:
        """Count the transitions in ``train`` (``user_id, item_id, timestamp``).

        Args:
            train: interactions; each user's rows are ordered by ``timestamp`` (ties keep
                the table's order).
            items: extra catalogue items with no interactions (see the base class).

        Returns:
            self.

        Raises:
            ValueError: no ``timestamp`` column, or what the base class rejects.

        Explained in notebook 10.
        """
        _require_timestamp(train, type(self).__name__)
        return super().fit(train, items)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        users, items = _ordered_indices(self)
        n_items = matrix.shape[1]
        same_user = users[1:] == users[:-1]
        source, target = items[:-1][same_user], items[1:][same_user]
        self.transitions_ = sp.csr_matrix(
            (np.ones(len(source)), (source, target)), shape=(n_items, n_items))
        self.transitions_.sum_duplicates()
        self.out_counts_ = np.asarray(self.transitions_.sum(axis=1)).ravel()
        if self.prior == "popularity":
            popularity = np.asarray(matrix.sum(axis=0)).ravel()
            self.prior_ = popularity / popularity.sum()
        else:
            self.prior_ = np.full(n_items, 1.0 / n_items)
        is_last = np.r_[users[1:] != users[:-1], True]
        self.last_item_ = np.empty(matrix.shape[0], dtype=np.int64)
        self.last_item_[users[is_last]] = items[is_last]

    def transition_probabilities(self, item_idx: np.ndarray) -> np.ndarray:
        """Smoothed next-item probabilities ``P(. | i)`` for item indices ``item_idx``.

        Args:
            item_idx: (m,) item indices (positions in ``items_.ids_``).

        Returns:
            (m, n_items) array; each row sums to 1.

        Explained in notebook 10.
        """
        item_idx = np.asarray(item_idx, dtype=np.int64)
        counts = self.transitions_[item_idx].toarray()
        totals = self.out_counts_[item_idx] + self.smoothing
        probs = counts + self.smoothing * self.prior_
        # rows with no transition and no smoothing: 0 / 0, the limit is the prior
        empty = totals == 0
        probs[empty] = self.prior_
        probs[~empty] /= totals[~empty, None]
        return probs

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        return self.transition_probabilities(self.last_item_[user_idx])

    def recommend_for_history(self, item_ids: list, k: int = 10,
                              exclude_seen: bool = True) -> list:
        """Top-k item ids after a history of item ids (oldest first): its last item decides.

        Args:
            item_ids: a non-empty history of catalogue item ids, oldest first.
            k: how many ids (>= 1).
            exclude_seen: leave out the items of the history.

        Returns:
            Item ids, best first.

        Raises:
            ArgumentError: a bad ``k``.
            ValueError: an empty history or an unknown item id.

        Explained in notebook 10.
        """
        k = check_k(k)
        history = _history_indices(self, item_ids)
        scores = self.transition_probabilities(history[-1:])[0]
        return _top_for_history(self, scores, history, k, exclude_seen)


class SequentialKNNRecommender(Recommender):
    """Sequential user kNN (V-SKNN): the users whose histories share your latest items vote.

    The query of user u is their last ``max_history`` training items, in time order, the
    item ``t`` steps before the last one weighted ``decay ** t`` (so the last item weighs 1;
    an item seen twice keeps its most recent weight). Every other training user v is a
    binary set of items. Their similarity is the cosine::

        sim(u, v) = <query_u, x_v> / (||query_u|| * ||x_v||)

    and the ``k`` most similar users (never u itself) vote with their similarity for each of
    their items: ``score(u, j) = sum over those v of sim(u, v) * x_v[j]``. This is the
    vector-multiplication session kNN of Ludewig & Jannach (2018), with users' histories in
    place of sessions. ``decay=1`` weighs the recent items equally; ``max_history`` large
    and ``decay=1`` give plain (order-blind) cosine user-kNN. All of it is sparse
    matrix algebra, done in batches of users.

    Args:
        k: neighbours who vote (>= 1).
        max_history: most recent items of the user that form the query (>= 1).
        decay: recency weight per step back, in (0, 1].

    Attributes set by ``fit``:
        queries_: CSR (n_users, n_items) recency weights of each user's query.
        neighbours_: CSR (n_users, n_items) each user's item set scaled to unit length.

    Raises:
        ArgumentError: ``k`` or ``max_history`` not an integer >= 1, a ``decay`` outside
            (0, 1].

    Explained in notebook 10.
    """

    name = "sknn"

    def __init__(self, k: int = 20, max_history: int = 20, decay: float = 0.8) -> None:
        self.k = check_int("k", k)
        self.max_history = check_int("max_history", max_history)
        self.decay = check_float("decay", decay, maximum=1.0, strict_maximum=False)

    def fit(self, train: pd.DataFrame,
            items: Iterable | None = None) -> SequentialKNNRecommender:
        """Build every user's recency-weighted query and item set from ``train``.

        Args:
            train: interactions with ``user_id, item_id, timestamp``; each user's rows are
                ordered by ``timestamp`` (ties keep the table's order).
            items: extra catalogue items with no interactions (see the base class).

        Returns:
            self.

        Raises:
            ValueError: no ``timestamp`` column, or what the base class rejects.

        Explained in notebook 10.
        """
        _require_timestamp(train, type(self).__name__)
        return super().fit(train, items)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        users, items = _ordered_indices(self)
        back = _steps_back(users)
        recent = back < self.max_history
        self.queries_ = self._query_matrix(users[recent], items[recent], back[recent],
                                           matrix.shape)
        norms = np.sqrt(np.asarray(matrix.sum(axis=1)).ravel())  # binary rows
        self.neighbours_ = sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1.0)) @ matrix)

    def _query_matrix(self, rows: np.ndarray, items: np.ndarray, back: np.ndarray,
                      shape: tuple[int, int]) -> sp.csr_matrix:
        """Rows of ``decay ** back`` weights; a repeated item keeps its largest weight."""
        weights = self.decay ** back.astype(np.float64)
        keys = rows.astype(np.int64) * shape[1] + items
        order = np.lexsort((-weights, keys))
        keys, weights = keys[order], weights[order]
        first = np.r_[True, keys[1:] != keys[:-1]]
        keys, weights = keys[first], weights[first]
        return sp.csr_matrix((weights, (keys // shape[1], keys % shape[1])), shape=shape)

    def _neighbour_scores(self, queries: sp.csr_matrix,
                          exclude_users: np.ndarray | None) -> np.ndarray:
        """Votes of the k most similar users for a batch of query rows."""
        norms = np.sqrt(np.asarray(queries.multiply(queries).sum(axis=1)).ravel())
        queries = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ queries
        sim = (queries @ self.neighbours_.T).toarray()  # (batch, n_users) cosine
        if exclude_users is not None:
            sim[np.arange(len(sim)), exclude_users] = 0.0  # a user is not their own neighbour
        top = top_k_indices(sim, self.k)  # ties: the lower user index first
        votes = np.take_along_axis(sim, top, axis=1)
        rows = np.repeat(np.arange(len(sim)), top.shape[1])
        neighbours = sp.csr_matrix((votes.ravel(), (rows, top.ravel())), shape=sim.shape)
        neighbours.eliminate_zeros()
        return (neighbours @ self.matrix_).toarray()

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        return self._neighbour_scores(self.queries_[user_idx], user_idx)

    def recommend_for_history(self, item_ids: list, k: int = 10,
                              exclude_seen: bool = True) -> list:
        """Top-k item ids for a new history of item ids (oldest first), e.g. a session.

        Every training user can be a neighbour.

        Args:
            item_ids: a non-empty history of catalogue item ids, oldest first.
            k: how many ids (>= 1).
            exclude_seen: leave out the items of the history.

        Returns:
            Item ids, best first.

        Raises:
            ArgumentError: a bad ``k``.
            ValueError: an empty history or an unknown item id.

        Explained in notebook 10.
        """
        k = check_k(k)
        history = _history_indices(self, item_ids)
        recent = history[-self.max_history:]
        back = np.arange(len(recent))[::-1]
        query = self._query_matrix(np.zeros(len(recent), dtype=np.int64), recent, back,
                                   (1, self.matrix_.shape[1]))
        scores = self._neighbour_scores(query, None)[0]
        return _top_for_history(self, scores, history, k, exclude_seen)
