"""Checks for the exercises of notebook 08 (multi-head attention).

Used by ``exercises/08_multi_head_attention.ipynb``: ``from recsys_lib.exercises.ex08 import *``.
Keras is imported only by the check of question 4, which builds layers.
"""

from __future__ import annotations

import math

import numpy as np

from recsys_lib.attention import mha_parameter_count, scaled_dot_product_attention
from recsys_lib.config import import_tensorflow_quietly
from recsys_lib.exercises.core import ExerciseSet, Incorrect, Question, call_answer

__all__ = ["q1", "q2", "q3", "q4", "summary", "assert_all_correct", "EXERCISES"]


def _array(result, what: str) -> np.ndarray:
    try:
        arr = np.asarray(result, dtype=float)
    except (TypeError, ValueError):
        raise Incorrect(f"{what} should be a NumPy array, got {type(result).__name__}") from None
    if arr.ndim == 0:
        raise Incorrect(f"{what} should be an array, got a single number")
    return arr


def _shape(arr: np.ndarray, want: tuple[int, ...], what: str, layout: str) -> None:
    if arr.shape != want:
        raise Incorrect(f"{what} should have shape {want} {layout}, got {arr.shape}")


# ----------------------------------------------------------------------------------- q1
_Q1_CASES = [  # (d_model, num_heads, key_dim, use_bias)
    (8, 2, 4, True),
    (64, 4, 16, True),
    (12, 3, 5, True),  # key_dim is not d_model / num_heads
    (12, 3, 5, False),
]


def _check_mha_params(func) -> None:
    for d, h, k, use_bias in _Q1_CASES:
        got = call_answer(func, d, h, k, use_bias)
        if isinstance(got, bool) or not isinstance(got, int | np.integer):
            raise Incorrect(f"return an int (a number of parameters), got {type(got).__name__}"
                            f" {got!r}")
        want = mha_parameter_count(d, h, k, use_bias=use_bias)
        if got == want:
            continue
        case = f"For d_model={d}, num_heads={h}, key_dim={k}, use_bias={use_bias}"
        no_bias = mha_parameter_count(d, h, k, use_bias=False)
        with_bias = mha_parameter_count(d, h, k, use_bias=True)
        if use_bias and got == no_bias:
            raise Incorrect(f"{case} you counted no biases: Keras adds a bias to each of the "
                            "three projections (h * key_dim values each) and to the output "
                            "(d_model values)")
        if use_bias and got == want - d:
            raise Incorrect(f"{case} you forgot the output bias b_O (d_model = {d} values)")
        if not use_bias and got == with_bias:
            raise Incorrect(f"{case} you counted biases, but with use_bias=False the layer has "
                            "only the four kernels")
        if got in (3 * d * h * k + (3 * h * k if use_bias else 0),
                   3 * d * h * k + (3 * h * k + d if use_bias else 0)):
            raise Incorrect(f"{case} you counted W^Q, W^K and W^V but not W^O, the output "
                            "projection of shape (num_heads * value_dim, d_model)")
        if got == mha_parameter_count(d, 1, k, use_bias=use_bias):
            # one head of key_dim, or num_heads heads of key_dim / num_heads: same count
            raise Incorrect(f"{case} you counted a total width of key_dim = {k} per projection; "
                            "in Keras key_dim is the size of each head and each of the "
                            f"num_heads heads has its own W_i^Q, W_i^K, W_i^V, so the width "
                            f"is num_heads * key_dim = {h * k}")
        if k * h != d and got == 4 * d * d + (4 * d if use_bias else 0):
            raise Incorrect(f"{case} you used 4 d_model^2 + 4 d_model, which holds only when "
                            "key_dim = d_model / num_heads; here it is not, so count each "
                            "matrix with key_dim")
        raise Incorrect(f"{case} expected {want}, got {got}; count d_model * num_heads * "
                        "key_dim for each of W^Q, W^K, W^V, num_heads * key_dim * d_model for "
                        "W^O, and the biases")


