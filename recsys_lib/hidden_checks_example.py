"""An example of hidden checks for the grader: ``recsys-grade ... --hidden-checks FILE``.

Explained in the README's "For teachers: grading" section. The grader runs these after a
question's own checker has passed, in the grader's process only; a learner's notebook
never imports them. They test the learner's function on inputs the notebook's check does
not use, so an answer that only fits the visible check (hard-coded results, a copied
output) fails.

Learners can read this file, as they can read the whole course: copy it somewhere they
cannot see, change the data and the seeds, and pass that copy with ``--hidden-checks``.

Conventions:

* a function named ``exNN_qM`` or ``exNN_qM_<anything>`` is a hidden check of question
  ``qM`` of lesson ``exNN``; it receives the learner's answer, exactly as the lesson's own
  checker does (for a function answer: a stand-in that runs the learner's function in the
  notebook's kernel and returns its result as plain data);
* it raises :class:`recsys_lib.exercises.Incorrect` with a message for the teacher's
  report when the answer is wrong, and returns None otherwise; call learner functions
  through :func:`recsys_lib.exercises.call_answer`, which reports their errors;
* a folder passed to ``--hidden-checks`` may hold one such file per lesson.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_lib.exercises import Incorrect, call_answer
from recsys_lib.exercises.ex00 import reference_top_items
from recsys_lib.preprocessing import k_core, mean_center

#: Change this seed in your copy, so that no learner can reproduce the data.
SEED = 2024


def _random_ratings(seed: int, n: int = 300, users: int = 40, items: int = 60) -> pd.DataFrame:
    """A random ratings table (user_id, item_id, rating, timestamp) with a shuffled index."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({
        "user_id": rng.integers(1, users + 1, n),
        "item_id": rng.integers(100, 100 + items, n),
        "rating": rng.integers(1, 11, n) / 2.0,
        "timestamp": rng.integers(0, 10**6, n),
    })
    table.index = rng.permutation(np.arange(1000, 1000 + n))
    return table


def ex00_q3_other_ratings(top_items) -> None:
    """``top_items(ratings, n)`` on random ratings, for several n (ties included).

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    ratings = _random_ratings(SEED)
    for n in (1, 5, 12):
        got = call_answer(top_items, ratings.copy(), n)
        try:
            got = [int(x) for x in got]
        except (TypeError, ValueError):
            raise Incorrect(f"Return a list of item ids, got {type(got).__name__}") from None
        want = reference_top_items(ratings, n)
        if got != want:
            raise Incorrect(f"On other ratings with n={n}: expected {want}, got {got}")


def ex01_q1_other_ratings(user_mean_center) -> None:
    """``user_mean_center(ratings)`` on random ratings with a shuffled index.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    ratings = _random_ratings(SEED + 1)
    got = call_answer(user_mean_center, ratings.copy())
    want = mean_center(ratings)
    if not isinstance(got, pd.Series) or not got.index.equals(want.index) or not np.allclose(
            got.to_numpy(float), want.to_numpy()):
        raise Incorrect("On other ratings the result differs from the ratings minus each "
                        "user's mean (same index as the table)")


def ex01_q2_other_ratings(k_core_filter) -> None:
    """``k_core_filter(ratings, k)`` on random ratings, for k = 2, 3 and 4.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    ratings = _random_ratings(SEED + 2, n=400, users=60, items=80)
    for k in (2, 3, 4):
        got = call_answer(k_core_filter, ratings.copy(), k)
        want = k_core(ratings, k, k)
        if not isinstance(got, pd.DataFrame) or set(got.index) != set(want.index):
            raise Incorrect(f"On other ratings with k={k}: expected {len(want)} rows, got "
                            f"{len(got) if hasattr(got, '__len__') else got!r}")
