"""Checkers of ex00: a correct answer passes, wrong answers fail with a useful message."""

import math

from exercise_harness import make_case_tests

from recsys_lib.data import load_movielens
from recsys_lib.exercises.ex00 import reference_top_items

RATINGS = load_movielens().ratings
N_USERS = RATINGS["user_id"].nunique()
DENSITY = len(RATINGS) / (N_USERS * RATINGS["item_id"].nunique())
_counts = RATINGS.groupby("item_id").size().sort_values(ascending=False)
TOP10 = _counts.head(math.ceil(0.1 * len(_counts))).sum() / len(RATINGS)

# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (N_USERS, [(len(RATINGS), "number of ratings"), (N_USERS + 1, "not the"),
                     ("671", "should be a number")]),
    "q2": (DENSITY, [(100 * DENSITY, "percentage"), (1 - DENSITY, "sparsity"),
                     (DENSITY * 1.1, "is off")]),
    "q3": (reference_top_items,
           [(lambda r, n: reference_top_items(r, n)[::-1], "wrong order"),
            (lambda r, n: reference_top_items(r, n + 1), "asked for n="),
            (lambda r, n: r["item_id"].value_counts().index[:n].tolist()[::-1], "wrong order"),
            (lambda r, n: 1 / 0, "ZeroDivisionError")]),
    "q4": (TOP10, [(100 * TOP10, "percentage"), (0.5, "is off")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex00", CASES)