# ----------------------------------------------------------------------------------- q2
def _reference_split(x: np.ndarray, h: int) -> np.ndarray:
    b, t, width = x.shape
    return x.reshape(b, t, h, width // h).transpose(0, 2, 1, 3)


def _check_split_merge(answer) -> None:
    if not (isinstance(answer, tuple | list) and len(answer) == 2
            and all(callable(f) for f in answer)):
        raise Incorrect("Pass both functions as a pair: q2.check((split_heads, merge_heads))")
    split, merge = answer
    # batch 2, T 4, 3 heads of 2 features: every size differs, so mixed-up axes show.
    x = np.arange(2 * 4 * 6, dtype=float).reshape(2, 4, 6)
    want = _reference_split(x, 3)  # (2, 3, 4, 2)
    got = _array(call_answer(split, x.copy(), 3), "split_heads(x, 3)")
    if got.shape == (2, 4, 3, 2):
        raise Incorrect("split_heads returned shape (2, 4, 3, 2) = (batch, T, heads, d): "
                        "also move the head axis before the time axis, giving (2, 3, 4, 2)")
    _shape(got, want.shape, "split_heads(x, 3) of an x of shape (2, 4, 6)",
           "(batch, heads, T, d)")
    if np.array_equal(got, x.reshape(2, 3, 4, 2)):
        raise Incorrect("split_heads has the right shape but mixes positions and heads: a "
                        "reshape straight to (batch, heads, T, d) reads the numbers in memory "
                        "order. Reshape to (batch, T, heads, d) first, then transpose")
    if np.array_equal(got, x.reshape(2, 4, 2, 3).transpose(0, 3, 1, 2)):
        raise Incorrect("split_heads interleaves the columns (head 0 gets columns 0, 3; head "
                        "1 gets 1, 4, ...); head i must get the consecutive columns i*d .. "
                        "(i+1)*d - 1: reshape the last axis to (heads, d), not (d, heads)")
    if not np.array_equal(got, want):
        raise Incorrect("split_heads has the right shape but wrong values; head i, position t "
                        "should be x[:, t, i*d:(i+1)*d]")
    merged = _array(call_answer(merge, want.copy()), "merge_heads")
    _shape(merged, x.shape, "merge_heads of an array of shape (2, 3, 4, 2)",
           "(batch, T, heads * d)")
    if np.array_equal(merged, want.reshape(2, 4, 6)):
        raise Incorrect("merge_heads has the right shape but wrong values: transpose "
                        "(batch, heads, T, d) back to (batch, T, heads, d) before reshaping")
    if not np.array_equal(merged, x):
        raise Incorrect("merge_heads(split_heads(x, 3)) does not give x back; put the heads "
                        "side by side in order: head 0's d columns first")


# ----------------------------------------------------------------------------------- q3
X_SMALL = np.array([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0]])
W_Q_SMALL = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
W_K_SMALL = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
W_V_SMALL = np.array([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]])


def _check_one_head(func) -> None:
    rng = np.random.default_rng(8)
    cases = [
        ("the 3 x 3 example", X_SMALL, W_Q_SMALL, W_K_SMALL, W_V_SMALL),
        # T=4, d_model=5, d_k=3, d_v=2: every size differs
        ("a random example with T=4, d_model=5, d_k=3, d_v=2", rng.standard_normal((4, 5)),
         rng.standard_normal((5, 3)), rng.standard_normal((5, 3)), rng.standard_normal((5, 2))),
    ]
    for name, x, w_q, w_k, w_v in cases:
        result = call_answer(func, x.copy(), w_q.copy(), w_k.copy(), w_v.copy())
        if not isinstance(result, tuple | list) or len(result) != 2:
            raise Incorrect("Return a pair (output, weights)")
        out = _array(result[0], "output")
        weights = _array(result[1], "weights")
        want_out, want_w = scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v)
        t = x.shape[0]
        _shape(weights, want_w.shape, f"on {name}, weights", "(T, T)")
        _shape(out, want_out.shape, f"on {name}, output", "(T, d_v)")
        q, k = x @ w_q, x @ w_k
        if np.allclose(weights, want_w, atol=1e-8):
            if not np.allclose(out, want_out, atol=1e-8):
                raise Incorrect(f"On {name} the weights are right but the output is not: it is "
                                "weights @ (x @ w_v)")
            continue
        if np.allclose(weights, want_w.T, atol=1e-8):
            raise Incorrect(f"On {name} your weights are transposed: weights[i, j] is how much "
                            "query i attends to key j, so each row sums to 1")
        unscaled = scaled_dot_product_attention(q, k, x @ w_v, scale=1.0)[1]
        if np.allclose(weights, unscaled, atol=1e-8):
            raise Incorrect(f"On {name} you did not scale the scores: divide q @ k.T by "
                            "sqrt(d_k)")
        by_width = scaled_dot_product_attention(q, k, x @ w_v,
                                                scale=1 / math.sqrt(x.shape[1]))[1]
        if x.shape[1] != q.shape[1] and np.allclose(weights, by_width, atol=1e-8):
            raise Incorrect(f"On {name} you divided by sqrt(d_model); the scale uses d_k, the "
                            "size of the queries and keys (w_q.shape[1])")
        if np.allclose(weights.sum(axis=0), 1.0) and not np.allclose(weights.sum(axis=1), 1.0):
            raise Incorrect(f"On {name} your weights sum to 1 down each column; the softmax "
                            "runs along each row (over the keys of one query): axis=1")
        raise Incorrect(f"On {name} the weights should be\n{np.round(want_w, 3)}\n"
                        f"got\n{np.round(weights, 3)}" if t <= 3 else
                        f"on {name} the weights are wrong; compute softmax(q @ k.T / "
                        "sqrt(d_k)) row by row")


