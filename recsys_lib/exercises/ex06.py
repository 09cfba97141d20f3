"""Checks for the exercises of notebook 06 (deep learning for recommendation).

Used by ``exercises/06_deep_recommenders.ipynb``: ``from recsys_lib.exercises.ex06 import *``.
Expected values come from small NumPy reference implementations of notebook 06's equations
(1), (4), (11) and (12), so that checking does not need to import Keras; notebook 06 shows
that the same equations match the Keras layers and the library's losses.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from scipy.special import expit, logsumexp

from recsys_lib.exercises.core import ExerciseSet, Incorrect, Question, call_answer
from recsys_lib.exercises.core import as_array as _as_array

__all__ = ["q1", "q2", "q3", "q4", "summary", "assert_all_correct", "EXERCISES"]


def _as_number(result, what: str) -> float:
    """The learner's result as one float; arrays of one element are accepted."""
    if isinstance(result, bool):
        raise Incorrect(f"{what} should be a number, got a bool")
    if isinstance(result, Real):
        return float(result)
    arr = _as_array(result, what)
    if arr.size != 1:
        raise Incorrect(f"{what} should be one number, got an array of shape {arr.shape}")
    return float(arr.reshape(()))


def _fmt(arr) -> str:
    return str(np.round(np.asarray(arr, dtype=float), 4).tolist())


def _close(a, b) -> bool:
    return np.shape(a) == np.shape(b) and bool(np.allclose(a, b, rtol=1e-7, atol=1e-9))


