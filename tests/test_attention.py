"""NumPy attention: hand-computed values, Keras agreement, masks, gradients, clear errors.

Keras is imported only inside the tests that compare against it (fixture ``keras``), so the
rest of the file runs without TensorFlow installed.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest

from recsys_lib.attention import (
    MHA_WEIGHT_NAMES,
    attention_backward,
    causal_mask,
    combine_masks,
    keras_mha_weights_by_name,
    mha_parameter_count,
    multi_head_attention,
    padding_mask,
    scaled_dot_product_attention,
    softmax,
    softmax_jacobian,
)

# (num_heads, key_dim, value_dim); value_dim=None means "same as key_dim", as in Keras.
MHA_CONFIGS = [(1, 4, None), (2, 8, None), (4, 3, 5)]
MHA_CASES = ["self", "cross", "self_mask", "cross_mask", "causal", "causal_mask",
             "cross_causal", "per_head_mask"]


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return pytest.importorskip("keras")


def random_mask(rng, shape, fully_masked_row=True):
    mask = rng.random(shape) < 0.6
    mask[..., 0] = True  # every row keeps a key ...
    if fully_masked_row:
        mask[..., 1, :] = False  # ... except query 1, which may attend to nothing
    return mask


def build_mha(keras, rng, num_heads, key_dim, value_dim, query, value, key=None,
              use_bias=True, dtype="float64", scale=0.5):
    layer = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=key_dim,
                                            value_dim=value_dim, use_bias=use_bias, dtype=dtype)
    layer(query, value, key)  # builds it
    layer.set_weights([scale * rng.standard_normal(w.shape) for w in layer.get_weights()])
    return layer


# --------------------------------------------------------------------------------------
# softmax and scaled dot-product attention
# --------------------------------------------------------------------------------------


def test_hand_computed_2x2():
    q = k = np.eye(2)
    v = np.array([[1.0, 2.0], [3.0, 4.0]])
    out, w = scaled_dot_product_attention(q, k, v)
    # scores = I / sqrt(2); row 0 = softmax([a, 0]) with a = 1/sqrt(2)
    a = 1 / math.sqrt(2)
    p = math.exp(a) / (math.exp(a) + 1)
    assert p == pytest.approx(0.6697615493266569, abs=1e-15)
    np.testing.assert_allclose(w, [[p, 1 - p], [1 - p, p]], rtol=1e-15)
    np.testing.assert_allclose(out, [[p * 1 + (1 - p) * 3, p * 2 + (1 - p) * 4],
                                     [(1 - p) * 1 + p * 3, (1 - p) * 2 + p * 4]], rtol=1e-15)
    np.testing.assert_allclose(out[0], [1.6604769013466862, 2.6604769013466862], rtol=1e-14)
    assert out.dtype == np.float64 and w.dtype == np.float64
    # an explicit scale and a mask: query 0 may only see key 1
    out, w = scaled_dot_product_attention(q, k, v, mask=np.array([[False, True], [True, True]]),
                                          scale=1.0)
    np.testing.assert_array_equal(w[0], [0.0, 1.0])
    np.testing.assert_allclose(w[1], [1 / (1 + math.e), math.e / (1 + math.e)], rtol=1e-15)
    np.testing.assert_array_equal(out[0], [3.0, 4.0])


def test_softmax_is_stable_and_handles_fully_masked_rows(keras):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 7))
    for axis in (-1, 0, 1):
        np.testing.assert_allclose(
            softmax(x, axis=axis), keras.ops.convert_to_numpy(keras.ops.softmax(x, axis=axis)),
            rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(softmax([1000.0, 1001.0]), softmax([0.0, 1.0]), rtol=1e-15)
    rows = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]])
    out = softmax(rows)
    assert out[0, 1] == 0.0 and out[0].sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(out[1], 0.0)
    # Keras returns NaN for the all -inf row (documented in softmax's docstring)
    assert np.isnan(keras.ops.convert_to_numpy(keras.ops.softmax(rows))[1]).all()
    assert softmax(np.array([1, 2], dtype=np.int64)).dtype == np.float64
    assert softmax([1.0, 2.0], dtype=np.float32).dtype == np.float32


def test_attention_matches_keras_ops(keras):
    ops = keras.ops
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 6, 5))
    v = rng.standard_normal((2, 3, 6, 7))
    mask = random_mask(rng, (2, 3, 4, 6), fully_masked_row=False)
    out, w = scaled_dot_product_attention(q, k, v, mask=mask)

    scores = ops.matmul(q, ops.swapaxes(k, -1, -2)) / math.sqrt(5)
    keras_w = ops.softmax(ops.where(mask, scores, -1e9), axis=-1)
    keras_out = ops.matmul(keras_w, v)
    np.testing.assert_allclose(w, ops.convert_to_numpy(keras_w), rtol=0, atol=1e-6)
    np.testing.assert_allclose(out, ops.convert_to_numpy(keras_out), rtol=0, atol=1e-6)

    # keras.ops.dot_product_attention wants (batch, T, heads, d)
    fused = ops.dot_product_attention(*(np.swapaxes(a, 1, 2) for a in (q, k, v)), mask=mask)
    np.testing.assert_allclose(out, np.swapaxes(ops.convert_to_numpy(fused), 1, 2), atol=1e-6)


def test_broadcast_batch_dimensions():
    rng = np.random.default_rng(2)
    q = rng.standard_normal((3, 4, 5))
    k, v = rng.standard_normal((6, 5)), rng.standard_normal((6, 2))  # shared by the batch
    out, w = scaled_dot_product_attention(q, k, v)
    assert out.shape == (3, 4, 2) and w.shape == (3, 4, 6)
    for b in range(3):
        np.testing.assert_allclose(out[b], scaled_dot_product_attention(q[b], k, v)[0])


# --------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------


def test_masked_positions_get_exactly_zero_weight_and_no_nan():
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((2, 5, 4)) for _ in range(3))
    valid = np.array([[True, True, True, False, False], [True, True, True, True, True]])
    mask = padding_mask(valid, mask_queries=True)  # padded queries attend to nothing
    out, w = scaled_dot_product_attention(q, k, v, mask=mask)
    assert np.all(w[~np.broadcast_to(mask, w.shape)] == 0.0)
    assert not np.isnan(out).any() and not np.isnan(w).any()
    np.testing.assert_array_equal(w[0, 3:], 0.0)  # fully padded query rows
    np.testing.assert_array_equal(out[0, 3:], 0.0)
    np.testing.assert_allclose(w[0, :3].sum(-1), 1.0)
    np.testing.assert_allclose(w[1].sum(-1), 1.0)
    # huge scores do not turn masked weights into anything but 0
    _, w = scaled_dot_product_attention(q * 1e3, k * 1e3, v, mask=padding_mask(valid))
    assert np.all(w[0, :, 3:] == 0.0) and not np.isnan(w).any()


def test_causal_mask_makes_output_independent_of_the_future():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 4))
    mask = causal_mask(6)
    out, w = scaled_dot_product_attention(x, x, x, mask=mask)
    assert np.all(np.triu(w[0], k=1) == 0.0)
    for t in range(6):
        changed = x.copy()
        changed[:, t + 1:] = rng.standard_normal(changed[:, t + 1:].shape) * 100
        out2, _ = scaled_dot_product_attention(changed, changed, changed, mask=mask)
        np.testing.assert_array_equal(out2[:, : t + 1], out[:, : t + 1])
        if t < 5:
            assert not np.allclose(out2[:, t + 1:], out[:, t + 1:])


def test_mask_helpers():
    np.testing.assert_array_equal(causal_mask(3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    assert causal_mask(3).dtype == bool
    np.testing.assert_array_equal(causal_mask(2, 4), [[1, 0, 0, 0], [1, 1, 0, 0]])
    right = padding_mask(np.array([2, 3]), 4)
    assert right.shape == (2, 1, 4)
    np.testing.assert_array_equal(right[:, 0], [[1, 1, 0, 0], [1, 1, 1, 0]])
    left = padding_mask([2, 3], 4, pad_side="left")
    np.testing.assert_array_equal(left[:, 0], [[0, 0, 1, 1], [0, 1, 1, 1]])
    assert padding_mask([1, 3]).shape == (2, 1, 3)
    valid = np.array([[True, False, True]])
    np.testing.assert_array_equal(padding_mask(valid), valid[:, None, :])
    square = padding_mask(valid, mask_queries=True)
    assert square.shape == (1, 3, 3)
    np.testing.assert_array_equal(square[0], np.outer(valid[0], valid[0]))
    both = combine_masks(padding_mask(np.array([2, 3]), 4), None, causal_mask(4))
    assert both.shape == (2, 4, 4) and both.dtype == bool
    np.testing.assert_array_equal(both[0], [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0],
                                            [1, 1, 0, 0]])
    assert combine_masks(None, None) is None


# --------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------


def numeric_grad(f, x, eps=1e-5):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("case", ["plain", "mask", "broadcast", "scale"])
def test_attention_backward_matches_finite_differences(case):
    rng = np.random.default_rng(5)
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), \
        rng.standard_normal((2, 5, 3))
    mask, scale = None, None
    if case == "mask":
        mask = random_mask(rng, (2, 3, 5))
        mask[:, :, 4] = False  # key 4 is never visible
    elif case == "broadcast":
        k, v = k[:1], v[:1]  # keys and values shared across the batch
    elif case == "scale":
        scale = 0.3
    d_out = rng.standard_normal((2, 3, 3))

    def loss():
        return float(np.sum(scaled_dot_product_attention(q, k, v, mask, scale)[0] * d_out))

    dq, dk, dv = attention_backward(q, k, v, d_out, mask=mask, scale=scale)
    assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape
    for analytic, x in ((dq, q), (dk, k), (dv, v)):
        np.testing.assert_allclose(analytic, numeric_grad(loss, x), rtol=1e-6, atol=1e-9)
    if case == "mask":
        np.testing.assert_array_equal(dq[:, 1], 0.0)  # fully masked query row
        np.testing.assert_array_equal(dk[:, 4], 0.0)  # masked key
        np.testing.assert_array_equal(dv[:, 4], 0.0)


def test_softmax_jacobian_matches_finite_differences():
    rng = np.random.default_rng(6)
    x = rng.standard_normal(5)
    jac = softmax_jacobian(softmax(x))
    eps = 1e-6
    numeric = np.stack([(softmax(x + eps * e) - softmax(x - eps * e)) / (2 * eps)
                        for e in np.eye(5)], axis=1)
    np.testing.assert_allclose(jac, numeric, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(jac, jac.T)
    np.testing.assert_allclose(jac.sum(axis=0), 0.0, atol=1e-15)
    np.testing.assert_array_equal(softmax_jacobian(np.zeros(3)), 0.0)


# --------------------------------------------------------------------------------------
# multi-head attention against keras.layers.MultiHeadAttention
# --------------------------------------------------------------------------------------


def test_keras_get_weights_layout_and_names(keras):
    rng = np.random.default_rng(7)
    query, value = rng.standard_normal((2, 4, 6)), rng.standard_normal((2, 5, 7))
    key = rng.standard_normal((2, 5, 3))
    layer = build_mha(keras, rng, 4, 3, 5, query, value, key)
    shapes = [w.shape for w in layer.get_weights()]
    assert shapes == [(6, 4, 3), (4, 3), (3, 4, 3), (4, 3), (7, 4, 5), (4, 5), (4, 5, 6), (6,)]
    paths = [w.path.split("/", 1)[1] for w in layer.weights]
    assert paths == ["query/kernel", "query/bias", "key/kernel", "key/bias", "value/kernel",
                     "value/bias", "attention_output/kernel", "attention_output/bias"]
    named = keras_mha_weights_by_name(layer)
    assert tuple(named) == MHA_WEIGHT_NAMES
    for got, expected in zip(named.values(), layer.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)
    by_list, _ = multi_head_attention(query, value, key, weights=layer.get_weights())
    by_dict, _ = multi_head_attention(query, value, key, weights=named)
    np.testing.assert_array_equal(by_list, by_dict)


@pytest.mark.parametrize("case", MHA_CASES)
@pytest.mark.parametrize("num_heads, key_dim, value_dim", MHA_CONFIGS)
def test_multi_head_attention_matches_keras(keras, num_heads, key_dim, value_dim, case):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 5, 6))
    if case.startswith("cross"):
        query, value, key = rng.standard_normal((2, 4, 6)), x, rng.standard_normal((2, 5, 3))
    else:
        query, value, key = x, x, None
    tq, tk = query.shape[1], value.shape[1]
    mask = None
    if case.endswith("mask"):
        mask = random_mask(rng, (2, tq, tk))  # includes a fully masked query row
    if case == "per_head_mask":
        mask = random_mask(rng, (2, num_heads, tq, tk))
    causal = "causal" in case
    layer = build_mha(keras, rng, num_heads, key_dim, value_dim, query, value, key)
    expected, expected_w = layer(query, value, key, attention_mask=mask,
                                 use_causal_mask=causal, return_attention_scores=True)
    out, w = multi_head_attention(query, value, key, weights=layer.get_weights(),
                                  num_heads=num_heads, key_dim=key_dim, value_dim=value_dim,
                                  attention_mask=mask, use_causal_mask=causal)
    assert out.shape == (2, tq, 6) and w.shape == (2, num_heads, tq, tk)
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(expected), rtol=0, atol=1e-5)
    np.testing.assert_allclose(w, keras.ops.convert_to_numpy(expected_w), rtol=0, atol=1e-5)
    if mask is not None:
        full = np.broadcast_to(mask if mask.ndim == 4 else mask[:, None], w.shape)
        assert np.all(w[~full] == 0.0)
    if causal:
        assert np.all(np.triu(w, k=1) == 0.0)


def test_multi_head_attention_float32_layer_and_no_bias(keras):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 6, 8)).astype("float32")
    mask = padding_mask(np.array([6, 4, 1]), mask_queries=True)
    for use_bias in (True, False):
        layer = build_mha(keras, rng, 2, 4, 3, x, x, use_bias=use_bias, dtype="float32",
                          scale=0.3)
        expected, expected_w = layer(x, x, attention_mask=mask, return_attention_scores=True)
        assert len(layer.get_weights()) == (8 if use_bias else 4)
        named = keras_mha_weights_by_name(layer)
        assert (named["b_Q"] is None) is (not use_bias)
        for weights in (layer.get_weights(), named):
            out, w = multi_head_attention(x, x, weights=weights, attention_mask=mask)
            np.testing.assert_allclose(out, keras.ops.convert_to_numpy(expected), atol=1e-5)
            np.testing.assert_allclose(w, keras.ops.convert_to_numpy(expected_w), atol=1e-5)


def test_keras_implicit_masks_equal_padding_mask_with_queries(keras):
    """Embedding(mask_zero=True) masks reach MHA; padding_mask(..., mask_queries=True) agrees."""
    rng = np.random.default_rng(10)
    ids = np.array([[3, 5, 0, 0], [1, 2, 4, 0]])
    embed = keras.layers.Embedding(10, 6, mask_zero=True, dtype="float64")
    layer = build_mha(keras, rng, 2, 3, None, embed(ids), embed(ids))
    # A fresh tensor: in eager mode MultiHeadAttention removes the Keras mask from the
    # tensors it is called on, so a second call on the same tensor would be unmasked.
    x = embed(ids)
    expected, expected_w = layer(x, x, return_attention_scores=True, use_causal_mask=True)
    assert keras.ops.convert_to_numpy(expected_w)[0, 0, 1, 2] == 0.0  # key 2 is padding
    mask = combine_masks(padding_mask(ids != 0, mask_queries=True), causal_mask(4))
    out, w = multi_head_attention(keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(x),
                                  weights=layer.get_weights(), attention_mask=mask)
    np.testing.assert_allclose(w, keras.ops.convert_to_numpy(expected_w), atol=1e-12)
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(expected), atol=1e-12)
    np.testing.assert_allclose(out[0, 2:], np.broadcast_to(layer.get_weights()[-1], (2, 6)))


def test_keras_mha_strips_the_keras_mask_of_its_inputs_in_eager_mode(keras):
    """Keras 3 behaviour the notebook warns about; if this fails, update notebook 08."""
    x = keras.layers.Embedding(10, 4, mask_zero=True)(np.array([[3, 5, 0]]))
    layer = keras.layers.MultiHeadAttention(2, 3)
    _, first = layer(x, x, return_attention_scores=True)
    _, second = layer(x, x, return_attention_scores=True)
    assert np.all(keras.ops.convert_to_numpy(first)[..., 2] == 0.0)  # padding is masked
    assert np.all(keras.ops.convert_to_numpy(second)[..., 2] > 0.0)  # ... but no longer


def test_keras_fused_path_differs_on_fully_masked_rows(keras):
    """Documented difference: without return_attention_scores Keras averages all values."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 3, 4))
    mask = np.array([[[True, True, False], [False, False, False], [True, False, False]]])
    layer = build_mha(keras, rng, 2, 3, None, x, x)
    fused = keras.ops.convert_to_numpy(layer(x, x, attention_mask=mask))
    with_scores = keras.ops.convert_to_numpy(
        layer(x, x, attention_mask=mask, return_attention_scores=True)[0])
    out, _ = multi_head_attention(x, x, weights=layer.get_weights(), attention_mask=mask)
    np.testing.assert_allclose(out, with_scores, atol=1e-12)
    np.testing.assert_allclose(out[:, [0, 2]], fused[:, [0, 2]], atol=1e-12)
    np.testing.assert_allclose(out[0, 1], layer.get_weights()[-1], atol=1e-12)  # b_O
    w = layer.get_weights()
    avg_v = (np.einsum("btd,dnh->bnth", x, w[4]) + w[5][:, None]).mean(axis=2)
    np.testing.assert_allclose(fused[0, 1], np.einsum("bnh,nho->bo", avg_v, w[6])[0] + w[7],
                               atol=1e-12)
    assert not np.allclose(fused[0, 1], out[0, 1])


