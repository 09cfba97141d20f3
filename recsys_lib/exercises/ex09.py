"""Checks for the exercises of notebook 09 (the Transformer block).

Used by ``exercises/09_transformer_block.ipynb``: ``from recsys_lib.exercises.ex09 import *``.
Expected values come from the course library (:mod:`recsys_lib.models.transformer`,
:mod:`recsys_lib.attention`) or from equation (9) of notebook 09, which the notebook checks
against Keras. Keras (through :mod:`recsys_lib.models.transformer`) is imported only when
question 1 or 3 is checked.
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from recsys_lib.attention import causal_mask, combine_masks, padding_mask
from recsys_lib.config import import_tensorflow_quietly
from recsys_lib.exercises.core import ExerciseSet, Incorrect, Question, call_answer

__all__ = ["q1", "q2", "q3", "q4", "summary", "assert_all_correct", "EXERCISES"]


def _transformer():
    """The library module with the Transformer layers; importing it starts Keras."""
    import_tensorflow_quietly()
    from recsys_lib.models import transformer

    return transformer


def _array(result, what: str) -> np.ndarray:
    """The learner's result as a float array, or Incorrect saying what came back instead."""
    try:
        arr = np.asarray(result, dtype=float)
    except (TypeError, ValueError):
        raise Incorrect(f"{what} should be a NumPy array of numbers, got "
                        f"{type(result).__name__}") from None
    if arr.ndim == 0:
        raise Incorrect(f"{what} should be an array, got a single number")
    return arr


# ----------------------------------------------------------------------------------- q1
_Q1_CASES = [  # (t, j, d_model)
    (0, 0, 8), (0, 1, 8), (3, 0, 8), (3, 1, 8), (3, 2, 8), (5, 3, 8), (7, 5, 16),
    (10, 31, 32), (49, 6, 32), (2, 7, 8),
]


def _pe_variant(t: int, j: int, d: int, kind: str) -> float:
    """Equation (4) and the usual ways to get it wrong."""
    i = j // 2
    exponent = {"right": 2 * i, "swapped": 2 * i, "j": j, "2j": 2 * j, "sign": 2 * i}[kind]
    omega = 10000.0 ** ((exponent if kind == "sign" else -exponent) / d)
    use_sin = (j % 2 == 0) != (kind == "swapped")
    return float(np.sin(omega * t) if use_sin else np.cos(omega * t))


_Q1_MISTAKES = {
    "swapped": "Sine and cosine are swapped: the even dimension j = 2i is sin(omega_i t), the "
               "odd dimension j = 2i + 1 is cos(omega_i t)",
    "j": "The odd dimension j = 2i + 1 shares the frequency of its pair, omega_i = "
         "10000^(-2i/d) with i = j // 2; you used 10000^(-j/d)",
    "2j": "You used 2j/d as the exponent; j counts single dimensions, i = j // 2 counts pairs, "
          "and the exponent is 2i/d",
    "sign": "The frequency is 10000^(-2i/d) (it gets smaller for later pairs): t is divided "
            "by 10000^(2i/d), not multiplied",
}


def _check_sinusoidal_entry(func) -> None:
    sinusoidal_positions = _transformer().sinusoidal_positions
    got = {}
    for t, j, d in _Q1_CASES:
        value = call_answer(func, t, j, d)
        if isinstance(value, bool) or not isinstance(value, Real):
            if isinstance(value, np.ndarray):
                raise Incorrect(f"Return one number (the entry at t={t}, j={j}), got an array "
                                f"of shape {value.shape}")
            raise Incorrect(f"return a float, got {type(value).__name__} {value!r}")
        got[(t, j, d)] = float(value)
    for t, j, d in _Q1_CASES:
        want = float(sinusoidal_positions(t + 1, d)[t, j])
        if abs(got[(t, j, d)] - want) <= 1e-5:
            continue
        for kind, message in _Q1_MISTAKES.items():
            if all(abs(got[c] - _pe_variant(*c, kind)) <= 1e-5 for c in _Q1_CASES):
                raise Incorrect(message)
        raise Incorrect(f"For t={t}, j={j}, d_model={d} expected {want:.6f}, got "
                        f"{got[(t, j, d)]:.6f}")


# ----------------------------------------------------------------------------------- q2
def _layer_norm(x, gamma, beta, eps, axis=-1, ddof=0, eps_inside=True):
    """Equation (9) of notebook 09, with switches for the usual mistakes."""
    mu = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True, ddof=ddof)
    scale = np.sqrt(var + eps) if eps_inside else np.sqrt(var) + eps
    return gamma * (x - mu) / scale + beta


