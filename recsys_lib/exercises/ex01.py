"""Checks for the exercises of notebook 01 (preprocessing and honest splits).

Used by ``exercises/01_preprocessing.ipynb``: ``from recsys_lib.exercises.ex01 import *``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_lib.exercises.core import ExerciseSet, Incorrect, Question, call_answer
from recsys_lib.preprocessing import k_core, mean_center
from recsys_lib.splits import leave_last_out

__all__ = ["q1", "q2", "q3", "q4", "summary", "assert_all_correct", "EXERCISES"]


def _table(users, items, ratings=None, times=None, index=None) -> pd.DataFrame:
    n = len(users)
    return pd.DataFrame(
        {"user_id": users, "item_id": items,
         "rating": ratings if ratings is not None else [4.0] * n,
         "timestamp": times if times is not None else list(range(n))},
        index=index,
    )


def _frame(result, what: str) -> pd.DataFrame:
    if not isinstance(result, pd.DataFrame):
        raise Incorrect(f"{what} should be a pandas DataFrame, got {type(result).__name__}")
    return result


# ----------------------------------------------------------------------------------- q1
def _check_mean_center(func) -> None:
    ratings = _table([7, 7, 7, 9, 9], [1, 2, 3, 1, 4], [5.0, 3.0, 4.0, 2.0, 1.0],
                     index=[10, 11, 12, 13, 14])
    got = call_answer(func, ratings.copy())
    if not isinstance(got, pd.Series):
        raise Incorrect(f"Return a pandas Series, got {type(got).__name__}")
    if len(got) != len(ratings):
        raise Incorrect(f"Return one value per rating ({len(ratings)}), got {len(got)}")
    if not got.index.equals(ratings.index):
        raise Incorrect("Keep the index of the ratings table, so values line up with rows "
                        f"(expected {ratings.index.tolist()}, got {got.index.tolist()})")
    want = mean_center(ratings)
    global_centred = ratings["rating"] - ratings["rating"].mean()
    if np.allclose(got.to_numpy(float), global_centred.to_numpy()):
        raise Incorrect("You subtracted the global mean; subtract each user's own mean")
    if not np.allclose(got.to_numpy(float), want.to_numpy()):
        raise Incorrect(f"Expected {want.round(3).tolist()}, got {got.round(3).tolist()}")


# ----------------------------------------------------------------------------------- q2
def _check_k_core(func) -> None:
    # One pass at k=2 removes item 5 (1 rating); user 3 then has 1 rating and must go too,
    # which leaves item 4 with 1 rating: only repeating until nothing changes gets this right.
    ratings = _table([1, 1, 2, 2, 3, 3, 4, 4], [1, 2, 1, 2, 4, 5, 4, 9])
    for k in (2, 1):
        got = _frame(call_answer(func, ratings.copy(), k), "The filtered table")
        want = k_core(ratings, k, k)
        if set(got.index) == set(want.index):
            continue
        one_pass = ratings[ratings.groupby("user_id")["user_id"].transform("size").ge(k)
                           & ratings.groupby("item_id")["item_id"].transform("size").ge(k)]
        if set(got.index) == set(one_pass.index):
            raise Incorrect("After one pass some users/items fall below k again; repeat the "
                            "filter until nothing changes")
        raise Incorrect(f"For k={k} expected the rows {sorted(want.index)}, "
                        f"got {sorted(got.index)}")


# ----------------------------------------------------------------------------------- q3
def _check_last_item_split(func) -> None:
    # user 1: two ratings share the last timestamp -> the later row (index 2) is the test row.
    # user 2: rows out of time order. user 3: a single rating stays in train.
    ratings = _table([1, 1, 1, 2, 2, 2, 3], [10, 11, 12, 20, 21, 22, 30],
                     times=[5, 9, 9, 30, 10, 20, 7])
    result = call_answer(func, ratings.copy())
    if not isinstance(result, tuple) or len(result) != 2:
        raise Incorrect("Return a tuple (train, test)")
    train, test = (_frame(part, name) for part, name in zip(result, ("train", "test"),
                                                            strict=True))
    want = leave_last_out(ratings, validation=False)
    if set(train.index) & set(test.index):
        raise Incorrect("Some rows are in both train and test")
    if set(test.index) == {1, 3}:
        raise Incorrect("User 1 has two ratings at the same last time; the later row in the "
                        "table counts as last (use a stable sort)")
    if 6 in set(test.index):
        raise Incorrect("User 3 has a single rating: keep it in train (nothing to learn from "
                        "otherwise)")
    if set(test.index) != set(want.test.index):
        raise Incorrect(f"Expected the test rows {sorted(want.test.index)}, "
                        f"got {sorted(test.index)} (sort by timestamp within each user)")
    if set(train.index) != set(want.train.index):
        raise Incorrect(f"Expected the train rows {sorted(want.train.index)}, "
                        f"got {sorted(train.index)}")


# ----------------------------------------------------------------------------------- q4
def _check_is_leaky(func) -> None:
    cases = [
        ("train before test", _table([1, 1], [1, 3], times=[1, 2]), _table([1], [2], times=[5]),
         False),
        ("a train rating after the same user's test rating",
         _table([1, 1], [1, 3], times=[1, 9]), _table([1], [2], times=[5]), True),
        ("another user's later rating (not a leak for this per-user rule)",
         _table([1, 2], [1, 1], times=[1, 90]), _table([1], [2], times=[5]), False),
        ("equal timestamps (not strictly after)",
         _table([1], [1], times=[5]), _table([1], [2], times=[5]), False),
    ]
    for name, train, test, want in cases:
        got = call_answer(func, train.copy(), test.copy())
        if not isinstance(got, bool | np.bool_):
            raise Incorrect(f"Return True or False, got {type(got).__name__}")
        if bool(got) != want:
            raise Incorrect(f"Case '{name}': expected {want}, got {bool(got)}")


EXERCISES = ExerciseSet("ex01", [
    Question("q1", "user mean-centring", _check_mean_center,
             "groupby('user_id')['rating'].transform('mean') gives each row its user's mean."),
    Question("q2", "k-core filtering", _check_k_core,
             "Filter users and items with fewer than k ratings in a loop; stop when a pass "
             "removes nothing."),
    Question("q3", "leave-last-out split", _check_last_item_split,
             "Sort by user and timestamp with kind='stable' (ties keep table order); the "
             "last row of each user with at least 2 ratings is test."),
    Question("q4", "detect leakage", _check_is_leaky,
             "For each user compare the latest train timestamp with the earliest test "
             "timestamp (groupby + max / min, then join on user_id)."),
])
q1, q2, q3, q4 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
