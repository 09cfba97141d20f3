"""Checkers of ex06: a correct answer passes, wrong answers fail with a useful message."""

import numpy as np
from exercise_harness import make_case_tests
from scipy.special import expit, logsumexp


def _lookup(table, ids):
    return np.eye(table.shape[0])[ids] @ table


def _gmf(P, Q, h, u, i):
    return float(h @ (P[u] * Q[i]))


def _loss(U, V, t):
    S = U @ V.T / t
    return float(np.mean(logsumexp(S, axis=1) - np.diag(S)))


def _naive_loss(U, V, t):  # overflows for large scores
    S = U @ V.T / t
    return float(np.mean(np.log(np.exp(S).sum(axis=1)) - np.diag(S)))


def _corrected(U, V, items, counts, t):
    return U @ V.T / t - np.log(counts[items] / counts.sum())[None, :]


def _log_q(items, counts):
    return np.log(counts[items] / counts.sum())


# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (_lookup,
           [(lambda table, ids: table[ids].T, "transposed"),
            (lambda table, ids: table[ids - 1], "shifted the ids by one"),
            (lambda table, ids: table[:len(ids)], "expected"),
            (lambda table, ids: table[ids][:, :2], "expected (4, 3)"),
            (lambda table, ids: "rows", "NumPy array of numbers")]),
    "q2": (_gmf,
           [(lambda P, Q, h, u, i: float(P[u] @ Q[i]), "plain MF score"),
            (lambda P, Q, h, u, i: float(expit(_gmf(P, Q, h, u, i))), "a probability"),
            (lambda P, Q, h, u, i: float(h @ (P[i] * Q[u])), "swapped"),
            (lambda P, Q, h, u, i: h * P[u] * Q[i], "per-factor terms"),
            (lambda P, Q, h, u, i: _gmf(P, Q, h, u, i) + 1.0, "expected"),
            (lambda P, Q, h, u, i: "score", "return a number")]),
    "q3": (_loss,
           [(_naive_loss, "overflows"),
            (lambda U, V, t: len(U) * _loss(U, V, t), "summed the B row losses"),
            (lambda U, V, t: _loss(U, V, 1.0), "divide the scores by the temperature"),
            (lambda U, V, t: _loss(V, U, t), "axis=1"),
            (lambda U, V, t: logsumexp(U @ V.T / t, axis=1) - np.diag(U @ V.T / t),
             "one loss per row"),
            (lambda U, V, t: _loss(U, V, t) + 0.1, "expected")]),
    "q4": (_corrected,
           [(lambda U, V, items, counts, t: U @ V.T / t, "uncorrected"),
            (lambda U, V, items, counts, t: U @ V.T / t + _log_q(items, counts)[None, :],
             "you added log q_j"),
            (lambda U, V, items, counts, t: U @ V.T / t - _log_q(items, counts)[:, None],
             "to the column"),
            (lambda U, V, items, counts, t: U @ V.T / t - np.log(counts[items])[None, :],
             "log(count)"),
            (lambda U, V, items, counts, t: U @ V.T / t
             - _log_q(np.arange(len(items)), counts)[None, :], "item_counts[batch_items]"),
            (lambda U, V, items, counts, t: U @ V.T - _log_q(items, counts)[None, :],
             "divide the dot products by the temperature"),
            (lambda U, V, items, counts, t: _corrected(U, V, items, counts, t)[0],
             "expected (4, 4)"),
            (lambda U, V, items, counts, t: _corrected(U, V, items, counts, t) * 2, "expected")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex06", CASES)