def _q2_cases():
    rng = np.random.default_rng(9)
    d = 4
    x3 = rng.normal(3.0, 5.0, size=(2, 3, d))  # (batch, T, d), far from mean 0 / variance 1
    x3[1, 2] = [1e-3, -1e-3, 1e-3, -1e-3]  # variance 1e-6, as small as eps: eps must matter
    x2 = rng.normal(-2.0, 0.5, size=(3, d))  # (positions, d)
    gamma, beta = rng.normal(1.0, 0.5, d), rng.normal(0.0, 0.5, d)
    return [("a (batch=2, T=3, d=4) array", x3, gamma, beta, 1e-6),
            ("a (3, 4) array", x2, gamma, beta, 1e-6),
            ("a (3, 4) array with eps=0.1", x2, gamma, beta, 0.1)]


def _check_layer_norm(func) -> None:
    for name, x, gamma, beta, eps in _q2_cases():
        got = _array(call_answer(func, x.copy(), gamma.copy(), beta.copy(), eps=eps),
                     "your layer_norm's result")
        if got.shape != x.shape:
            raise Incorrect(f"For {name} you returned shape {got.shape}; return the shape of x, "
                            f"{x.shape}")
        want = _layer_norm(x, gamma, beta, eps)
        if np.allclose(got, want, rtol=1e-6, atol=1e-8):
            continue
        if np.isnan(got).any():
            raise Incorrect(f"Your result for {name} contains NaN")
        if any(np.allclose(got, _layer_norm(x, gamma, beta, eps, axis=a))
               for a in range(x.ndim - 1)):
            raise Incorrect("You normalised over the wrong axis: layer norm uses the d features "
                            "of each position, the last axis (axis=-1, keepdims=True), not the "
                            "batch or the positions")
        if np.allclose(got, _layer_norm(x, gamma, beta, eps, ddof=1)):
            raise Incorrect("You used the sample variance (divided by d - 1); layer norm divides "
                            "by d, as np.var does by default (ddof=0)")
        if np.allclose(got, _layer_norm(x, 1.0, 0.0, eps)):
            raise Incorrect("You returned the normalised values without the learned scale and "
                            "shift: return gamma * x_hat + beta")
        if np.allclose(got, _layer_norm(x, beta, gamma, eps)):
            raise Incorrect("Gamma and beta are swapped: gamma multiplies x_hat, beta is added")
        if np.allclose(got, _layer_norm(x, gamma, beta, eps, eps_inside=False)):
            raise Incorrect("Eps belongs inside the square root, sqrt(var + eps); you added it "
                            "to the standard deviation (it matters when the variance is small)")
        if eps != 1e-6 and np.allclose(got, _layer_norm(x, gamma, beta, 1e-6)):
            raise Incorrect("Use the eps argument; your function ignored eps=0.1")
        raise Incorrect(f"For {name} your result differs from equation (9) by up to "
                        f"{np.abs(got - want).max():.3g}")


# ----------------------------------------------------------------------------------- q3
_Q3_CASES = [(64, 2, 256), (32, 4, 128), (8, 1, 16), (48, 3, 100), (16, 8, 8)]


def _keras_block_count(d_model: int, num_heads: int, d_ff: int) -> int:
    """count_params() of the library's CausalTransformerBlock, built without data."""
    block = _transformer().CausalTransformerBlock(d_model, num_heads, d_ff)
    block.build((None, 5, d_model))
    return int(block.count_params())


def _check_block_count(func) -> None:
    answers = {}
    for d, h, f in _Q3_CASES:
        got = call_answer(func, d, h, f)
        if isinstance(got, bool) or not isinstance(got, int | np.integer):
            raise Incorrect(f"return an int (a number of parameters), got {type(got).__name__}"
                            f" {got!r}; use // instead of / for d_model // num_heads")
        answers[(d, h, f)] = int(got)
    d, h, f = _Q3_CASES[0]
    if answers[(d, h, f)] != int(call_answer(func, d, 1, f)):
        raise Incorrect(f"Your count changes with the number of heads (d_model={d}, d_ff={f}: "
                        f"{int(call_answer(func, d, 1, f))} with 1 head, "
                        f"{answers[(d, h, f)]} with {h}). Each head has d_model // num_heads "
                        "dimensions, so the heads share the width and the count does not "
                        "depend on them")
    for (d, h, f), got in answers.items():
        want = _keras_block_count(d, h, f)
        if got == want:
            continue
        case = f"For d_model={d}, num_heads={h}, d_ff={f}"
        biases = 4 * d + f + d  # attention (3 projections + output) and the FFN's two layers
        if got == want - biases:
            raise Incorrect(f"{case} you counted no biases: attention has 4 (d_model values "
                            "each), the FFN's two layers have d_ff and d_model")
        if got == want - 4 * d:
            raise Incorrect(f"{case} you left out the layer norms: there are two, each with "
                            "gamma and beta of d_model values")
        if got == want - 2 * d:
            raise Incorrect(f"{case} you counted one layer norm; the block has two (before the "
                            "attention and before the FFN), each with gamma and beta")
        if got == want - d * f - f:
            raise Incorrect(f"{case} the FFN has two Dense layers, W1 (d_model x d_ff) + b1 "
                            "and W2 (d_ff x d_model) + b2; you counted one")
        raise Incorrect(f"{case} expected {want:,} parameters, got {got:,}")


