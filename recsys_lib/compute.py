"""The compute bill of a recommender: what it stores, and what a recommendation costs.

The course's source article lists compute among the costs of deep recommenders (its sections
3.3 and 8). Notebook 14 puts the models of notebooks 04-13 on one chart with two numbers
measured here and two from the benchmark's results files:

* :func:`stored_numbers`: the numbers a fitted model keeps in order to score, its "parameters"
  in the broad sense. For a Keras model that is ``count_params()``; for the classic models it
  is every learned array (factor tables, EASE's item-item matrix, a neighbour list's stored
  similarities, a Markov chain's transition counts). Memory-based models that keep the
  training matrix itself to score (session kNN) count its stored entries, because that is what
  they hold;
* :func:`ms_per_user`: wall milliseconds per user of ``recommend(users, k)``, batched as the
  model batches them, the fastest of a few repeats.

Explained in notebook 14.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys_lib.checks import check_int, check_k

#: Fitted attributes that are the training data or id bookkeeping, not something learned.
DATA_ATTRIBUTES = frozenset({"matrix_", "train_", "users_", "items_", "histories_",
                             "history_", "windows_", "last_item_"})


def _count(value: Any) -> int:
    """Stored numbers in a float, an array, a sparse matrix, or a dict/list/tuple of them."""
    if sp.issparse(value):
        return int(value.nnz)
    if isinstance(value, np.ndarray):
        return int(value.size) if value.dtype.kind in "fc" else 0
    if isinstance(value, (float, np.floating)):
        return 1  # a learned scalar, e.g. the global mean of matrix factorisation
    if isinstance(value, dict):
        return sum(_count(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_count(v) for v in value)
    return 0


def stored_numbers(recommender: Any) -> int:
    """Numbers a fitted recommender keeps to score: its parameters in the broad sense.

    Args:
        recommender: a fitted course recommender (``fit`` was called).

    Returns:
        ``model_.count_params()`` for a Keras recommender; otherwise the number of floating
        point entries in its fitted attributes (names ending in ``_``, see the module
        docstring), leaving out the training data and id encoders (``DATA_ATTRIBUTES``).

    Raises:
        ValueError: the recommender is not fitted.

    Explained in notebook 14.
    """
    if not hasattr(recommender, "items_"):
        raise ValueError(f"{type(recommender).__name__} is not fitted: call fit(train) first")
    model = getattr(recommender, "model_", None)
    if model is not None and hasattr(model, "count_params"):
        return int(model.count_params())
    return sum(_count(value) for name, value in vars(recommender).items()
               if name.endswith("_") and not name.startswith("_")
               and name not in DATA_ATTRIBUTES)


def ms_per_user(recommender: Any, users: Iterable, k: int = 10, repeats: int = 3) -> float:
    """Milliseconds of ``recommend(users, k)`` per user, the fastest of ``repeats`` calls.

    Args:
        recommender: a fitted course recommender.
        users: user ids known to it (the same users every repeat).
        k: list length (>= 1).
        repeats: timed calls (>= 1); the fastest is kept (the others include noise from
            whatever else the machine does).

    Returns:
        The fastest call's seconds x 1000 / number of users.

    Raises:
        ValueError: no users; ArgumentError: k or repeats below 1.

    Explained in notebook 14.
    """
    users = list(users)
    if not users:
        raise ValueError("users is empty: pass the ids of the users to time")
    k, repeats = check_k(k), check_int("repeats", repeats)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        recommender.recommend(users, k=k)
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best / len(users)