@pytest.mark.parametrize("num_heads, key_dim, value_dim", MHA_CONFIGS)
def test_mha_parameter_count_equals_keras(keras, num_heads, key_dim, value_dim):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 3, 6))
    for use_bias in (True, False):
        layer = keras.layers.MultiHeadAttention(num_heads, key_dim, value_dim,
                                                use_bias=use_bias)
        layer(x, x)
        assert mha_parameter_count(6, num_heads, key_dim, value_dim,
                                   use_bias=use_bias) == layer.count_params()
    # cross-attention with other input widths and an explicit output size
    layer = keras.layers.MultiHeadAttention(num_heads, key_dim, value_dim, output_shape=9)
    layer(x, rng.standard_normal((1, 4, 7)), rng.standard_normal((1, 4, 2)))
    assert mha_parameter_count(6, num_heads, key_dim, value_dim, d_out=9, d_key_input=2,
                               d_value_input=7) == layer.count_params()


# --------------------------------------------------------------------------------------
# errors say what is wrong
# --------------------------------------------------------------------------------------

A3, B3 = np.ones((3, 4)), np.ones((3, 5))
WEIGHTS = [np.ones(s) for s in [(6, 2, 3), (2, 3), (6, 2, 3), (2, 3), (6, 2, 4), (2, 4),
                                (2, 4, 6), (6,)]]