# ----------------------------------------------------------------------------------- q4
_Q4_SEQUENCES = np.array([[0, 0, 3, 4, 5],
                          [1, 2, 3, 4, 5],
                          [0, 0, 0, 0, 7],
                          [0, 6, 2, 9, 9]])


def _check_mask(func) -> None:
    seqs = _Q4_SEQUENCES
    batch, T = seqs.shape
    got = call_answer(func, seqs.copy())
    if not isinstance(got, np.ndarray):
        raise Incorrect(f"Return a NumPy array, got {type(got).__name__}")
    if got.dtype != bool:
        raise Incorrect(f"Return a boolean array (True = may attend), got dtype {got.dtype}; "
                        "compare with != 0 or build it with dtype=bool")
    if got.shape != (batch, T, T):
        raise Incorrect(f"For sequences of shape {seqs.shape} return shape (batch, T, T) = "
                        f"{(batch, T, T)}, got {got.shape}")
    real = seqs != 0
    causal = causal_mask(T)
    want = combine_masks(padding_mask(real), causal)  # (batch, T, T)
    if np.array_equal(got, want):
        return
    if np.array_equal(got, ~want):
        raise Incorrect("Your mask is inverted: True must mean 'may attend'")
    if np.array_equal(got, combine_masks(padding_mask(real), causal.T)):
        raise Incorrect("Your mask lets a query see the future: query t may attend to keys "
                        "s <= t (the lower triangle, np.tril), not s >= t")
    if np.array_equal(got, causal[None] & real[:, :, None]):
        raise Incorrect("You masked the padding queries (rows) instead of the padding keys "
                        "(columns): use real[:, None, :], so that no query looks at padding")
    if np.array_equal(got, np.broadcast_to(causal, got.shape)):
        raise Incorrect("Your mask is only causal: padding keys (item 0) must be hidden too")
    if np.array_equal(got, np.broadcast_to(real[:, None, :], got.shape)):
        raise Incorrect("Your mask only hides padding: a causal block must also hide the "
                        "future keys s > t")
    if np.array_equal(got, combine_masks(padding_mask(~real), causal)):
        raise Incorrect("You hid the real items and kept the padding: real items are "
                        "sequences != 0")
    wrong = np.argwhere(got != want)[0]
    b, t, s = (int(v) for v in wrong)
    raise Incorrect(f"Sequence {b} ({seqs[b].tolist()}), query {t}, key {s}: expected "
                    f"{bool(want[b, t, s])}, got {bool(got[b, t, s])}")


EXERCISES = ExerciseSet("ex09", [
    Question("q1", "one sinusoidal encoding entry", _check_sinusoidal_entry,
             "i = j // 2 gives the pair of dimension j; omega = 10000 ** (-2 * i / d_model); "
             "even j: math.sin(omega * t), odd j: math.cos(omega * t)."),
    Question("q2", "layer normalisation", _check_layer_norm,
             "Mean and variance over axis=-1 with keepdims=True (variance divided by d); "
             "x_hat = (x - mean) / np.sqrt(var + eps); return gamma * x_hat + beta."),
    Question("q3", "parameters of a block", _check_block_count,
             "Attention: 4 d_model^2 + 4 d_model (notebook 08, whatever the number of heads). "
             "FFN: two Dense layers with biases. Two layer norms: gamma and beta each."),
    Question("q4", "causal + padding mask", _check_mask,
             "real = sequences != 0; causal = np.tril(np.ones((T, T), dtype=bool)); combine "
             "them with & after adding axes: causal[None, :, :] & real[:, None, :]."),
])
q1, q2, q3, q4 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
