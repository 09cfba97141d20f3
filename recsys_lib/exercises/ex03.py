"""Checks for the exercises of notebook 03 (neighbourhood collaborative filtering).

Used by ``exercises/03_neighbourhood_cf.ipynb``: ``from recsys_lib.exercises.ex03 import *``.
Every expected value is computed here, from the library or from a reference implementation,
on small hand-made inputs.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy import stats

from recsys_lib.exercises.core import ExerciseSet, Incorrect, Question, call_answer
from recsys_lib.exercises.core import as_number as _number
from recsys_lib.models.neighbours import cosine_similarity

__all__ = ["q1", "q2", "q3", "q4", "summary", "assert_all_correct", "EXERCISES"]

nan = np.nan


def _close(a: float, b: float) -> bool:
    return bool(np.isclose(a, b, rtol=1e-9, atol=1e-9))


# ----------------------------------------------------------------------------------- q1
_Q1_CASES = [  # (description, a, b): ratings over the same films, NaN = not rated
    ("two users with two films in common",
     [5.0, 3.0, nan, 1.0, 4.0], [4.0, nan, 2.0, 1.0, 5.0]),
    ("one film in common", [5.0, 1.0, nan], [4.0, nan, 2.0]),
    ("no film in common", [5.0, nan, 3.0], [nan, 4.0, nan]),
    ("a user with no ratings at all", [nan, nan, nan], [3.0, 4.0, nan]),
]


def _cosine_reference(a, b) -> float:
    """Eq. (1) via the library: the cosine between the two columns of a (films, 2) matrix."""
    pair = np.nan_to_num(np.column_stack([a, b]))
    return float(cosine_similarity(sp.csr_matrix(pair))[0, 1])


def _cosine_corated_norms(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    both = ~np.isnan(a) & ~np.isnan(b)
    norm = np.linalg.norm(a[both]) * np.linalg.norm(b[both])
    return float(a[both] @ b[both] / norm) if norm > 0 else 0.0


def _check_cosine(func) -> None:
    for name, a, b in _Q1_CASES:
        got = _number(call_answer(func, np.array(a), np.array(b)))
        want = _cosine_reference(a, b)
        if np.isnan(got):
            if not np.any(~np.isnan(a)) or not np.any(~np.isnan(b)):
                raise Incorrect(f"Case '{name}': a user with no ratings has norm 0; return "
                                "0.0 instead of dividing by 0")
            raise Incorrect(f"Case '{name}': your function returned NaN. Replace the missing "
                            "ratings by 0 (np.nan_to_num) before the products")
        if _close(got, want):
            continue
        dot = float(np.nan_to_num(a) @ np.nan_to_num(b))
        if _close(got, dot):
            raise Incorrect(f"Case '{name}': you returned the dot product {got:.4f}; divide it "
                            "by the two norms")
        if _close(got, _cosine_corated_norms(a, b)):
            raise Incorrect(f"Case '{name}': your norms use only the shared films. In eq. (1) "
                            "each norm runs over all the films that user rated (one shared "
                            "film would otherwise make two users identical)")
        raise Incorrect(f"Case '{name}': expected {want:.4f}, got {got:.4f}")


# ----------------------------------------------------------------------------------- q2
_Q2_CASES = [  # (description, a, b)
    ("four films in common", [5.0, 4.0, nan, 2.0, nan, 5.0], [4.0, 5.0, 1.0, 2.0, nan, 4.0]),
    ("four films in common, and films of their own",
     [5.0, 1.0, 4.0, 2.0, nan, 1.0], [4.0, nan, 5.0, 1.0, 3.0, 1.0]),
    ("one film in common", [5.0, 1.0, nan], [4.0, nan, 2.0]),
    ("a user who gave the same rating to every shared film",
     [4.0, 4.0, 4.0, 1.0], [5.0, 2.0, 3.0, nan]),
]


def _pearson_reference(a, b) -> float:
    """Eq. (2) with SciPy on the co-rated films; 0.0 where it is undefined."""
    a, b = np.asarray(a), np.asarray(b)
    both = ~np.isnan(a) & ~np.isnan(b)
    if both.sum() < 2 or np.ptp(a[both]) == 0 or np.ptp(b[both]) == 0:
        return 0.0
    return float(stats.pearsonr(a[both], b[both]).statistic)


def _pearson_overall_means(a, b) -> float:
    """The common mistake: centre on each user's mean over all their films."""
    a, b = np.asarray(a), np.asarray(b)
    both = ~np.isnan(a) & ~np.isnan(b)
    ca, cb = a[both] - np.nanmean(a), b[both] - np.nanmean(b)
    norm = np.sqrt((ca**2).sum() * (cb**2).sum())
    return float(ca @ cb / norm) if norm > 0 else 0.0


