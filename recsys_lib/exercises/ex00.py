"""Checks for the exercises of notebook 00 (setup and a tour of the data).

Used by ``exercises/00_setup_and_tour.ipynb``: ``from recsys_lib.exercises.ex00 import *``.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pandas as pd

from recsys_lib.data import load_movielens
from recsys_lib.exercises.core import ExerciseSet, Incorrect, Question, call_answer

__all__ = ["q1", "q2", "q3", "q4", "summary", "assert_all_correct", "EXERCISES"]


@cache
def _ratings() -> pd.DataFrame:
    return load_movielens("bundled").ratings


def _number(answer, what: str) -> float:
    if isinstance(answer, bool) or not isinstance(answer, int | float | np.number):
        raise Incorrect(f"{what} should be a number, got {type(answer).__name__}")
    return float(answer)


def _check_n_users(answer) -> None:
    ratings = _ratings()
    value = _number(answer, "The number of users")
    if value == len(ratings):
        raise Incorrect("That is the number of ratings (rows); count distinct user_id values")
    if value == ratings["item_id"].nunique():
        raise Incorrect("That is the number of distinct items; count distinct user_id values")
    if value != ratings["user_id"].nunique():
        raise Incorrect(f"{answer} is not the number of distinct users in the bundled data")


def _true_density() -> float:
    r = _ratings()
    return len(r) / (r["user_id"].nunique() * r["item_id"].nunique())


def _check_density(answer) -> None:
    value, truth = _number(answer, "The density"), _true_density()
    if math.isclose(value, 100 * truth, rel_tol=1e-4):
        raise Incorrect("That looks like a percentage; give a fraction between 0 and 1")
    if math.isclose(value, 1 - truth, rel_tol=1e-4):
        raise Incorrect("That is the sparsity (the share of empty cells), not the density")
    if not 0 < value <= 1:
        raise Incorrect(f"A density is a fraction in (0, 1], got {value}")
    if not math.isclose(value, truth, rel_tol=1e-4):
        raise Incorrect(
            f"{value:.6f} is off; divide the number of ratings by (number of distinct users x "
            "number of distinct rated items)"
        )


def reference_top_items(ratings: pd.DataFrame, n: int) -> list[int]:
    """The ``n`` most-rated item ids, most ratings first, ties broken by smaller item id."""
    counts = ratings.groupby("item_id").size().reset_index(name="count")
    counts = counts.sort_values(["count", "item_id"], ascending=[False, True])
    return counts["item_id"].head(n).astype(int).tolist()


def _check_top_items(func) -> None:
    tiny = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 3, 3],
                         "item_id": [30, 10, 30, 20, 10, 20, 40],
                         "rating": [4.0] * 7, "timestamp": range(7)})
    for ratings, n in ((tiny, 3), (_ratings(), 10)):
        got = call_answer(func, ratings.copy(), n)
        try:
            got = [int(x) for x in got]
        except (TypeError, ValueError):
            raise Incorrect(f"Return a list of item ids, got {type(got).__name__}") from None
        want = reference_top_items(ratings, n)
        if len(got) != len(want):
            raise Incorrect(f"asked for n={n} items, got {len(got)}")
        if set(got) == set(want) and got != want:
            raise Incorrect(f"Right items, wrong order for n={n}: got {got}, expected {want} "
                            "(most-rated first; ties by the smaller item id)")
        if got != want:
            raise Incorrect(f"For n={n} expected {want}, got {got}")


def _true_top10_share() -> float:
    counts = np.sort(_ratings().groupby("item_id").size().to_numpy())[::-1]
    top = math.ceil(0.1 * len(counts))
    return counts[:top].sum() / counts.sum()


def _check_top10_share(answer) -> None:
    value, truth = _number(answer, "The share"), _true_top10_share()
    if math.isclose(value, 100 * truth, rel_tol=1e-4):
        raise Incorrect("That looks like a percentage; give a fraction between 0 and 1")
    if not math.isclose(value, truth, rel_tol=1e-4):
        raise Incorrect(
            f"{value:.4f} is off; sort items by their number of ratings, take the top "
            "ceil(10% of the rated items) and divide their ratings by all ratings"
        )


EXERCISES = ExerciseSet("ex00", [
    Question("q1", "number of users", _check_n_users,
             "ratings['user_id'] has one entry per rating; you want distinct values."),
    Question("q2", "density of the rating matrix", _check_density,
             "density = observed cells / all cells of the users x items matrix."),
    Question("q3", "most-rated items", _check_top_items,
             "groupby('item_id').size(), then sort by count (descending) and item_id "
             "(ascending)."),
    Question("q4", "share of ratings on the top 10% of items", _check_top10_share,
             "Count ratings per item, sort descending, keep the first math.ceil(0.1 * n_items)."),
])
q1, q2, q3, q4 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
