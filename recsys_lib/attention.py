"""Attention in plain NumPy: a reference to check Keras against (notebooks 07 and 08).

Notebook 07 ("scaled dot-product attention") builds :func:`scaled_dot_product_attention`,
the masks (:func:`causal_mask`, :func:`padding_mask`, :func:`combine_masks`) and the
hand-derived gradient (:func:`softmax_jacobian`, :func:`attention_backward`) that it checks
with finite differences. Notebook 08 ("multi-head attention") uses
:func:`multi_head_attention`, which takes the weights of a built
``keras.layers.MultiHeadAttention`` exactly as ``layer.get_weights()`` returns them and
reproduces the layer's output and attention scores.

Conventions used everywhere in this module:

* Arrays are computed in float64 unless you pass another floating ``dtype``.
* Leading batch dimensions are allowed and broadcast like NumPy's ``@``:
  ``q (..., Tq, d_k)``, ``k (..., Tk, d_k)``, ``v (..., Tk, d_v)``.
* Masks are **boolean** and ``True`` means "this query may attend to this key" (the Keras
  convention for ``attention_mask``). Masked positions get exactly zero weight. A query row
  with no allowed key at all gets weights of all zeros and an output of zeros, never NaN.

This module does not import Keras; only :func:`keras_mha_weights_by_name` needs a Keras
layer, and it imports Keras itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from recsys_lib.checks import check_int

#: The symbols of :func:`keras_mha_weights_by_name`, in ``layer.get_weights()`` order
#: (for a layer with ``use_bias=True``; without biases the ``b_*`` entries are absent).
MHA_WEIGHT_NAMES = ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O")

_KERNEL_NAMES = ("W_Q", "W_K", "W_V", "W_O")


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------


def _float_dtype(dtype: DTypeLike) -> np.dtype:
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.floating):
        raise ValueError(f"dtype must be a floating type such as np.float64, got {dt}")
    return dt


def _as_float(x: ArrayLike, name: str, dtype: DTypeLike) -> NDArray[np.floating]:
    arr = np.asarray(x)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.complexfloating)
    ):
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr.astype(_float_dtype(dtype), copy=False)


def _check_rank(arr: np.ndarray, name: str, layout: str, min_rank: int = 2) -> None:
    if arr.ndim < min_rank:
        raise ValueError(
            f"{name} must have at least {min_rank} dimensions {layout}, got shape {arr.shape}; "
            f"add a length-1 axis if you have a single vector (e.g. {name}[None, :])"
        )


def _as_bool_mask(mask: ArrayLike, name: str = "mask") -> NDArray[np.bool_]:
    arr = np.asarray(mask)
    if arr.dtype != bool:
        raise ValueError(
            f"{name} must be a boolean array, got dtype {arr.dtype}: use a boolean array, True "
            "where attention is allowed (an additive 0 / -inf mask converts with mask == 0, "
            "a 0/1 mask with mask == 1)"
        )
    return arr


def _broadcast_batch(**shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        described = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(
            f"the batch dimensions (all but the last two) do not broadcast: {described}; "
            "give them equal leading dimensions or 1 where one is shared"
        ) from None


def _check_mask_shape(mask: np.ndarray, scores_shape: tuple[int, ...]) -> None:
    tq, tk = scores_shape[-2:]
    try:
        ok = np.broadcast_shapes(mask.shape, scores_shape) == tuple(scores_shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"mask of shape {mask.shape} is not broadcastable to the attention weights' shape "
            f"{scores_shape} = (..., Tq={tq}, Tk={tk}); give it shape (..., Tq, Tk), "
            "(..., 1, Tk) for a key padding mask or (Tq, Tk) for a causal mask"
        )


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


# --------------------------------------------------------------------------------------
# softmax and scaled dot-product attention (notebook 07)
# --------------------------------------------------------------------------------------


def softmax(x: ArrayLike, axis: int = -1, *, dtype: DTypeLike = np.float64) -> NDArray:
    """Numerically stable softmax; a slice that is entirely ``-inf`` gives zeros, not NaN.

    The maximum of each slice is subtracted before ``exp`` so large scores do not overflow.
    ``-inf`` entries (masked scores) get probability exactly 0. When *every* entry of a
    slice is ``-inf`` (a query that may attend to nothing) the result is all zeros; note
    that ``keras.ops.softmax`` returns NaN there (notebook 07 shows both).

    Args:
        x: scores; any shape.
        axis: the axis that is normalised.
        dtype: floating type of the computation and the result.

    Returns:
        Array of ``x``'s shape whose slices along ``axis`` sum to 1 (or to 0 when the slice
        was entirely ``-inf``).

    Raises:
        ValueError: non-numeric input, or NaN / ``+inf`` entries (they have no softmax).
    """
    x = _as_float(x, "x", dtype)
    if np.isnan(x).any() or np.isposinf(x).any():
        raise ValueError(
            "x contains NaN or +inf, which have no softmax; only -inf (a masked score) is "
            "allowed. Check the scores before the softmax."
        )
    if x.size == 0:
        return x.copy()
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)  # an all -inf slice: exp(-inf - 0) = 0
    e = np.exp(x - top)
    total = np.sum(e, axis=axis, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def _prepare_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    mask: ArrayLike | None,
    scale: float | None,
    dtype: DTypeLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, float]:
    q = _as_float(q, "q", dtype)
    k = _as_float(k, "k", dtype)
    v = _as_float(v, "v", dtype)
    _check_rank(q, "q", "(..., Tq, d_k)")
    _check_rank(k, "k", "(..., Tk, d_k)")
    _check_rank(v, "v", "(..., Tk, d_v)")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q has d_k={q.shape[-1]} but k has d_k={k.shape[-1]}; queries and keys must "
            "have the same last dimension (q @ k^T needs it)"
        )
    if q.shape[-1] == 0:
        raise ValueError("q and k have d_k=0; they need at least one feature")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k has {k.shape[-2]} keys (Tk={k.shape[-2]}) but v has {v.shape[-2]} values; "
            "k and v must have the same number of positions (shape[-2]): one value per key"
        )
    _broadcast_batch(q=q.shape[:-2], k=k.shape[:-2], v=v.shape[:-2])
    if mask is not None:
        mask = _as_bool_mask(mask)
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2])
        _check_mask_shape(mask, (*batch, q.shape[-2], k.shape[-2]))
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    else:
        scale = float(scale)
        if not math.isfinite(scale):
            raise ValueError(f"scale must be a finite number, got {scale}")
    return q, k, v, mask, scale


def _attention_weights(
    q: np.ndarray, k: np.ndarray, mask: np.ndarray | None, scale: float
) -> np.ndarray:
    scores = (q @ np.swapaxes(k, -1, -2)) * scale
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    return softmax(scores, axis=-1, dtype=scores.dtype)


def scaled_dot_product_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    mask: ArrayLike | None = None,
    scale: float | None = None,
    *,
    dtype: DTypeLike = np.float64,
) -> tuple[NDArray, NDArray]:
    """``softmax(q k^T * scale, masked) v``: each query takes a weighted average of the values.

    The mask is applied *before* the softmax (a masked score becomes ``-inf``), so masked
    positions get exactly zero weight and the allowed ones still sum to 1. A query row with
    no allowed key gets weights of all zeros and an output of zeros (never NaN). Notebook 07
    derives and explains every step.

    Args:
        q: queries, shape ``(..., Tq, d_k)``.
        k: keys, shape ``(..., Tk, d_k)``.
        v: values, shape ``(..., Tk, d_v)``.
        mask: optional boolean array broadcastable to ``(..., Tq, Tk)``; ``True`` = the query
            may attend to that key (the Keras ``attention_mask`` convention). See
            :func:`causal_mask`, :func:`padding_mask`, :func:`combine_masks`.
        scale: multiplies the scores; defaults to ``1 / sqrt(d_k)``.
        dtype: floating type of the computation and the results.

    Returns:
        ``(output, weights)``: ``output`` has shape ``(..., Tq, d_v)`` and ``weights`` (the
        attention weights, rows summing to 1 or to 0 for a fully masked row) has shape
        ``(..., Tq, Tk)``, where ``...`` is the broadcast of the inputs' batch dimensions.

    Raises:
        ValueError: an input with fewer than 2 dimensions, ``q`` and ``k`` with different
            ``d_k``, ``k`` and ``v`` with different numbers of positions, batch dimensions
            that do not broadcast, a mask that is not boolean or not broadcastable to
            ``(..., Tq, Tk)``.
    """
    q, k, v, mask, scale = _prepare_attention(q, k, v, mask, scale, dtype)
    weights = _attention_weights(q, k, mask, scale)
    return weights @ v, weights


def causal_mask(length: int, num_keys: int | None = None) -> NDArray[np.bool_]:
    """Lower-triangular boolean mask: query ``t`` may attend to keys ``0..t`` only.

    With it, the output at position ``t`` does not depend on anything after ``t`` (the next
    item must not be visible when predicting it; notebook 07).

    Args:
        length: number of queries ``T`` (and of keys when ``num_keys`` is None).
        num_keys: number of keys ``S`` when it differs from ``length``. The triangle starts
            at the top-left corner (``mask[t, s] = s <= t``), as Keras's
            ``use_causal_mask=True`` does.

    Returns:
        Boolean array of shape ``(T, T)`` (or ``(T, S)``).

    Raises:
        ArgumentError: a length that is not an integer >= 0.
    """
    sizes = {"length": length} if num_keys is None else {"length": length, "num_keys": num_keys}
    for name, size in sizes.items():
        check_int(name, size, minimum=0)
    return np.tri(length, num_keys, dtype=bool)


def padding_mask(
    lengths_or_valid: ArrayLike,
    max_len: int | None = None,
    *,
    pad_side: str = "right",
    mask_queries: bool = False,
) -> NDArray[np.bool_]:
    """Key padding mask: no query may attend to a padding position.

    Args:
        lengths_or_valid: either a boolean ``(batch, T)`` array, ``True`` where the position
            holds a real item, or a 1-D integer array of sequence lengths (``batch,``).
        max_len: the padded length ``T``. For lengths it defaults to ``max(lengths)``; for a
            boolean array it must be None or equal to its ``T``.
        pad_side: where the padding is when lengths are given: ``"right"`` (real items
            first, ``[a, b, 0, 0]``) or ``"left"`` (``[0, 0, a, b]``, as SASRec-style models
            and ``keras.utils.pad_sequences`` do by default). Ignored for a boolean array.
        mask_queries: also mask the *rows* of padding queries. False (the default) returns
            shape ``(batch, 1, T)``: padded keys are hidden from every query, and padded
            queries still attend to the real keys (their outputs are simply ignored later).
            True returns ``(batch, T, T)`` = ``valid[:, :, None] & valid[:, None, :]``, which
            is exactly the mask Keras builds by itself when query and value carry a Keras
            mask (``Embedding(mask_zero=True)``); padded query rows are then fully masked
            and get zero weights.

    Returns:
        Boolean array of shape ``(batch, 1, T)``, or ``(batch, T, T)`` with
        ``mask_queries=True``; combine it with :func:`causal_mask` via :func:`combine_masks`.

    Raises:
        ValueError: an input that is neither 1-D integer lengths nor a 2-D boolean array,
            lengths that are negative or longer than ``max_len``, a ``max_len`` that
            disagrees with the boolean array, or an unknown ``pad_side``.

    Explained in notebook 07.
    """
    arr = np.asarray(lengths_or_valid)
    if arr.dtype == bool and arr.ndim == 2:
        if max_len is not None and max_len != arr.shape[1]:
            raise ValueError(
                f"max_len={max_len} but the boolean array has T={arr.shape[1]} positions; "
                "leave max_len=None for a boolean array"
            )
        valid = arr
    elif arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer):
        if pad_side not in ("right", "left"):
            raise ValueError(f"pad_side must be 'right' or 'left', got {pad_side!r}")
        if max_len is None:
            max_len = int(arr.max()) if arr.size else 0
        if arr.size and (arr.min() < 0 or arr.max() > max_len):
            raise ValueError(
                f"lengths must be between 0 and max_len={max_len}, got min {arr.min()} and "
                f"max {arr.max()}; raise max_len or truncate the sequences first"
            )
        positions = np.arange(max_len)[None, :]
        if pad_side == "right":
            valid = positions < arr[:, None]
        else:
            valid = positions >= max_len - arr[:, None]
    else:
        raise ValueError(
            "lengths_or_valid must be a 2-D boolean (batch, T) array (True = real item) or "
            f"a 1-D integer array of lengths, got dtype {arr.dtype} and shape {arr.shape}"
        )
    if mask_queries:
        return valid[:, :, None] & valid[:, None, :]
    return valid[:, None, :]


def combine_masks(*masks: ArrayLike | None) -> NDArray[np.bool_] | None:
    """Logical AND of boolean masks, with NumPy broadcasting: attend only where all allow.

    Keras does the same when it merges ``attention_mask`` with its own masks (the inputs'
    Keras masks and ``use_causal_mask``). Example: ``combine_masks(padding_mask(valid),
    causal_mask(T))`` has shape ``(batch, T, T)``.

    Args:
        *masks: boolean arrays; ``None`` entries mean "no restriction" and are skipped.

    Returns:
        The broadcast AND of the masks, or None when every mask is None (nothing masked).

    Raises:
        ValueError: a non-boolean mask, or masks whose shapes do not broadcast.

    Explained in notebook 07.
    """
    arrays = [_as_bool_mask(m, f"masks[{i}]") for i, m in enumerate(masks) if m is not None]
    if not arrays:
        return None
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        raise ValueError(
            f"mask shapes {[a.shape for a in arrays]} do not broadcast together; each "
            "dimension must be equal or 1 (align them on the last two axes (Tq, Tk))"
        ) from None
    out = np.ones(shape, dtype=bool)
    for a in arrays:
        out &= a
    return out


# --------------------------------------------------------------------------------------
# gradient (notebook 07, checked there with finite differences)
# --------------------------------------------------------------------------------------


def softmax_jacobian(p: ArrayLike) -> NDArray:
    """Jacobian of the softmax at one probability vector: ``diag(p) - p p^T``.

    Entry ``[i, j]`` is ``d p_i / d x_j`` where ``p = softmax(x)``. A fully masked row
    (``p`` all zeros) gives the zero matrix, consistent with :func:`softmax`.

    Args:
        p: one probability vector (the softmax *output*, not the scores), shape ``(n,)``.

    Returns:
        Symmetric float64 array of shape ``(n, n)``.

    Raises:
        ValueError: ``p`` is not 1-D, or is not a probability vector (entries outside
            [0, 1], or a sum other than 1; all zeros is allowed).

    Explained in notebook 07.
    """
    p = _as_float(p, "p", np.float64)
    if p.ndim != 1:
        raise ValueError(
            f"p must be one probability vector (1-D), got shape {p.shape}; apply "
            "softmax_jacobian to each row separately"
        )
    total = float(p.sum())
    if (p < 0).any() or (p > 1).any() or not (abs(total - 1) < 1e-6 or total == 0):
        raise ValueError(
            f"p must be a probability vector (the softmax output, not the scores): entries "
            f"in [0, 1] that sum to 1, got sum {total:.6g}"
        )
    return np.diag(p) - np.outer(p, p)


def attention_backward(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    d_output: ArrayLike,
    mask: ArrayLike | None = None,
    scale: float | None = None,
    *,
    dtype: DTypeLike = np.float64,
) -> tuple[NDArray, NDArray, NDArray]:
    """Gradients of :func:`scaled_dot_product_attention` by hand (backpropagation).

    With ``S = q k^T * scale``, ``W = softmax(S)`` (masked) and ``O = W v``, for an upstream
    gradient ``dO = d loss / d O``::

        dV = W^T dO
        dW = dO V^T
        dS = W * (dW - sum(dW * W, axis=-1, keepdims=True))   # softmax_jacobian, row by row
        dQ = dS K * scale
        dK = dS^T Q * scale

    Masked positions have ``W = 0``, hence ``dS = 0``: no gradient flows through them, and
    a fully masked query row contributes nothing. When inputs were broadcast over batch
    dimensions, their gradients are summed back to the input's shape.

    Args:
        q, k, v, mask, scale, dtype: as for :func:`scaled_dot_product_attention`.
        d_output: gradient of the loss with respect to the output, shape ``(..., Tq, d_v)``
            (the output's shape).

    Returns:
        ``(dq, dk, dv)`` with the shapes of ``q``, ``k`` and ``v``.

    Raises:
        ValueError: the errors of :func:`scaled_dot_product_attention`, or ``d_output``
            whose shape is not the output's.

    Explained in notebook 07.
    """
    q, k, v, mask, scale = _prepare_attention(q, k, v, mask, scale, dtype)
    w = _attention_weights(q, k, mask, scale)
    d_o = _as_float(d_output, "d_output", dtype)
    out_shape = np.broadcast_shapes(w.shape[:-2], v.shape[:-2]) + (w.shape[-2], v.shape[-1])
    if d_o.shape != out_shape:
        raise ValueError(
            f"d_output has shape {d_o.shape} but the output has shape {out_shape}; it must "
            "be the gradient of the loss with respect to the output, so the same shape"
        )
    d_v = np.swapaxes(w, -1, -2) @ d_o
    d_w = d_o @ np.swapaxes(v, -1, -2)
    d_s = w * (d_w - np.sum(d_w * w, axis=-1, keepdims=True))
    d_q = (d_s @ k) * scale
    d_k = (np.swapaxes(d_s, -1, -2) @ q) * scale
    return (_unbroadcast(d_q, q.shape), _unbroadcast(d_k, k.shape), _unbroadcast(d_v, v.shape))


# --------------------------------------------------------------------------------------
# multi-head attention with Keras's weights (notebook 08)
# --------------------------------------------------------------------------------------


def _weights_dict(weights: Sequence[ArrayLike] | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(weights, Mapping):
        missing = [name for name in _KERNEL_NAMES if weights.get(name) is None]
        if missing:
            raise ValueError(
                f"weights is missing {missing}; pass layer.get_weights() or "
                "keras_mha_weights_by_name(layer)"
            )
        out = {name: weights.get(name) for name in MHA_WEIGHT_NAMES}
        biases = [name for name in MHA_WEIGHT_NAMES if name.startswith("b_")]
        present = [name for name in biases if out[name] is not None]
        if present and len(present) != len(biases):
            raise ValueError(
                f"weights has biases {present} but not {sorted(set(biases) - set(present))}; "
                "a Keras layer has all four biases (use_bias=True) or none (use_bias=False)"
            )
        return out
    weights = list(weights)
    if len(weights) == 8:
        return dict(zip(MHA_WEIGHT_NAMES, weights, strict=True))
    if len(weights) == 4:
        return dict(zip(MHA_WEIGHT_NAMES, [weights[0], None, weights[1], None,
                                            weights[2], None, weights[3], None], strict=True))
    raise ValueError(
        f"weights has {len(weights)} arrays; expected layer.get_weights() of a "
        "keras.layers.MultiHeadAttention: 8 arrays (W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O) "
        "with use_bias=True or 4 kernels with use_bias=False (layers with use_gate=True "
        "are not supported)"
    )


def multi_head_attention(
    query: ArrayLike,
    value: ArrayLike,
    key: ArrayLike | None = None,
    *,
    weights: Sequence[ArrayLike] | Mapping[str, Any],
    num_heads: int | None = None,
    key_dim: int | None = None,
    value_dim: int | None = None,
    attention_mask: ArrayLike | None = None,
    use_causal_mask: bool = False,
    dtype: DTypeLike = np.float64,
) -> tuple[NDArray, NDArray]:
    """What ``keras.layers.MultiHeadAttention`` computes, in NumPy, with the layer's weights.

    Per head ``h``: ``Q_h = query W_Q[:, h] + b_Q[h]``, ``K_h = key W_K[:, h] + b_K[h]``,
    ``V_h = value W_V[:, h] + b_V[h]``, then scaled dot-product attention with scale
    ``1 / sqrt(key_dim)``; the heads' outputs are projected and summed by the output kernel:
    ``output = sum_h O_h W_O[h] + b_O``. Notebook 08 walks through it.

    Keras's weight layout (``layer.get_weights()`` order, checked in the tests)::

        W_Q (d_query, num_heads, key_dim)     b_Q (num_heads, key_dim)
        W_K (d_key,   num_heads, key_dim)     b_K (num_heads, key_dim)
        W_V (d_value, num_heads, value_dim)   b_V (num_heads, value_dim)
        W_O (num_heads, value_dim, d_out)     b_O (d_out,)

    With ``use_bias=False`` the layer has only the four kernels (also accepted here).

    Masks, as in Keras: ``attention_mask`` (boolean, ``True`` = may attend) is
    ``(batch, Tq, Tk)`` or broadcastable to it (e.g. ``(Tq, Tk)`` or ``(batch, 1, Tk)``),
    shared by all heads; a 4-D ``(batch, num_heads, Tq, Tk)`` mask gives each head its own.
    ``use_causal_mask=True`` ANDs it with :func:`causal_mask` ``(Tq, Tk)``, triangle from
    the top-left corner, as Keras does. Keras also ANDs in the Keras masks that its inputs
    carry (``Embedding(mask_zero=True)``): ``(batch, Tq, 1)`` from the query and
    ``(batch, 1, Tk)`` from value/key; this function sees plain arrays, so pass that mask
    yourself, e.g. ``padding_mask(valid, mask_queries=True)`` for self-attention. (In eager
    mode Keras also *removes* the Keras mask from the tensors it is called on, so calling the
    layer twice on the same embedding output masks only the first time.)

    Where this differs from Keras:

    * A query row with no allowed key: here its weights are zeros and its head outputs are
      zeros, so its output is ``b_O``. Keras gives the same when it computes the scores
      (``return_attention_scores=True``, or ``dropout > 0``), because its masked softmax
      sets masked scores to -1e9 and then zeroes masked weights. When called *without*
      ``return_attention_scores``, Keras 3 takes the fused ``ops.dot_product_attention``
      path instead, where such a row gets *uniform* weights over all keys (the average of
      the values). Masked positions of rows with at least one allowed key agree.
    * Masks must be boolean here; Keras casts any numeric mask to bool (non-zero = attend).
    * Only rank-3 inputs ``(batch, T, features)``: Keras would attend over every axis
      between batch and features of higher-rank inputs. No dropout (inference only),
      no ``use_gate``, no multi-dimensional ``output_shape``.

    Args:
        query: ``(batch, Tq, d_query)``.
        value: ``(batch, Tk, d_value)``.
        key: ``(batch, Tk, d_key)``; defaults to ``value`` (as in Keras).
        weights: ``layer.get_weights()`` (8 arrays, or 4 without biases) or the dict of
            :func:`keras_mha_weights_by_name`.
        num_heads, key_dim, value_dim: read from the kernels when None; when given they
            are checked against them (``value_dim=None`` means the kernels' value_dim,
            which Keras sets to ``key_dim`` when you leave it out).
        attention_mask: optional boolean mask (see above).
        use_causal_mask: also apply a causal mask, as Keras's argument of the same name.
        dtype: floating type of the computation and the results.

    Returns:
        ``(output, weights)``: ``output (batch, Tq, d_out)`` (``d_out`` = ``d_query`` unless
        the layer had ``output_shape``) and the per-head attention weights
        ``(batch, num_heads, Tq, Tk)``, like Keras's ``return_attention_scores=True``.

    Raises:
        ValueError: inputs that are not 3-D, batch or length mismatches between the
            inputs, weights whose number or shapes do not fit the inputs or each other, a
            ``num_heads`` / ``key_dim`` / ``value_dim`` that disagrees with the weights, or a
            bad mask.
    """
    w = _weights_dict(weights)
    w = {n: None if a is None else _as_float(a, n, dtype) for n, a in w.items()}
    query = _as_float(query, "query", dtype)
    value = _as_float(value, "value", dtype)
    key = value if key is None else _as_float(key, "key", dtype)
    for name, arr in (("query", query), ("value", value), ("key", key)):
        if arr.ndim != 3:
            raise ValueError(
                f"{name} must have shape (batch, T, features), got shape {arr.shape}; add a "
                f"batch axis with {name}[None] for a single sequence"
            )
    if key.shape[:2] != value.shape[:2]:
        raise ValueError(
            f"key has shape {key.shape} but value has shape {value.shape}; they must agree in "
            "batch size and length (one value per key)"
        )
    if query.shape[0] != value.shape[0]:
        raise ValueError(
            f"query has batch size {query.shape[0]} but value has {value.shape[0]}; "
            "they must be equal"
        )
    for name, rank in (("W_Q", 3), ("W_K", 3), ("W_V", 3), ("W_O", 3)):
        if w[name].ndim != rank:
            raise ValueError(
                f"{name} must have {rank} dimensions, got shape {w[name].shape}; layers with a "
                "multi-dimensional output_shape are not supported"
            )
    heads, d_key = w["W_Q"].shape[1:]
    d_val = w["W_V"].shape[2]
    d_out = w["W_O"].shape[2]
    expected = {
        "W_Q": (query.shape[-1], heads, d_key),
        "W_K": (key.shape[-1], heads, d_key),
        "W_V": (value.shape[-1], heads, d_val),
        "W_O": (heads, d_val, d_out),
        "b_Q": (heads, d_key),
        "b_K": (heads, d_key),
        "b_V": (heads, d_val),
        "b_O": (d_out,),
    }
    inputs_of = {"W_Q": "query", "W_K": "key", "W_V": "value"}
    for name, shape in expected.items():
        if w[name] is not None and w[name].shape != shape:
            hint = (
                f"; its first dimension must be {inputs_of[name]}'s feature size"
                if name in inputs_of and w[name].shape[1:] == shape[1:]
                else ""
            )
            raise ValueError(
                f"{name} has shape {w[name].shape} but {shape} was expected from the inputs "
                f"and the other weights (num_heads={heads}, key_dim={d_key}, "
                f"value_dim={d_val}){hint}"
            )
    given = {"num_heads": (num_heads, heads), "key_dim": (key_dim, d_key),
             "value_dim": (value_dim, d_val)}
    for name, (value_given, value_found) in given.items():
        if value_given is not None and value_given != value_found:
            raise ValueError(
                f"{name}={value_given} was given but the weights have {name}={value_found}; "
                "use the layer's own settings (or leave it None to read it from the weights)"
            )
    tq, tk = query.shape[1], value.shape[1]
    mask = None
    if attention_mask is not None:
        mask = _as_bool_mask(attention_mask, "attention_mask")
        if not 2 <= mask.ndim <= 4:
            raise ValueError(
                f"attention_mask must have 2 to 4 dimensions ((Tq, Tk), (batch, Tq, Tk) or "
                f"(batch, num_heads, Tq, Tk)), got shape {mask.shape}"
            )
        if mask.ndim == 4:
            _check_mask_shape(mask, (query.shape[0], heads, tq, tk))
        else:
            _check_mask_shape(mask, (query.shape[0], tq, tk))
            mask = mask.reshape((1,) * (3 - mask.ndim) + mask.shape)[:, None]
    if use_causal_mask:
        mask = combine_masks(mask, causal_mask(tq, tk))

    def project(x: np.ndarray, kernel: str, bias: str) -> np.ndarray:
        out = np.einsum("btd,dnh->bnth", x, w[kernel])
        return out if w[bias] is None else out + w[bias][:, None, :]

    heads_out, attn = scaled_dot_product_attention(
        project(query, "W_Q", "b_Q"), project(key, "W_K", "b_K"),
        project(value, "W_V", "b_V"), mask=mask, scale=1.0 / math.sqrt(d_key), dtype=dtype,
    )
    output = np.einsum("bnth,nho->bto", heads_out, w["W_O"])
    if w["b_O"] is not None:
        output = output + w["b_O"]
    return output, attn


def keras_mha_weights_by_name(layer: Any) -> dict[str, NDArray | None]:
    """The weights of a built ``keras.layers.MultiHeadAttention``, named by their symbols.

    Read from the layer's sub-layers by name (``query``, ``key``, ``value``,
    ``attention_output``), so notebook 08 can show which Keras weight is which symbol.

    Args:
        layer: a built ``keras.layers.MultiHeadAttention`` (call it once, or ``build`` it).

    Returns:
        ``{"W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O"}`` as NumPy arrays (shapes
        in :func:`multi_head_attention`); the ``b_*`` entries are None for a layer with
        ``use_bias=False``. The dict can be passed as ``weights`` to
        :func:`multi_head_attention`.

    Raises:
        TypeError: ``layer`` is not a Keras MultiHeadAttention layer.
        ValueError: the layer is not built yet, or uses ``use_gate=True``.
    """
    import keras

    if not isinstance(layer, keras.layers.MultiHeadAttention):
        raise TypeError(
            f"layer must be a keras.layers.MultiHeadAttention, got {type(layer).__name__}"
        )
    if not layer.built:
        raise ValueError(
            "the layer is not built yet, so it has no weights; call it once on example "
            "inputs, e.g. layer(query, value), or layer.build(query_shape, value_shape)"
        )
    if getattr(layer, "_use_gate", False):
        raise ValueError("layers with use_gate=True are not supported")
    out: dict[str, NDArray | None] = {}
    parts = {"Q": layer.query_dense, "K": layer.key_dense, "V": layer.value_dense,
             "O": layer.output_dense}
    for symbol, sub in parts.items():
        out[f"W_{symbol}"] = np.array(sub.kernel.numpy())
        bias = getattr(sub, "bias", None)
        out[f"b_{symbol}"] = None if bias is None else np.array(bias.numpy())
    return {name: out[name] for name in MHA_WEIGHT_NAMES}


def mha_parameter_count(
    d_model: int,
    num_heads: int,
    key_dim: int,
    value_dim: int | None = None,
    d_out: int | None = None,
    use_bias: bool = True,
    *,
    d_key_input: int | None = None,
    d_value_input: int | None = None,
) -> int:
    """Number of trainable parameters of ``keras.layers.MultiHeadAttention``, derived.

    With ``H = num_heads``, ``d_q = d_model`` (query features), ``d_k``/``d_v`` the key and
    value input features, ``kd = key_dim``, ``vd = value_dim``::

        W_Q: d_q H kd    W_K: d_k H kd    W_V: d_v H vd    W_O: H vd d_out
        biases (use_bias=True): H kd + H kd + H vd + d_out

    Args:
        d_model: feature size of the query input.
        num_heads: number of heads.
        key_dim: size of each head's queries and keys.
        value_dim: size of each head's values; defaults to ``key_dim`` (as in Keras).
        d_out: output features; defaults to ``d_model`` (Keras projects back to the query's
            feature size unless ``output_shape`` is given).
        use_bias: whether the layer has biases.
        d_key_input: feature size of the key input; defaults to ``d_value_input``.
        d_value_input: feature size of the value input; defaults to ``d_model``.

    Returns:
        The count, equal to ``layer.count_params()`` of a built layer.

    Raises:
        ValueError: a size that is not a positive integer.

    Explained in notebook 08.
    """
    value_dim = key_dim if value_dim is None else value_dim
    d_out = d_model if d_out is None else d_out
    d_value_input = d_model if d_value_input is None else d_value_input
    d_key_input = d_value_input if d_key_input is None else d_key_input
    sizes = {"d_model": d_model, "num_heads": num_heads, "key_dim": key_dim,
             "value_dim": value_dim, "d_out": d_out, "d_key_input": d_key_input,
             "d_value_input": d_value_input}
    for name, size in sizes.items():
        check_int(name, size)
    kernels = (d_model * num_heads * key_dim + d_key_input * num_heads * key_dim
               + d_value_input * num_heads * value_dim + num_heads * value_dim * d_out)
    biases = 2 * num_heads * key_dim + num_heads * value_dim + d_out
    return int(kernels + (biases if use_bias else 0))