def _check_pearson(func) -> None:
    for name, a, b in _Q2_CASES:
        got = _number(call_answer(func, np.array(a), np.array(b)))
        want = _pearson_reference(a, b)
        if np.isnan(got):
            raise Incorrect(f"Case '{name}': your function returned NaN. Return 0.0 when the "
                            "users share fewer than 2 films or one of them gave the same "
                            "rating to all shared films (the correlation is undefined)")
        if _close(got, want):
            continue
        if _close(got, _pearson_overall_means(a, b)):
            raise Incorrect(f"Case '{name}': you subtracted each user's mean over all their "
                            "films; eq. (2) subtracts the mean over the co-rated films only")
        filled = np.corrcoef(np.nan_to_num(a), np.nan_to_num(b))[0, 1]
        if _close(got, filled):
            raise Incorrect(f"Case '{name}': use only the films both users rated; filling the "
                            "missing ratings with 0 treats them as very bad ratings")
        raise Incorrect(f"Case '{name}': expected {want:.4f}, got {got:.4f}")


# ----------------------------------------------------------------------------------- q3
# User 0 has not rated item 2. Users 1, 2, 3 rated it with positive similarity to user 0,
# user 5 rated it with a negative one, and user 4, the most similar, did not rate it.
_Q3_R = np.array([
    [4.0, 2.0, nan, 3.0],
    [5.0, nan, 5.0, 4.0],
    [2.0, 1.0, 3.0, nan],
    [nan, 4.0, 1.0, 5.0],
    [5.0, 3.0, nan, 4.0],
    [1.0, 5.0, 2.0, nan],
])
_Q3_SIM = np.array([0.0, 0.6, 0.5, 0.2, 0.9, -0.7])  # similarity of user 0 to each user
_Q3_NO_NEIGHBOUR = np.array([0.0, -0.3, -0.1, 0.0, 0.9, -0.2])  # only user 4 agrees
_Q3_CASES = [  # (description, similarity row of user 0, k)
    ("k=2", _Q3_SIM, 2),
    ("k=10, more than the number of raters", _Q3_SIM, 10),
    ("no rater with positive similarity", _Q3_NO_NEIGHBOUR, 2),
]


def _sim_matrix(row: np.ndarray) -> np.ndarray:
    sim = np.zeros((len(row), len(row)))
    sim[0], sim[:, 0] = row, row
    return sim


def _predict_reference(R, sim, u, i, k, centre=True, add_mean=True, prefilter=True,
                       positive=True, limit=True) -> float:
    """Eq. (8) with loops; the switches produce the common mistakes (all True = correct)."""
    means = [np.nanmean(row) for row in R]
    users = [v for v in range(len(R)) if v != u]
    if not prefilter:  # mistake: take the k most similar users first, then keep the raters
        users = sorted(users, key=lambda v: -sim[u, v])[:k]
    cands = [v for v in users if not np.isnan(R[v, i]) and (sim[u, v] > 0 or not positive)]
    cands = sorted(cands, key=lambda v: -sim[u, v])
    if limit:
        cands = cands[:k]
    if not cands:
        return float(means[u])
    weights = np.array([sim[u, v] for v in cands])
    values = np.array([R[v, i] - (means[v] if centre else 0.0) for v in cands])
    return float((means[u] if add_mean else 0.0) + weights @ values / np.abs(weights).sum())


_Q3_MISTAKES = [  # (switches, message)
    ({"centre": False, "add_mean": False},
     "you averaged the neighbours' raw ratings. Centre each neighbour's rating on that "
     "neighbour's own mean, and add user u's mean back (eq. 8)"),
    ({"add_mean": False}, "add user u's own mean r̄_u to the weighted average of deviations"),
    ({"prefilter": False}, "you took the k most similar users first and then kept those who "
                           "rated item i; choose the k neighbours among the users who rated "
                           "item i"),
    ({"positive": False}, "use only neighbours with positive similarity (a user who disagrees "
                          "with u should not vote)"),
    ({"limit": False}, "keep only the k most similar raters, not all of them"),
]


