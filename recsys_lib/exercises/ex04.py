"""Checks for the exercises of notebook 04 (matrix factorisation and linear item models).

Used by ``exercises/04_matrix_factorization.ipynb``: ``from recsys_lib.exercises.ex04 import *``.
Expected values come from :mod:`recsys_lib.models.factorization` (``mf_predict``,
``mf_gradients``) and :class:`recsys_lib.models.EASERecommender`, the references notebook 04
checks itself against, on small hand-made inputs.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
import pandas as pd

from recsys_lib.exercises.core import ExerciseSet, Incorrect, Question, call_answer
from recsys_lib.models.factorization import mf_gradients, mf_predict
from recsys_lib.models.linear import EASERecommender

__all__ = ["q1", "q2", "q3", "q4", "summary", "assert_all_correct", "EXERCISES"]


def _number(result, what: str) -> float:
    """The learner's result as one float, or Incorrect saying what came back instead."""
    if isinstance(result, bool | np.bool_ | str):
        raise Incorrect(f"{what} should be a number, got {result!r}")
    if isinstance(result, Real):
        return float(result)
    try:
        arr = np.asarray(result, dtype=float)
    except (TypeError, ValueError):
        raise Incorrect(f"{what} should be a number, got {type(result).__name__}") from None
    if arr.size != 1:
        raise Incorrect(f"{what} should be a single number, got an array of shape {arr.shape}")
    return float(arr.reshape(()))


