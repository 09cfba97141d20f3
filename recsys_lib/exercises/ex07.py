"""Checks for the exercises of notebook 07 (scaled dot-product attention).

Used by ``exercises/07_scaled_dot_product_attention.ipynb``:
``from recsys_lib.exercises.ex07 import *``. Expected values come from
:mod:`recsys_lib.attention` (the reference implementation notebook 07 checks against Keras).
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from recsys_lib.attention import causal_mask, scaled_dot_product_attention, softmax
from recsys_lib.exercises.core import ExerciseSet, Incorrect, Question, call_answer
from recsys_lib.exercises.core import as_array as _as_array

__all__ = ["q1", "q2", "q3", "q4", "summary", "assert_all_correct", "EXERCISES"]


def _fmt(arr: np.ndarray) -> str:
    return str(np.round(arr, 4).tolist())


# ----------------------------------------------------------------------------------- q1
_SOFTMAX_CASES = [
    ("a plain row", np.array([1.0, 2.0, 3.0])),
    ("a 2-D array (one softmax per row)", np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])),
    ("large scores", np.array([1000.0, 1001.0, 1002.0])),
    ("masked (-inf) scores", np.array([[0.0, -np.inf, 1.0], [2.0, 2.0, -np.inf]])),
    ("a fully masked row", np.array([[-np.inf, -np.inf, -np.inf], [0.0, 1.0, -np.inf]])),
]


def _check_softmax(func) -> None:
    for name, x in _SOFTMAX_CASES:
        with np.errstate(all="ignore"):  # a naive answer overflows; we explain it below
            got = _as_array(call_answer(func, x.copy()), "Your softmax's result")
        want = softmax(x)
        if got.shape != want.shape:
            raise Incorrect(f"For {name} of shape {x.shape} you returned shape {got.shape}; "
                            "return an array of the same shape as x")
        if name == "large scores" and not np.all(np.isfinite(got)):
            raise Incorrect(f"For large scores {x.tolist()} you returned {got.tolist()}: "
                            "np.exp(1000) overflows to inf. Subtract each row's maximum before "
                            "np.exp; softmax(x) equals softmax(x - c) for any constant c")
        if name == "a fully masked row":
            if np.isnan(got[0]).any():
                raise Incorrect("A row whose scores are all -inf (a query that may attend to "
                                "nothing) gave NaN: its maximum is -inf and -inf - (-inf) is "
                                "NaN. For such a row subtract 0 instead of the maximum, and "
                                "return zeros where the sum of exponentials is 0")
            if np.allclose(got[0], 1 / 3):
                raise Incorrect("A row whose scores are all -inf gave uniform weights (as with "
                                "-1e9 instead of -inf): it must give zeros, since no key is "
                                "allowed")
        if np.isnan(got).any():
            raise Incorrect(f"Your softmax returned NaN for {name}: {x.tolist()} gave "
                            f"{got.tolist()}")
        if x.ndim == 2 and np.allclose(got, softmax(x, axis=0)) and not np.allclose(got, want):
            raise Incorrect("You normalised the columns (axis 0); normalise each row: use "
                            "axis=-1 with keepdims=True in max and sum")
        whole = softmax(x.ravel()).reshape(x.shape)
        if x.ndim == 2 and np.allclose(got, whole) and not np.allclose(got, want):
            raise Incorrect("You normalised the whole array at once; each row must sum to 1 "
                            "on its own (axis=-1, keepdims=True)")
        if np.any(got[np.isneginf(x)] != 0.0):
            raise Incorrect(f"For {name} the -inf (masked) entries must get exactly 0, got "
                            f"{_fmt(got)}")
        if not np.allclose(got, want, rtol=1e-9, atol=1e-12):
            raise Incorrect(f"For {name} {x.tolist()} expected {_fmt(want)}, got {_fmt(got)}")


# ----------------------------------------------------------------------------------- q2
def _check_attend_one(func) -> None:
    rng = np.random.default_rng(7)
    cases = [(4, 5, 3), (9, 2, 1)]  # (d_k, n, d_v): sqrt(d_k) differs from d_k
    for d_k, n, d_v in cases:
        q, K, V = rng.standard_normal(d_k), rng.standard_normal((n, d_k)), rng.standard_normal(
            (n, d_v))
        result = call_answer(func, q.copy(), K.copy(), V.copy())
        if not isinstance(result, tuple) or len(result) != 2:
            raise Incorrect(f"Return a tuple (output, weights), got {type(result).__name__}")
        output = _as_array(result[0], "output")
        weights = _as_array(result[1], "weights")
        want_out, want_w = (a[0] for a in scaled_dot_product_attention(q[None, :], K, V))
        if weights.shape == (d_v,) and output.shape == (n,):
            raise Incorrect("You returned (weights, output); return (output, weights)")
        if weights.shape != (n,):
            raise Incorrect(f"Weights have shape {weights.shape}, expected (n,) = ({n},): one "
                            "weight per key")
        if np.allclose(weights, softmax(K @ q)):
            raise Incorrect(f"You forgot the scale: divide the scores q . k_j by sqrt(d_k) "
                            f"(here sqrt({d_k}) = {math.sqrt(d_k):g}) before the softmax")
        if np.allclose(weights, softmax(K @ q / d_k)):
            raise Incorrect(f"Divide the scores by sqrt(d_k) = {math.sqrt(d_k):g}, not by "
                            f"d_k = {d_k}")
        if not np.isclose(weights.sum(), 1.0):
            raise Incorrect(f"The weights must sum to 1 (yours sum to {weights.sum():.4g}): "
                            "apply a softmax to the scaled scores")
        if not np.allclose(weights, want_w, rtol=1e-9, atol=1e-12):
            raise Incorrect(f"Expected the weights {_fmt(want_w)}, got {_fmt(weights)}")
        if output.shape != (d_v,):
            if output.shape == (d_k,):
                raise Incorrect(f"Output has shape ({d_k},) = (d_k,), expected (d_v,) = "
                                f"({d_v},): the output is the weighted sum of the rows of V, "
                                "not of K")
            raise Incorrect(f"Output has shape {output.shape}, expected (d_v,) = ({d_v},)")
        if not np.allclose(output, want_out, rtol=1e-9, atol=1e-12):
            raise Incorrect(f"Expected the output {_fmt(want_out)}, got {_fmt(output)}: it is "
                            "sum_j a_j v_j, i.e. weights @ V")


# ----------------------------------------------------------------------------------- q3
def _check_causal_mask(func) -> None:
    for T in (4, 1):  # T=4 first: for T=1 several mistakes look alike
        got = np.asarray(call_answer(func, T))
        want = causal_mask(T)
        if got.shape != want.shape:
            raise Incorrect(f"make_causal_mask({T}) has shape {got.shape}, expected ({T}, {T})")
        if got.dtype != bool:
            values = np.asarray(got, dtype=float)
            if np.isneginf(values).any():
                raise Incorrect("That is an additive mask (0 where allowed, -inf where masked); "
                                "return booleans instead: True where attention is allowed")
            if np.array_equal(values, want):
                raise Incorrect(f"The pattern is right but the dtype is {got.dtype}; return a "
                                "boolean array (dtype=bool), e.g. with .astype(bool)")
            raise Incorrect(f"Return a boolean array (dtype=bool), got dtype {got.dtype}")
        if np.array_equal(got, want):
            continue
        if np.array_equal(got, want.T):
            raise Incorrect("That is the upper triangle: query t could see the later keys "
                            "t+1, t+2, ...; put True on and below the diagonal (np.tril)")
        if np.array_equal(got, ~want):
            raise Incorrect("True must mean 'may attend' (the Keras convention); you marked "
                            "the forbidden positions, so invert your mask")
        if np.array_equal(got, np.tri(T, k=-1, dtype=bool)):
            raise Incorrect("The diagonal must be True: position t may attend to itself "
                            "(without it, position 0 may attend to nothing)")
        raise Incorrect(f"For T={T} expected\n{want.astype(int)}\ngot\n{got.astype(int)}")


# ----------------------------------------------------------------------------------- q4
def _reference_variance(d_k: int, sigma_q: float, sigma_k: float) -> float:
    # Var(q_i k_i) = E[q_i^2] E[k_i^2] = sigma_q^2 sigma_k^2 (independent, mean 0); the d_k
    # independent terms' variances add up (notebook 07, equations (6)-(7)).
    return d_k * sigma_q**2 * sigma_k**2


_VARIANCE_MISTAKES = [
    (lambda d, sq, sk: math.sqrt(d) * sq * sk,
     "that is the standard deviation of q . k; the variance is its square"),
    (lambda d, sq, sk: float(d),
     "the spread of the entries matters: each term q_i k_i has variance sigma_q^2 sigma_k^2"),
    (lambda d, sq, sk: d * sq * sk,
     "variances multiply as squares: Var(q_i k_i) = sigma_q^2 sigma_k^2, not sigma_q sigma_k"),
    (lambda d, sq, sk: d * (sq**2 + sk**2),
     "for independent factors with mean 0 the variance of the product is the product of the "
     "variances, not their sum"),
    (lambda d, sq, sk: d**2 * sq**2 * sk**2,
     "the d_k terms are independent, so their variances add up: d_k times, not d_k^2"),
]


def _check_qk_variance(func) -> None:
    for d_k, sigma_q, sigma_k in [(1, 1.0, 1.0), (64, 1.0, 1.0), (16, 2.0, 1.5), (10, 3.0, 0.5)]:
        got = call_answer(func, d_k, sigma_q, sigma_k)
        if isinstance(got, bool) or not isinstance(got, Real):
            raise Incorrect(f"return a number, got {type(got).__name__}")
        want = _reference_variance(d_k, sigma_q, sigma_k)
        if math.isclose(got, want, rel_tol=1e-9):
            continue
        for mistake, message in _VARIANCE_MISTAKES:
            if math.isclose(got, mistake(d_k, sigma_q, sigma_k), rel_tol=1e-9):
                raise Incorrect(f"For d_k={d_k}, sigma_q={sigma_q}, sigma_k={sigma_k} you "
                                f"returned {got:g}: {message}")
        raise Incorrect(f"For d_k={d_k}, sigma_q={sigma_q}, sigma_k={sigma_k} expected "
                        f"{want:g}, got {got:g}")


EXERCISES = ExerciseSet("ex07", [
    Question("q1", "stable softmax", _check_softmax,
             "Subtract the row maximum (axis=-1, keepdims=True) before np.exp; where that "
             "maximum is -inf use 0 instead (np.where(np.isfinite(top), top, 0)), and divide "
             "with np.divide(..., where=total > 0) so an all-zero row stays zero."),
    Question("q2", "attention for one query", _check_attend_one,
             "scores = K @ q has one entry per key; divide by math.sqrt(len(q)), take the "
             "softmax, then weights @ V sums the rows of V."),
    Question("q3", "causal mask", _check_causal_mask,
             "Row t is a query, column s a key; allowed when s <= t: np.tril of a boolean "
             "array of ones, or np.tri(T, dtype=bool)."),
    Question("q4", "variance of q . k", _check_qk_variance,
             "Var(q_i k_i) = E[q_i^2] E[k_i^2] - (E[q_i] E[k_i])^2 for independent entries, and "
             "variances of independent terms add up."),
])
q1, q2, q3, q4 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
