# %% [markdown]
# # Exercises · 09 The Transformer block
#
# Four questions that rebuild, by hand, the pieces of notebook 09: one entry of the sinusoidal
# position encodings, layer normalisation, the number of parameters of a block, and the mask a
# causal block uses on a left-padded batch. Each asks for a small function; the `check()` line
# under it runs your function on small hand-made inputs and says what is wrong, if anything.
# Stuck? Use `hint()`, then `solution()`. The last cell prints your progress.

# %%
import math

import numpy as np

from recsys_lib.exercises.ex09 import *  # noqa: F403  (q1, q2, ..., summary)

# %% [markdown]
# ## Question 1: one entry of the sinusoidal encodings
# Write `sinusoidal_entry(t, j, d_model)` that returns the float $\mathrm{PE}_{t,j}$ of equation
# (4) of notebook 09: the entry of dimension `j` (0-based, `0 <= j < d_model`) of the encoding of
# position `t`. Even and odd dimensions come in pairs $(2i, 2i+1)$ that share the frequency
# $\omega_i = 10000^{-2i/d}$; the even one is a sine, the odd one a cosine.
#
# You can compare your numbers with `recsys_lib.models.transformer.sinusoidal_positions`.

# %%
def sinusoidal_entry(t: int, j: int, d_model: int) -> float:
    # BEGIN SOLUTION q1
    i = j // 2  # dimensions 2i and 2i + 1 share the frequency omega_i
    omega = 10000 ** (-2 * i / d_model)
    return math.sin(omega * t) if j % 2 == 0 else math.cos(omega * t)
    # END SOLUTION


q1.check(sinusoidal_entry)

# %% [markdown]
# ## Question 2: layer normalisation
# Write `layer_norm(x, gamma, beta, eps=1e-6)` for an array `x` of shape `(..., d)` (for example
# `(batch, T, d)`), with `gamma` and `beta` of shape `(d,)`. Normalise the `d` features of each
# position to mean 0 and variance 1, then scale by `gamma` and shift by `beta`: equation (9) of
# notebook 09. Return an array of the shape of `x`.

# %%
def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
               eps: float = 1e-6) -> np.ndarray:
    # BEGIN SOLUTION q2
    mu = x.mean(axis=-1, keepdims=True)  # (..., 1): one mean per position
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)  # (..., 1): divided by d
    return gamma * (x - mu) / np.sqrt(var + eps) + beta  # (..., d)
    # END SOLUTION


q2.check(layer_norm)

# %% [markdown]
# ## Question 3: how many parameters does a block have?
# Write `block_parameter_count(d_model, num_heads, d_ff)` that returns, as an `int`, the number
# of trainable parameters of `CausalTransformerBlock(d_model, num_heads, d_ff)`: multi-head
# attention with `num_heads` heads of size `d_model // num_heads` (biases included, notebook
# 08), the feed-forward network $W_2\,\mathrm{gelu}(W_1 z + b_1) + b_2$ with hidden width
# `d_ff`, and two layer norms. Use a formula, not Keras (`d_model` is divisible by
# `num_heads`).
#
# Then look at your formula: which of the three sizes does it not depend on?

# %%
def block_parameter_count(d_model: int, num_heads: int, d_ff: int) -> int:
    # BEGIN SOLUTION q3
    attention = 4 * d_model * d_model + 4 * d_model  # W_Q, W_K, W_V, W_O and their 4 biases
    feed_forward = d_model * d_ff + d_ff + d_ff * d_model + d_model  # W1, b1, W2, b2
    norms = 2 * (d_model + d_model)  # gamma and beta of two layer norms
    return attention + feed_forward + norms  # num_heads cancels out
    # END SOLUTION


q3.check(block_parameter_count)

# %% [markdown]
# ## Question 4: the mask of a causal block on a left-padded batch
# `sequences` is an integer array of shape `(batch, T)` of item indices, padded with 0 on the
# **left** (as `left_pad` does). Write `causal_padding_mask(sequences)` that returns the boolean
# attention mask of shape `(batch, T, T)`: entry `[b, t, s]` is `True` when, in sequence `b`,
# the query at position `t` may attend to the key at position `s`. That is allowed when `s` is
# not in the future of `t` **and** position `s` holds a real item (not padding). `True` means
# allowed, as in Keras and the course library.

# %%
def causal_padding_mask(sequences: np.ndarray) -> np.ndarray:
    # BEGIN SOLUTION q4
    real = sequences != 0  # (batch, T): True at real items
    T = sequences.shape[1]
    causal = np.tril(np.ones((T, T), dtype=bool))  # (T, T): key s <= query t
    return causal[None, :, :] & real[:, None, :]  # (batch, T, T): padding keys hidden
    # END SOLUTION


q4.check(causal_padding_mask)

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
