"""Checkers of ex09: a correct answer passes, wrong answers fail with a useful message."""

import math

import numpy as np
from exercise_harness import make_case_tests

from recsys_lib.models.transformer import sinusoidal_positions


# ----------------------------------------------------------------------------------- q1
def _pe(t, j, d):
    return float(sinusoidal_positions(t + 1, d)[t, j])


def _pe_with(omega_of, swap=False):
    def entry(t, j, d):
        omega = omega_of(j, d)
        use_sin = (j % 2 == 0) != swap
        return math.sin(omega * t) if use_sin else math.cos(omega * t)
    return entry


# ----------------------------------------------------------------------------------- q2
def _layer_norm(x, gamma, beta, eps=1e-6, axis=-1, ddof=0):
    mu = x.mean(axis=axis, keepdims=True)
    return gamma * (x - mu) / np.sqrt(x.var(axis=axis, keepdims=True, ddof=ddof) + eps) + beta


def _eps_outside(x, gamma, beta, eps=1e-6):
    mu = x.mean(axis=-1, keepdims=True)
    return gamma * (x - mu) / (x.std(axis=-1, keepdims=True) + eps) + beta


# ----------------------------------------------------------------------------------- q3
def _block_count(d, h, f):
    return 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d


def _per_head_full_width(d, h, f):  # key_dim = d_model for every head
    return h * (4 * d * d + 3 * d) + d + 2 * d * f + f + d + 4 * d


# ----------------------------------------------------------------------------------- q4
def _mask(seqs):
    real = seqs != 0
    T = seqs.shape[1]
    return np.tril(np.ones((T, T), dtype=bool))[None] & real[:, None, :]


def _tril(seqs, k=0):
    T = seqs.shape[1]
    return np.tril(np.ones((T, T), dtype=bool), k)


# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (_pe,
           [(_pe_with(lambda j, d: 10000 ** (-2 * (j // 2) / d), swap=True), "swapped"),
            (_pe_with(lambda j, d: 10000 ** (-j / d)), "shares the frequency"),
            (_pe_with(lambda j, d: 10000 ** (-2 * j / d)), "counts pairs"),
            (_pe_with(lambda j, d: 10000 ** (2 * (j // 2) / d)), "not multiplied"),
            (lambda t, j, d: sinusoidal_positions(t + 1, d)[t], "got an array"),
            (lambda t, j, d: "sin", "return a float"),
            (lambda t, j, d: float(t), "expected")]),
    "q2": (_layer_norm,
           [(lambda x, g, b, eps=1e-6: _layer_norm(x, g, b, eps, axis=0), "wrong axis"),
            (lambda x, g, b, eps=1e-6: _layer_norm(x, g, b, eps, ddof=1), "d - 1"),
            (lambda x, g, b, eps=1e-6: _layer_norm(x, 1.0, 0.0, eps), "scale and shift"),
            (lambda x, g, b, eps=1e-6: _layer_norm(x, b, g, eps), "swapped"),
            (_eps_outside, "inside the square root"),
            (lambda x, g, b, eps=1e-6: _layer_norm(x, g, b, 1e-6), "eps argument"),
            (lambda x, g, b, eps=1e-6: x.mean(axis=-1), "return the shape of x"),
            (lambda x, g, b, eps=1e-6: "normalised", "NumPy array"),
            (lambda x, g, b, eps=1e-6: 2 * x, "differs from equation (9)")]),
    "q3": (_block_count,
           [(_per_head_full_width, "number of heads"),
            (lambda d, h, f: _block_count(d, h, f) - 5 * d - f, "no biases"),
            (lambda d, h, f: _block_count(d, h, f) - 4 * d, "left out the layer norms"),
            (lambda d, h, f: _block_count(d, h, f) - 2 * d, "one layer norm"),
            (lambda d, h, f: _block_count(d, h, f) - d * f - f, "you counted one"),
            (lambda d, h, f: float(_block_count(d, h, f)), "return an int"),
            (lambda d, h, f: 4 * d * d, "expected")]),
    "q4": (_mask,
           [(lambda s: ~_mask(s), "inverted"),
            (lambda s: np.triu(np.ones((s.shape[1],) * 2, dtype=bool))[None]
             & (s != 0)[:, None, :], "future"),
            (lambda s: _tril(s)[None] & (s != 0)[:, :, None], "instead of the padding keys"),
            (lambda s: np.broadcast_to(_tril(s), (len(s),) + _tril(s).shape).copy(),
             "only causal"),
            (lambda s: np.broadcast_to((s != 0)[:, None, :], (len(s),) + _tril(s).shape)
             .copy(), "only hides padding"),
            (lambda s: _tril(s)[None] & (s == 0)[:, None, :], "hid the real items"),
            (lambda s: _mask(s).astype(int), "boolean array"),
            (lambda s: (s != 0)[:, None, :], "return shape (batch, T, T)"),
            (lambda s: _mask(s).tolist(), "NumPy array"),
            (lambda s: _tril(s, -1)[None] & (s != 0)[:, None, :], "expected")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex09", CASES)
