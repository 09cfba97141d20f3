"""Checkers of ex04: a correct answer passes, wrong answers fail with a useful message."""

import numpy as np
from exercise_harness import make_case_tests

from recsys_lib.exercises.ex04 import _EASE_X


def _predict(mu, b_u, b_i, p_u, q_i):
    return float(mu + b_u + b_i + p_u @ q_i)


def _grad(r, mu, b_u, b_i, p_u, q_i, l2, sign=1.0, factor=2.0, penalty=True, use_p=False):
    e = r - _predict(mu, b_u, b_i, p_u, q_i)
    direction = p_u if use_p else q_i
    return sign * (-factor * e * direction + (factor * l2 * p_u if penalty else 0.0))


def _bpr(p_u, q_i, q_j, b_i, b_j):
    return float(np.logaddexp(0.0, -(p_u @ (q_i - q_j) + b_i - b_j)))


def _bpr_naive(p_u, q_i, q_j, b_i, b_j):
    x = p_u @ (q_i - q_j) + b_i - b_j
    return float(-np.log(1.0 / (1.0 + np.exp(-x))))


def _ease(X, l2, lam=None, rows=False, keep_diagonal=False):
    n = X.shape[1]
    P = np.linalg.inv(X.T @ X + (l2 if lam is None else lam) * np.eye(n))
    B = -P / np.diag(P)[:, None] if rows else -P / np.diag(P)
    if not keep_diagonal:
        np.fill_diagonal(B, 0.0)
    return B


# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (_predict,
           [(lambda mu, b_u, b_i, p, q: p * q, "dot product"),
            (lambda mu, b_u, b_i, p, q: b_u + b_i + p @ q, "global mean"),
            (lambda mu, b_u, b_i, p, q: mu + p @ q, "biases"),
            (lambda mu, b_u, b_i, p, q: mu + b_u + b_i, "interaction"),
            (lambda mu, b_u, b_i, p, q: mu + b_u - b_i + p @ q, "expected"),
            (lambda mu, b_u, b_i, p, q: "3.9", "number")]),
    "q2": (_grad,
           [(lambda *a: _grad(*a, sign=-1.0), "sign is flipped"),
            (lambda *a: _grad(*a, factor=1.0), "half the gradient"),
            (lambda *a: _grad(*a, penalty=False), "penalty"),
            (lambda *a: _grad(*a, use_p=True), "not p_u"),
            (lambda *a: _grad(*a)[:1], "shape"),
            (lambda *a: _grad(*a) + 0.1, "expected")]),
    "q3": (_bpr,
           [(_bpr_naive, "overflows"),
            (lambda p, qi, qj, bi, bj: -_bpr(p, qi, qj, bi, bj), ">= 0"),
            (lambda p, qi, qj, bi, bj: _bpr(p, qj, qi, bj, bi), "x_ui - x_uj"),
            (lambda p, qi, qj, bi, bj: _bpr(p, qi, qj, 0.0, 0.0), "item biases"),
            (lambda p, qi, qj, bi, bj: np.logaddexp(0.0, -(p * (qi - qj))), "single number"),
            (lambda p, qi, qj, bi, bj: 2 * _bpr(p, qi, qj, bi, bj), "expected")]),
    "q4": (_ease,
           [(lambda X, l2: _ease(X, l2, rows=True), "column j"),
            (lambda X, l2: np.eye(X.shape[1]) - l2 * np.linalg.inv(X.T @ X + l2 * np.eye(
                X.shape[1])), "without the constraint"),
            (lambda X, l2: _ease(X, l2, lam=0.0), "left out lambda"),
            (lambda X, l2: _ease(X, l2, keep_diagonal=True), "diagonal of B must be 0"),
            (lambda X, l2: _ease(X, 1.0), "expected"),
            (lambda X, l2: _ease(X, l2)[:, :3], "shape")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex04", CASES)


def test_the_ease_matrix_has_an_invertible_gram_matrix():
    # the checker tells "you left out lambda" apart only if X^T X can be inverted
    assert np.linalg.matrix_rank(_EASE_X.T @ _EASE_X) == _EASE_X.shape[1]