def _array(result, what: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(result, dtype=float)
    except (TypeError, ValueError):
        raise Incorrect(f"{what} should be a NumPy array of numbers, got "
                        f"{type(result).__name__}") from None
    if arr.shape != shape:
        raise Incorrect(f"{what} has shape {arr.shape}, expected {shape}")
    return arr


def _fmt(arr) -> str:
    return str(np.round(np.asarray(arr, dtype=float), 4).tolist())


def _one_rating(mu: float, b_u: float, b_i: float, p_u: np.ndarray, q_i: np.ndarray) -> dict:
    """A parameter dict with one user and one film, for the library's pure functions."""
    return {"mu": mu, "b_u": np.array([b_u]), "b_i": np.array([b_i]),
            "P": np.asarray(p_u, dtype=float)[None, :], "Q": np.asarray(q_i, dtype=float)[None, :]}


# The cases of q1 and q2: (mu, b_u, b_i, p_u, q_i, r, l2). Every term is non-zero, so that
# leaving one out changes the answer; k differs between cases.
_RATING_CASES = [
    (3.5, 0.3, -0.2, np.array([1.0, 0.5]), np.array([0.4, -0.2]), 4.5, 0.1),
    (3.2, -0.4, 0.6, np.array([0.2, -0.7, 1.1]), np.array([0.9, 0.3, -0.5]), 2.0, 0.05),
]


# ----------------------------------------------------------------------------------- q1
def _check_prediction(func) -> None:
    for mu, b_u, b_i, p_u, q_i, _, _ in _RATING_CASES:
        result = call_answer(func, mu, b_u, b_i, p_u.copy(), q_i.copy())
        if np.ndim(result) == 1 and np.shape(result) == p_u.shape:
            raise Incorrect(f"You returned an array of shape {p_u.shape}, one value per factor: "
                            "p_u * q_i multiplies element by element; the dot product sums "
                            "those products (p_u @ q_i or np.dot(p_u, q_i))")
        got = _number(result, "The prediction")
        want = float(mf_predict(_one_rating(mu, b_u, b_i, p_u, q_i), [0], [0])[0])
        dot = float(p_u @ q_i)
        if np.isclose(got, want - mu):
            raise Incorrect(f"You left out the global mean mu = {mu}: the prediction is "
                            "mu + b_u + b_i + p_u . q_i")
        if np.isclose(got, mu + dot):
            raise Incorrect("You left out the biases: add the user bias b_u and the item bias "
                            "b_i to mu + p_u . q_i")
        if np.isclose(got, mu + b_u + b_i):
            raise Incorrect("You left out the interaction p_u . q_i (the dot product of the "
                            "user and film vectors)")
        if not np.isclose(got, want, rtol=1e-9, atol=1e-12):
            raise Incorrect(f"For mu={mu}, b_u={b_u}, b_i={b_i}, p_u={p_u.tolist()}, "
                            f"q_i={q_i.tolist()} expected {want:.4f}, got {got:.4f}")


# ----------------------------------------------------------------------------------- q2
def _check_gradient(func) -> None:
    for mu, b_u, b_i, p_u, q_i, r, l2 in _RATING_CASES:
        result = call_answer(func, r, mu, b_u, b_i, p_u.copy(), q_i.copy(), l2)
        got = _array(result, "The gradient with respect to p_u", p_u.shape)
        params = _one_rating(mu, b_u, b_i, p_u, q_i)
        want = mf_gradients(params, [0], [0], [r], l2)["P"][0]
        e = r - float(mf_predict(params, [0], [0])[0])
        wrong = {
            "sign": (2 * e * q_i - 2 * l2 * p_u,
                     "The sign is flipped: that is the direction in which the loss grows. With "
                     "e = r - r_hat, d(e^2)/dp_u = 2e * de/dp_u = -2e q_i"),
            "half": (-e * q_i + l2 * p_u,
                     "This is half the gradient: the loss (r - r_hat)^2 + l2 |p_u|^2 has no "
                     "factor 1/2, so differentiating each square gives a factor 2"),
            "no penalty": (-2 * e * q_i,
                           "You left out the penalty: l2 * |p_u|^2 adds 2 * l2 * p_u"),
            "p instead of q": (-2 * e * p_u + 2 * l2 * p_u,
                               "d r_hat / d p_u is q_i (the film's vector), not p_u"),
        }
        for wrong_value, message in wrong.values():
            if np.allclose(got, wrong_value) and not np.allclose(got, want):
                raise Incorrect(message)
        if not np.allclose(got, want, rtol=1e-9, atol=1e-12):
            raise Incorrect(f"For r={r}, mu={mu}, b_u={b_u}, b_i={b_i}, p_u={p_u.tolist()}, "
                            f"q_i={q_i.tolist()}, l2={l2} expected {_fmt(want)}, got "
                            f"{_fmt(got)}")


# ----------------------------------------------------------------------------------- q3
def _bpr_reference(p_u, q_i, q_j, b_i, b_j) -> float:
    x = float(p_u @ (q_i - q_j) + b_i - b_j)
    return float(np.logaddexp(0.0, -x))


def _bpr_cases() -> list[tuple[str, tuple]]:
    rng = np.random.default_rng(4)
    p_u, q_i, q_j = rng.normal(0, 1, 3), rng.normal(0, 1, 3), rng.normal(0, 1, 3)
    big = np.array([10.0, 0.0, 0.0])
    return [
        ("an ordinary triple", (p_u, q_i, q_j, 0.3, -0.2)),
        ("a triple in the wrong order by a lot (x_uij = -1000)",
         (big, np.array([-50.0, 0.0, 0.0]), np.array([50.0, 0.0, 0.0]), 0.0, 0.0)),
        ("a triple in the right order by a lot (x_uij = +1000)",
         (big, np.array([50.0, 0.0, 0.0]), np.array([-50.0, 0.0, 0.0]), 0.0, 0.0)),
    ]


def _check_bpr_loss(func) -> None:
    for name, (p_u, q_i, q_j, b_i, b_j) in _bpr_cases():
        with np.errstate(all="ignore"):  # a naive answer overflows; the message explains it
            result = call_answer(func, p_u.copy(), q_i.copy(), q_j.copy(), b_i, b_j)
        got = _number(result, "The loss")
        want = _bpr_reference(p_u, q_i, q_j, b_i, b_j)
        x = float(p_u @ (q_i - q_j) + b_i - b_j)
        if not np.isfinite(got):
            raise Incorrect(f"For {name} you returned {got}: exp(1000) overflows. Write "
                            "-ln sigmoid(x) = ln(1 + exp(-x)) and compute it with "
                            "np.logaddexp(0, -x), which never overflows")
        if np.isclose(got, -want) and not np.isclose(want, 0.0):
            raise Incorrect("The loss must be -ln sigmoid(x_uij), which is >= 0; you returned "
                            "ln sigmoid(x_uij)")
        if np.isclose(got, _bpr_reference(p_u, q_j, q_i, b_j, b_i)) and not np.isclose(
                got, want):
            raise Incorrect("You used x_uj - x_ui: the seen film i must score above the unseen "
                            "film j, so x_uij = x_ui - x_uj")
        no_bias = float(np.logaddexp(0.0, -float(p_u @ (q_i - q_j))))
        if np.isclose(got, no_bias) and not np.isclose(got, want):
            raise Incorrect("Include the item biases: x_ui = p_u . q_i + b_i, so x_uij also "
                            "has b_i - b_j")
        if not np.isclose(got, want, rtol=1e-9, atol=1e-12):
            raise Incorrect(f"For {name} (x_uij = {x:.4g}) expected {want:.6g}, got {got:.6g}")


# ----------------------------------------------------------------------------------- q4
# 6 users x 4 films, binary; X^T X is invertible, so the answer without lambda exists too.
_EASE_X = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 1, 0], [0, 0, 1, 1],
                    [1, 0, 0, 1]], dtype=float)


