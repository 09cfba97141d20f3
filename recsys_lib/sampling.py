"""Negative sampling: items a model should score below the ones a user interacted with.

One function, :func:`sample_negatives`, serves every model that trains on sampled
negatives (BPR in notebook 04, NeuMF in notebook 06, the one-negative SASRec loss in
notebook 10):

    rng = np.random.default_rng(42)
    negatives = sample_negatives(matrix, users, rng, n=4)   # (len(users), 4), unseen items

* ``exclude_seen=True`` (the default) draws only items the user has not interacted with,
  by rejection: draw, then redraw the draws that hit a seen item (a binary search in the
  sorted :func:`interaction_keys`, with no dense users x items array);
* ``distribution="popularity"`` draws items in proportion to ``count ** alpha`` (word2vec's
  smoothed unigram distribution uses alpha = 0.75) instead of uniformly, so that popular
  items, the hard negatives, come up more often.

Notebook 04 explains negative sampling for BPR; notebook 06 uses it for NeuMF.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from recsys_lib.checks import ArgumentError, check_choice, check_float, check_int

DISTRIBUTIONS = ("uniform", "popularity")


def interaction_keys(matrix: sp.spmatrix) -> NDArray[np.int64]:
    """Sorted keys ``user * n_items + item`` of a user-item matrix's stored entries.

    One int64 per interaction: membership of any (user, item) pair is then one binary
    search (:func:`is_seen`), with no dense n_users x n_items array.

    Explained in notebook 04.
    """
    coo = sp.coo_matrix(matrix)
    return np.sort(coo.row.astype(np.int64) * matrix.shape[1] + coo.col)


def is_seen(keys: NDArray[np.int64], users: np.ndarray, items: np.ndarray,
            n_items: int) -> NDArray[np.bool_]:
    """For each pair (users[n], items[n]), whether it is among the sorted ``keys``.

    Args:
        keys: :func:`interaction_keys` of the training matrix.
        users, items: index arrays of the same shape.
        n_items: catalogue size (the matrix's number of columns).

    Returns:
        Boolean array of the shape of ``users``.

    Explained in notebook 04.
    """
    query = np.asarray(users, dtype=np.int64) * n_items + items
    if not len(keys):
        return np.zeros(query.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return keys[pos] == query


def sample_negatives(matrix: sp.spmatrix, users: np.ndarray, rng: np.random.Generator,
                     n: int = 1, exclude_seen: bool = True, distribution: str = "uniform",
                     alpha: float = 0.75) -> NDArray[np.int64]:
    """Draw ``n`` negative items for each entry of ``users``.

    Args:
        matrix: user-item matrix (n_users, n_items); stored entries are the seen items.
        users: (m,) user indices (repeats allowed, e.g. one per training interaction).
        rng: NumPy generator; the same generator state gives the same negatives.
        n: negatives per entry, >= 1.
        exclude_seen: draw only items the user has not interacted with (rejection sampling,
            repeated until every draw is unseen).
        distribution: ``"uniform"`` over the catalogue, or ``"popularity"``: proportional
            to ``(number of interactions) ** alpha`` (items without interactions are never
            drawn then).
        alpha: exponent of the popularity distribution (0 = uniform over interacted items,
            1 = proportional to counts).

    Returns:
        (m, n) int64 item indices; row r holds the negatives of ``users[r]``, drawn in the
        order ``rng.integers(n_items, size=m * n)`` (uniform) would give them.

    Raises:
        ArgumentError: n < 1, an unknown distribution, a negative alpha, or user indices
            outside the matrix.
        ValueError: with ``exclude_seen``, a user who has seen every item that can be
            drawn: there is no negative for them (leave such users out).

    Explained in notebook 04 (BPR) and notebook 06 (NeuMF).
    """
    n = check_int("n", n)
    check_choice("distribution", distribution, DISTRIBUTIONS)
    users = _check_users(users, matrix.shape[0])
    n_items = matrix.shape[1]
    flat_users = np.repeat(users, n)
    probabilities = _popularity(matrix, check_float("alpha", alpha, strict=False)) \
        if distribution == "popularity" else None
    items = _draw(rng, n_items, len(flat_users), probabilities)
    if exclude_seen and len(flat_users):
        _check_room(matrix, users, probabilities)
        keys = interaction_keys(matrix)
        bad = np.flatnonzero(is_seen(keys, flat_users, items, n_items))
        while bad.size:
            items[bad] = _draw(rng, n_items, bad.size, probabilities)
            bad = bad[is_seen(keys, flat_users[bad], items[bad], n_items)]
    return items.reshape(len(users), n)


def _check_users(users: np.ndarray, n_users: int) -> NDArray[np.int64]:
    users = np.asarray(users)
    if users.ndim != 1 or (users.size and not np.issubdtype(users.dtype, np.integer)):
        raise ArgumentError(f"users must be a 1-D array of user indices, got shape "
                            f"{users.shape} and dtype {users.dtype}")
    if users.size and (users.min() < 0 or users.max() >= n_users):
        raise ArgumentError(f"users must be indices in [0, {n_users}) (rows of the matrix), "
                            f"got values from {users.min()} to {users.max()}")
    return users.astype(np.int64)


def _popularity(matrix: sp.spmatrix, alpha: float) -> NDArray[np.float64]:
    counts = np.asarray((sp.csr_matrix(matrix) != 0).sum(axis=0), dtype=np.float64).ravel()
    weights = np.where(counts > 0, counts ** alpha, 0.0)
    if weights.sum() == 0:
        raise ValueError("the matrix has no interactions: popularity sampling needs some")
    return weights / weights.sum()


def _draw(rng: np.random.Generator, n_items: int, size: int,
          probabilities: NDArray[np.float64] | None) -> NDArray[np.int64]:
    if probabilities is None:
        return rng.integers(0, n_items, size=size).astype(np.int64)
    return rng.choice(n_items, size=size, p=probabilities).astype(np.int64)


def _check_room(matrix: sp.spmatrix, users: np.ndarray,
                probabilities: NDArray[np.float64] | None) -> None:
    """Raise if some user has seen every item that can be drawn (rejection would not end)."""
    csr, users = sp.csr_matrix(matrix), np.unique(users)
    drawable = csr.shape[1] if probabilities is None else int(np.count_nonzero(probabilities))
    if probabilities is None:
        seen = np.diff(csr.indptr)[users]
    else:
        seen = np.asarray(csr[users][:, probabilities > 0].getnnz(axis=1)).ravel()
    full = users[seen >= drawable]
    if full.size:
        raise ValueError(f"user index(es) {full[:5].tolist()} have interacted with every item "
                         "that can be drawn, so they have no negative; leave them out")
