"""Checkers of ex07: a correct answer passes, wrong answers fail with a useful message."""

import math

import numpy as np
from exercise_harness import make_case_tests

from recsys_lib.attention import causal_mask, scaled_dot_product_attention, softmax


def _softmax_rows(x):
    return softmax(x, axis=-1)


def _naive_softmax(x):
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def _max_subtracted_softmax(x):  # stable for large scores, NaN for a fully masked row
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _minus_1e9_softmax(x):  # no NaN, but uniform weights for a fully masked row
    return softmax(np.where(np.isneginf(x), -1e9, x), axis=-1)


def _columns_softmax(x):
    return softmax(x, axis=0)


def _whole_array_softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def _attend_one(q, K, V):
    out, w = scaled_dot_product_attention(q[None, :], K, V)
    return out[0], w[0]


def _unscaled(q, K, V):
    w = softmax(K @ q)
    return w @ V, w


def _scaled_by_d_k(q, K, V):
    w = softmax(K @ q / len(q))
    return w @ V, w


def _no_softmax(q, K, V):
    w = K @ q / math.sqrt(len(q))
    return w @ V, w


def _sum_of_keys(q, K, V):
    _, w = _attend_one(q, K, V)
    return w @ K, w


def _swapped(q, K, V):
    out, w = _attend_one(q, K, V)
    return w, out


# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (_softmax_rows,
           [(_naive_softmax, "overflows"),
            (_max_subtracted_softmax, "-inf - (-inf) is NaN"),
            (_minus_1e9_softmax, "uniform weights"),
            (_columns_softmax, "columns (axis 0)"),
            (_whole_array_softmax, "whole array"),
            (lambda x: _softmax_rows(x).ravel(), "same shape as x"),
            (lambda x: "softmax", "NumPy array of numbers")]),
    "q2": (_attend_one,
           [(_unscaled, "forgot the scale"),
            (_scaled_by_d_k, "not by d_k"),
            (_no_softmax, "sum to 1"),
            (_sum_of_keys, "rows of V"),
            (_swapped, "return (output, weights)"),
            (lambda q, K, V: _attend_one(q, K, V)[0], "tuple (output, weights)"),
            (lambda q, K, V: (_attend_one(q, K, V)[0], _attend_one(q, K, V)[1][None]),
             "one weight per key")]),
    "q3": (causal_mask,
           [(lambda T: np.triu(np.ones((T, T), dtype=bool)), "upper triangle"),
            (lambda T: np.tri(T, k=-1, dtype=bool), "diagonal must be True"),
            (lambda T: ~causal_mask(T), "forbidden positions"),
            (lambda T: np.tri(T), "dtype is float64"),
            (lambda T: np.where(causal_mask(T), 0.0, -np.inf), "additive mask"),
            (lambda T: np.ones(T, dtype=bool), "expected (4, 4)"),
            (lambda T: np.eye(T, dtype=bool), "expected\n")]),
    "q4": (lambda d, sq, sk: d * sq**2 * sk**2,
           [(lambda d, sq, sk: math.sqrt(d) * sq * sk, "standard deviation"),
            (lambda d, sq, sk: d, "spread of the entries"),
            (lambda d, sq, sk: d * sq * sk, "multiply as squares"),
            (lambda d, sq, sk: d * (sq**2 + sk**2), "not their sum"),
            (lambda d, sq, sk: d**2 * sq**2 * sk**2, "not d_k^2"),
            (lambda d, sq, sk: d + 0.5, "expected 1, got 1.5"),
            (lambda d, sq, sk: [d], "return a number")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex07", CASES)