# ----------------------------------------------------------------------------------- q1
def _reference_lookup(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return table[ids]  # eq. (1): one-hot @ table selects rows


def _check_lookup(func) -> None:
    table = np.arange(15, dtype=float).reshape(5, 3) / 10 + 1  # (5, 3), every entry distinct
    cases = [("ids [3, 0, 3, 4] (a repeat, the last row)", np.array([3, 0, 3, 4])),
             ("ids [2]", np.array([2]))]
    for name, ids in cases:
        got = _as_array(call_answer(func, table.copy(), ids.copy()), "Your result")
        want = _reference_lookup(table, ids)
        if got.shape != want.shape:
            if got.shape == want.T.shape and got.ndim == 2 and want.shape[0] != want.shape[1]:
                raise Incorrect(f"For {name} you returned shape {got.shape}, expected "
                                f"{want.shape}: that is transposed. One-hot rows are the ids: "
                                "one_hot has shape (len(ids), n_rows), and one_hot @ table has "
                                "one row per id")
            raise Incorrect(f"For {name} you returned shape {got.shape}, expected {want.shape} "
                            "(len(ids), d): one row of the table per id")
        if _close(got, table[ids - 1]):
            raise Incorrect("You shifted the ids by one: id 0 is row 0 of the table (the "
                            "one-hot vector of id b has its 1 at position b)")
        if not _close(got, want):
            raise Incorrect(f"For {name} with table = {_fmt(table)} expected {_fmt(want)}, got "
                            f"{_fmt(got)}")


# ----------------------------------------------------------------------------------- q2
def _reference_gmf(P, Q, h, u, i) -> float:
    return float(h @ (P[u] * Q[i]))  # eq. (4)


def _check_gmf(func) -> None:
    rng = np.random.default_rng(6)
    P, Q = rng.normal(size=(4, 3)), rng.normal(size=(6, 3))  # 4 users, 6 items, 3 factors
    h = np.array([2.0, -1.0, 0.5])
    for u, i in [(1, 3), (0, 0), (3, 5), (2, 1)]:
        got = call_answer(func, P.copy(), Q.copy(), h.copy(), u, i)
        if not isinstance(got, Real | np.ndarray | np.generic) or isinstance(got, bool):
            raise Incorrect(f"return a number, got {type(got).__name__}")
        got_arr = np.asarray(got, dtype=float)
        if got_arr.size != 1:
            if _close(got_arr, h * P[u] * Q[i]) or _close(got_arr, P[u] * Q[i]):
                raise Incorrect(f"You returned the vector {_fmt(got_arr)} of per-factor terms; "
                                "sum it: the GMF score is one number, h . (p_u * q_i)")
            raise Incorrect(f"Return one number, got an array of shape {got_arr.shape}")
        got = float(got_arr.reshape(()))
        want = _reference_gmf(P, Q, h, u, i)
        if np.isclose(got, want, rtol=1e-9, atol=1e-12):
            continue
        if np.isclose(got, float(P[u] @ Q[i])):
            raise Incorrect(f"For user {u}, item {i} you returned p_u . q_i = {got:.4f}, the "
                            "plain MF score: GMF weights each factor, h . (p_u * q_i)")
        if np.isclose(got, float(expit(want))):
            raise Incorrect(f"You returned sigmoid(score) = {got:.4f}, a probability; return "
                            f"the logit h . (p_u * q_i) = {want:.4f}, before the sigmoid")
        if i < len(P) and u < len(Q) and np.isclose(got, _reference_gmf(P, Q, h, i, u)):
            raise Incorrect("User and item are swapped: the user's row comes from P (P[u]) "
                            "and the item's row from Q (Q[i])")
        raise Incorrect(f"For user {u}, item {i} expected {want:.4f}, got {got:.4f}")


# ----------------------------------------------------------------------------------- q3
def _reference_loss(U, V, temperature) -> float:
    logits = U @ V.T / temperature  # (B, B) eq. (11), positives on the diagonal
    return float(np.mean(logsumexp(logits, axis=1) - np.diag(logits)))


def _loss_cases():
    rng = np.random.default_rng(11)
    unit = rng.normal(size=(2, 5, 4))
    unit /= np.linalg.norm(unit, axis=-1, keepdims=True)  # unit vectors, as in two towers
    big = rng.normal(size=(2, 3, 4)) * 30  # long vectors: scores in the thousands
    return [("unit vectors, B = 5, temperature 0.1", unit[0], unit[1], 0.1),
            ("unit vectors, B = 5, temperature 1", unit[0], unit[1], 1.0),
            ("large scores (|S| in the thousands), B = 3", big[0], big[1], 0.5)]


def _check_in_batch_loss(func) -> None:
    for name, U, V, temperature in _loss_cases():
        with np.errstate(all="ignore"):  # a naive answer overflows; we explain it below
            result = call_answer(func, U.copy(), V.copy(), temperature)
        arr = _as_array(result, "The loss")
        B = len(U)
        if arr.shape == (B,):
            raise Incorrect(f"You returned shape {arr.shape}, one loss per row; return one "
                            "number, their mean over the B rows")
        got = _as_number(result, "The loss")
        if not np.isfinite(got):
            raise Incorrect(f"For {name} you returned {got}: np.exp overflows for large "
                            "scores. Use scipy.special.logsumexp, or subtract each row's "
                            "maximum before np.exp (log-sum-exp trick)")
        want = _reference_loss(U, V, temperature)
        if np.isclose(got, want, rtol=1e-7, atol=1e-9):
            continue
        if np.isclose(got, B * want, rtol=1e-7):
            raise Incorrect("You summed the B row losses; average them (eq. 11 has 1/B)")
        if temperature != 1.0 and np.isclose(got, _reference_loss(U, V, 1.0), rtol=1e-7):
            raise Incorrect(f"divide the scores by the temperature ({temperature}) before the "
                            "softmax: S = U @ V.T / temperature")
        if np.isclose(got, _reference_loss(V, U, temperature), rtol=1e-7):
            raise Incorrect("You normalised over the users of each column (axis 0, or V @ U.T);"
                            " each row k is user k's softmax over the B items: logsumexp over "
                            "axis=1 of U @ V.T")
        raise Incorrect(f"For {name} expected {want:.4f}, got {got:.4f}")


# ----------------------------------------------------------------------------------- q4
def _reference_corrected(U, V, batch_items, item_counts, temperature) -> np.ndarray:
    q = item_counts / item_counts.sum()  # sampling probability of each catalogue item
    return U @ V.T / temperature - np.log(q[batch_items])[None, :]  # eq. (12)


def _check_corrected(func) -> None:
    rng = np.random.default_rng(12)
    U, V = rng.normal(size=(2, 4, 3))  # (B, d) each, B = 4
    item_counts = np.array([50.0, 3.0, 10.0, 1.0, 200.0, 7.0])  # 6 catalogue items
    batch_items = np.array([4, 0, 2, 5])  # the catalogue ids of the batch's items
    temperature = 0.2
    args = (U, V, batch_items, item_counts, temperature)
    got = _as_array(call_answer(func, *(a.copy() if isinstance(a, np.ndarray) else a
                                        for a in args)), "your logits")
    want = _reference_corrected(*args)
    if got.shape != want.shape:
        raise Incorrect(f"You returned shape {got.shape}, expected {want.shape} (B, B): row k "
                        "is user k, column j is the batch's item j")
    if _close(got, want):
        return
    plain = U @ V.T / temperature
    logq = np.log(item_counts / item_counts.sum())
    if _close(got, plain):
        raise Incorrect("These are the uncorrected logits; subtract log q_j of each column's "
                        "item (eq. 12)")
    if _close(got, plain + logq[batch_items][None, :]):
        raise Incorrect("you added log q_j; subtract it, so that popular items (large q_j, "
                        "log q_j closer to 0) gain less than rare ones")
    if _close(got, plain - logq[batch_items][:, None]):
        raise Incorrect("You subtracted log q of the row's item; the correction belongs to "
                        "the candidate item, i.e. to the column: use log_q[None, :]")
    if _close(got, plain - np.log(item_counts[batch_items])[None, :]):
        raise Incorrect("You used log(count); q_j is a probability, count_j / total count. "
                        "(The two differ by the constant log(total), which the softmax would "
                        "not notice, but these logits would differ from eq. 12.)")
    if _close(got, plain - logq[: len(batch_items)][None, :]):
        raise Incorrect("You took the counts of items 0..B-1; look up the counts of the "
                        "batch's items: item_counts[batch_items]")
    if _close(got, U @ V.T - logq[batch_items][None, :]):
        raise Incorrect(f"divide the dot products by the temperature ({temperature}) before "
                        "subtracting log q")
    raise Incorrect(f"expected {_fmt(want)}, got {_fmt(got)}")


EXERCISES = ExerciseSet("ex06", [
    Question("q1", "embedding lookup as a one-hot product", _check_lookup,
             "np.eye(n_rows)[ids] gives one one-hot row per id, shape (len(ids), n_rows); "
             "multiply it by the table with @."),
    Question("q2", "GMF score", _check_gmf,
             "Take row u of P and row i of Q, multiply them element-wise, weight by h and "
             "sum: np.sum(h * P[u] * Q[i])."),
    Question("q3", "in-batch softmax loss", _check_in_batch_loss,
             "S = U @ V.T / temperature is (B, B) with the positives on the diagonal; each "
             "row's loss is logsumexp(S[k]) - S[k, k] (scipy.special.logsumexp, axis=1)."),
    Question("q4", "logQ-corrected logits", _check_corrected,
             "q = item_counts / item_counts.sum(); then U @ V.T / temperature minus "
             "np.log(q[batch_items]) broadcast along the columns ([None, :])."),
])
q1, q2, q3, q4 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