def _ease_reference(X: np.ndarray, l2: float) -> np.ndarray:
    """EASERecommender's weights for a dense binary matrix (films 0..n-1 as item ids)."""
    users, films = np.nonzero(X)
    table = pd.DataFrame({"user_id": users, "item_id": films})
    return EASERecommender(l2=l2).fit(table).weights_


def _check_ease(func) -> None:
    n = _EASE_X.shape[1]
    for l2 in (0.5, 3.0):
        got = _array(call_answer(func, _EASE_X.copy(), l2), "B", (n, n))
        want = _ease_reference(_EASE_X, l2)
        gram = _EASE_X.T @ _EASE_X
        p = np.linalg.inv(gram + l2 * np.eye(n))
        if np.allclose(got, want.T) and not np.allclose(got, want):
            raise Incorrect("You divided row i by P_ii; divide column j by P_jj: "
                            "B_ij = -P_ij / P_jj (P / np.diag(P) does this, by broadcasting)")
        if np.allclose(got, np.eye(n) - l2 * p) or np.allclose(got, p @ gram):
            raise Incorrect("This is the ridge solution without the constraint diag(B) = 0; "
                            "use B = I - P diag(1 / diag(P))")
        p0 = np.linalg.inv(gram)
        if np.allclose(got, np.eye(n) - p0 / np.diag(p0)):
            raise Incorrect(f"You left out lambda: invert G + lambda I, not G (here lambda = "
                            f"{l2})")
        if not np.allclose(np.diag(got), 0.0):
            raise Incorrect(f"The diagonal of B must be 0 (a film may not predict itself); "
                            f"yours is {_fmt(np.diag(got))}")
        if not np.allclose(got, want, rtol=1e-9, atol=1e-12):
            raise Incorrect(f"For lambda = {l2} expected\n{np.round(want, 4)}\ngot\n"
                            f"{np.round(got, 4)}")


EXERCISES = ExerciseSet("ex04", [
    Question("q1", "MF prediction", _check_prediction,
             "Add four terms: mu, b_u, b_i and the dot product p_u @ q_i (one number)."),
    Question("q2", "gradient of one rating's loss w.r.t. p_u", _check_gradient,
             "Compute r_hat, then e = r - r_hat. The squared error contributes -2 e q_i, the "
             "penalty 2 l2 p_u."),
    Question("q3", "BPR loss of one triple", _check_bpr_loss,
             "x_uij = p_u . (q_i - q_j) + b_i - b_j; the loss is -ln sigmoid(x_uij) = "
             "ln(1 + exp(-x_uij)) = np.logaddexp(0, -x_uij)."),
    Question("q4", "EASE weights", _check_ease,
             "G = X.T @ X; P = np.linalg.inv(G + l2 * np.eye(n)); B = -P / np.diag(P); then "
             "set the diagonal of B to 0."),
])
q1, q2, q3, q4 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