X = np.ones((2, 5, 6))

ERRORS = [
    (lambda: scaled_dot_product_attention(A3, B3, B3), "q has d_k=4 but k has d_k=5"),
    (lambda: scaled_dot_product_attention(A3, A3, np.ones((4, 2))),
     "k has 3 keys (Tk=3) but v has 4 values"),
    (lambda: scaled_dot_product_attention(A3, A3, A3, mask=np.ones((2, 3), bool)),
     "mask of shape (2, 3) is not broadcastable to the attention weights' shape (3, 3)"),
    (lambda: scaled_dot_product_attention(A3, A3, A3, mask=np.ones((3, 3))),
     "mask must be a boolean array, got dtype float64: use a boolean array, True where "
     "attention is allowed"),
    (lambda: scaled_dot_product_attention(np.ones(4), A3, A3),
     "q must have at least 2 dimensions (..., Tq, d_k), got shape (4,)"),
    (lambda: scaled_dot_product_attention(A3, np.ones(4), A3), "k must have at least 2"),
    (lambda: scaled_dot_product_attention(np.ones((2, 3, 4)), np.ones((3, 3, 4)), A3),
     "the batch dimensions (all but the last two) do not broadcast: q (2,), k (3,), v ()"),
    (lambda: scaled_dot_product_attention(A3, A3, A3, scale=float("nan")),
     "scale must be a finite number"),
    (lambda: softmax([1.0, np.nan]), "x contains NaN or +inf"),
    (lambda: softmax(["a"]), "x must be a real numeric array"),
    (lambda: attention_backward(A3, A3, A3, np.ones((3, 3, 4))),
     "d_output has shape (3, 3, 4) but the output has shape (3, 4)"),
    (lambda: softmax_jacobian(np.ones((2, 2)) / 2), "p must be one probability vector (1-D)"),
    (lambda: softmax_jacobian([0.5, 2.0, 1.0]), "p must be a probability vector (the softmax "
     "output, not the scores): entries in [0, 1] that sum to 1, got sum 3.5"),
    (lambda: causal_mask(-1), "length must be an integer >= 0, got -1"),
    (lambda: causal_mask(2.5), "length must be an integer >= 0, got 2.5"),
    (lambda: padding_mask([2, 5], 4), "lengths must be between 0 and max_len=4, got min 2 and "
     "max 5"),
    (lambda: padding_mask(np.ones((2, 3))), "lengths_or_valid must be a 2-D boolean"),
    (lambda: padding_mask(np.ones((2, 3), bool), 4), "max_len=4 but the boolean array has T=3"),
    (lambda: padding_mask([1], pad_side="middle"), "pad_side must be 'right' or 'left'"),
    (lambda: combine_masks(np.ones((2, 3), bool), np.ones((3, 3), bool)),
     "mask shapes [(2, 3), (3, 3)] do not broadcast together"),
    (lambda: combine_masks(np.ones(3, bool), np.ones(3)), "masks[1] must be a boolean array"),
    (lambda: multi_head_attention(X, X, weights=WEIGHTS[:6]), "weights has 6 arrays"),
    (lambda: multi_head_attention(np.ones((2, 5, 7)), X, weights=WEIGHTS),
     "W_Q has shape (6, 2, 3) but (7, 2, 3) was expected"),
    (lambda: multi_head_attention(X, X, np.ones((2, 5, 3)), weights=WEIGHTS),
     "its first dimension must be key's feature size"),
    (lambda: multi_head_attention(X, X, weights=WEIGHTS, num_heads=4),
     "num_heads=4 was given but the weights have num_heads=2"),
    (lambda: multi_head_attention(X, X, weights=WEIGHTS, value_dim=3),
     "value_dim=3 was given but the weights have value_dim=4"),
    (lambda: multi_head_attention(X[0], X, weights=WEIGHTS),
     "query must have shape (batch, T, features), got shape (5, 6)"),
    (lambda: multi_head_attention(X, X, np.ones((2, 4, 6)), weights=WEIGHTS),
     "key has shape (2, 4, 6) but value has shape (2, 5, 6)"),
    (lambda: multi_head_attention(np.ones((3, 5, 6)), X, weights=WEIGHTS),
     "query has batch size 3 but value has 2"),
    (lambda: multi_head_attention(X, X, weights=WEIGHTS, attention_mask=np.ones((5, 4), bool)),
     "mask of shape (5, 4) is not broadcastable to the attention weights' shape (2, 5, 5)"),
    (lambda: multi_head_attention(X, X, weights=WEIGHTS, attention_mask=np.ones(5, bool)),
     "attention_mask must have 2 to 4 dimensions"),
    (lambda: multi_head_attention(X, X, weights=WEIGHTS, attention_mask=np.ones((5, 5))),
     "attention_mask must be a boolean array"),
    (lambda: multi_head_attention(X, X, weights={"W_Q": WEIGHTS[0]}),
     "weights is missing ['W_K', 'W_V', 'W_O']"),
    (lambda: multi_head_attention(X, X, weights=dict(zip(["W_Q", "W_K", "W_V", "W_O", "b_O"],
                                                         WEIGHTS[::2] + [WEIGHTS[-1]],
                                                         strict=True))),
     "weights has biases ['b_O'] but not ['b_K', 'b_Q', 'b_V']"),
    (lambda: mha_parameter_count(6, 0, 3), "num_heads must be an integer >= 1, got 0"),
]


@pytest.mark.parametrize("call, message", ERRORS, ids=[m[:40] for _, m in ERRORS])
def test_errors_say_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_keras_helper_errors(keras):
    with pytest.raises(ValueError, match="the layer is not built yet"):
        keras_mha_weights_by_name(keras.layers.MultiHeadAttention(2, 3))
    with pytest.raises(TypeError, match="layer must be a keras.layers.MultiHeadAttention"):
        keras_mha_weights_by_name(keras.layers.Dense(3))