# ----------------------------------------------------------------------------------- q4
_Q4_CONFIGS = [(2, 3, 4, 6), (3, 2, 5, 7)]  # (num_heads, key_dim, value_dim, d_model)


def _build_layer(num_heads: int, key_dim: int, value_dim: int, d_model: int, seed: int):
    import_tensorflow_quietly()
    import keras

    layer = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=key_dim,
                                            value_dim=value_dim)
    layer(np.zeros((1, 4, d_model)), np.zeros((1, 4, d_model)))
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    return layer


def _check_w_o(func) -> None:
    for seed, (h, k, v, d) in enumerate(_Q4_CONFIGS):
        layer = _build_layer(h, k, v, d, seed)
        kernel = np.asarray(layer.get_weights()[6])  # (h, d_v, d_model)
        want = kernel.reshape(h * v, d)
        got = _array(call_answer(func, layer), "w_o_matrix(layer)")
        config = f"num_heads={h}, key_dim={k}, value_dim={v}, d_model={d}"
        if got.shape == want.shape and np.allclose(got, want):
            continue
        if got.shape == kernel.shape and np.allclose(got, kernel):
            raise Incorrect(f"That is the right weight, attention_output/kernel, but as Keras "
                            f"stores it, {kernel.shape} = (heads, value_dim, d_model); reshape "
                            f"it to (heads * value_dim, d_model) = {want.shape}")
        if got.shape == want.T.shape and np.allclose(got, want.T):
            raise Incorrect(f"Your matrix is transposed, {got.shape}: W^O takes the "
                            f"concatenated heads ({h * v} values) to d_model ({d}) features, "
                            f"so its shape is {want.shape}")
        if got.size == kernel.size and np.allclose(
                got.reshape(-1), kernel.transpose(1, 0, 2).reshape(-1)):
            raise Incorrect("The rows are in the wrong order: rows 0 .. value_dim-1 must all "
                            "belong to head 1, as in Concat(head_1, ..., head_h); reshape "
                            "(heads, value_dim, d_model) directly, without transposing")
        for weight, value in zip(layer.weights, layer.get_weights(), strict=True):
            if weight.path.endswith("attention_output/kernel"):
                continue
            value = np.asarray(value)
            if got.size == value.size and np.allclose(np.sort(got.reshape(-1)),
                                                      np.sort(value.reshape(-1))):
                raise Incorrect(f"That is {weight.path.split('/', 1)[-1]} of shape "
                                f"{value.shape}, not W^O. W^O is the one kernel whose first "
                                "axis is the heads: (heads, value_dim, d_model)")
        raise Incorrect(f"For a layer with {config}, expected an array of shape {want.shape} "
                        f"built from attention_output/kernel {kernel.shape}, got shape "
                        f"{got.shape}")


EXERCISES = ExerciseSet("ex08", [
    Question("q1", "parameters of a MultiHeadAttention layer", _check_mha_params,
             "Per head: W_i^Q and W_i^K are (d_model, key_dim), W_i^V is (d_model, key_dim) "
             "too; W^O is (num_heads * key_dim, d_model). Biases: one per column of each "
             "projection, plus d_model for the output."),
    Question("q2", "split into heads and merge back", _check_split_merge,
             "split: x.reshape(batch, T, num_heads, d) then .transpose(0, 2, 1, 3). merge: "
             "the same two steps backwards, transpose first."),
    Question("q3", "one head by hand", _check_one_head,
             "q, k, v = x @ w_q, x @ w_k, x @ w_v; scores = q @ k.T / sqrt(d_k); softmax each "
             "row (subtract the row maximum before np.exp); output = weights @ v."),
    Question("q4", "W^O among Keras's weights", _check_w_o,
             "Print (weight.path, weight.shape) for layer.weights: W^O is attention_output/"
             "kernel, stored as (num_heads, value_dim, d_model); reshape it to 2-D."),
])
q1, q2, q3, q4 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