def _check_predict(func) -> None:
    u, i = 0, 2
    for name, row, k in _Q3_CASES:
        sim = _sim_matrix(row)
        got = _number(call_answer(func, _Q3_R.copy(), sim.copy(), u, i, k))
        want = _predict_reference(_Q3_R, sim, u, i, k)
        if np.isnan(got):
            raise Incorrect(f"Case '{name}': your function returned NaN. When no user who "
                            "rated the item has a positive similarity, return the user's mean")
        if _close(got, want):
            continue
        for switches, message in _Q3_MISTAKES:
            if _close(got, _predict_reference(_Q3_R, sim, u, i, k, **switches)):
                raise Incorrect(f"Case '{name}': {message}")
        raise Incorrect(f"Case '{name}': expected {want:.4f}, got {got:.4f}")


# ----------------------------------------------------------------------------------- q4
_Q4_SIM = np.array([  # symmetric, 1 on the diagonal; items 2 and 4 tie for item 0
    [1.0, 0.2, 0.7, 0.1, 0.7, 0.4],
    [0.2, 1.0, 0.3, 0.8, 0.0, 0.5],
    [0.7, 0.3, 1.0, 0.6, 0.2, 0.1],
    [0.1, 0.8, 0.6, 1.0, 0.9, 0.3],
    [0.7, 0.0, 0.2, 0.9, 1.0, 0.6],
    [0.4, 0.5, 0.1, 0.3, 0.6, 1.0],
])
_Q4_CASES = [(0, 3), (3, 2), (5, 5), (1, 1)]  # (item, k)


def _top_reference(sim: np.ndarray, i: int, k: int) -> np.ndarray:
    row = np.asarray(sim[i], dtype=float).copy()
    row[i] = -np.inf
    return np.argsort(-row, kind="stable")[:k]


def _check_top_neighbours(func) -> None:
    for i, k in _Q4_CASES:
        result = call_answer(func, _Q4_SIM.copy(), i, k)
        try:
            got = np.asarray(result)
        except Exception as err:  # noqa: BLE001 - any odd object
            raise Incorrect(f"Return a list or array of item indices, got "
                            f"{type(result).__name__}") from err
        want = _top_reference(_Q4_SIM, i, k)
        case = f"Item {i}, k={k}"
        if got.ndim != 1:
            raise Incorrect(f"{case}: return a 1-D list or array of indices, got shape "
                            f"{got.shape}")
        if got.dtype.kind == "f" and not np.all(got == np.round(got)):
            raise Incorrect(f"{case}: return item indices (integers), not similarities")
        if len(got) != k:
            raise Incorrect(f"{case}: return exactly k={k} indices, got {len(got)}")
        got = got.astype(int)
        if i in got:
            raise Incorrect(f"{case}: leave item {i} itself out (its similarity to itself is "
                            "the largest, but it is not a neighbour)")
        if np.array_equal(got, want):
            continue
        if set(got) == set(want):
            scores = _Q4_SIM[i, got]
            if np.all(np.diff(scores) >= 0) and not np.all(np.diff(scores) == 0):
                raise Incorrect(f"{case}: put the most similar item first (descending order)")
            raise Incorrect(f"{case}: when two items have the same similarity, put the smaller "
                            "index first (np.argsort(-row, kind='stable') does that)")
        raise Incorrect(f"{case}: expected {want.tolist()}, got {got.tolist()}")


EXERCISES = ExerciseSet("ex03", [
    Question("q1", "cosine similarity of two users", _check_cosine,
             "np.nan_to_num(a) turns NaN into 0; then divide a @ b by "
             "np.linalg.norm(a) * np.linalg.norm(b), and return 0.0 when a norm is 0."),
    Question("q2", "Pearson correlation on co-rated films", _check_pearson,
             "both = ~np.isnan(a) & ~np.isnan(b) marks the shared films; centre a[both] and "
             "b[both] on their own means. Return 0.0 if both.sum() < 2 or a sum of squares "
             "is 0."),
    Question("q3", "predict a rating from the k nearest neighbours", _check_predict,
             "means = np.nanmean(R, axis=1). Candidates: users v != u with a rating for i and "
             "sim[u, v] > 0; sort them by similarity and keep k. No candidate: return "
             "means[u]."),
    Question("q4", "top-k neighbours of an item", _check_top_neighbours,
             "Copy the row sim[i], set row[i] = -np.inf so the item cannot pick itself, then "
             "take np.argsort(-row, kind='stable')[:k]."),
])
q1, q2, q3, q4 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
