# %% [markdown]
# # Exercises · 07 Scaled dot-product attention
#
# Four questions that rebuild, by hand, the pieces of notebook 07: a softmax that survives large
# and masked scores, attention for one query, a causal mask, and the variance that explains the
# $1/\sqrt{d_k}$. Each asks for a small function; the `check()` line under it runs your function
# on small hand-made inputs and says what is wrong, if anything. Stuck? Use `hint()`, then
# `solution()`. The last cell prints your progress.

# %%
import math

import numpy as np

from recsys_lib.exercises.ex07 import *  # noqa: F403  (q1, q2, ..., summary)

# %% [markdown]
# ## Question 1: a softmax that never overflows and never returns NaN
# Write `stable_softmax(x)` that returns the softmax of a float array `x` along its **last**
# axis (each row separately), with the same shape as `x`. It must
#
# * not overflow for large scores such as `[1000.0, 1001.0, 1002.0]` (`np.exp(1000)` is `inf`);
# * give a weight of exactly 0 to `-inf` entries (masked scores);
# * return zeros, not NaN, for a row whose entries are **all** `-inf` (a query that may attend to
#   nothing).

# %%
def stable_softmax(x: np.ndarray) -> np.ndarray:
    # BEGIN SOLUTION q1
    x = np.asarray(x, dtype=float)
    top = np.max(x, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)  # an all -inf row: subtract 0, not -inf
    e = np.exp(x - top)  # every exponent <= 0: no overflow; exp(-inf) = 0
    total = e.sum(axis=-1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    # END SOLUTION


q1.check(stable_softmax)

# %% [markdown]
# ## Question 2: attention for one query, by hand
# Write `attend_one(q, K, V)` for one query `q` of shape `(d_k,)`, keys `K` of shape
# `(n, d_k)` and values `V` of shape `(n, d_v)`. Return the tuple `(output, weights)`: the
# weights of shape `(n,)` from equations (1)-(3) of notebook 07 (dot products, scaled by
# $1/\sqrt{d_k}$, softmax) and the output of shape `(d_v,)` from equation (4), the weighted sum
# of the values. You may use your `stable_softmax`.

# %%
def attend_one(q: np.ndarray, K: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # BEGIN SOLUTION q2
    scores = K @ q / math.sqrt(q.shape[0])  # (n,)
    weights = stable_softmax(scores)  # (n,)
    output = weights @ V  # (d_v,)
    return output, weights
    # END SOLUTION


q2.check(attend_one)

# %% [markdown]
# ## Question 3: a causal mask
# Write `make_causal_mask(T)` that returns a **boolean** array of shape `(T, T)` whose entry
# `[t, s]` is `True` when the query at position `t` may attend to the key at position `s`: the
# course convention (and Keras's), `True` = allowed. Position `t` may see itself and the
# positions before it, never a later one.

# %%
def make_causal_mask(T: int) -> np.ndarray:
    # BEGIN SOLUTION q3
    return np.tril(np.ones((T, T), dtype=bool))
    # END SOLUTION


q3.check(make_causal_mask)

# %% [markdown]
# ## Question 4: the variance of a dot product
# The entries of `q` and `k` (both of length `d_k`) are independent, with mean 0 and standard
# deviations `sigma_q` and `sigma_k`. Write `qk_variance(d_k, sigma_q, sigma_k)` that returns
# the **exact** variance of $q \cdot k$ (a formula, not a simulation). Notebook 07 derived the
# case `sigma_q = sigma_k = 1`, equations (6)-(7).
#
# You can test your formula by simulation: draw many pairs with
# `rng.normal(0, sigma_q, (100_000, d_k))` and compare `np.var` of their dot products with it.

# %%
def qk_variance(d_k: int, sigma_q: float = 1.0, sigma_k: float = 1.0) -> float:
    # BEGIN SOLUTION q4
    # Var(q_i k_i) = E[q_i^2] E[k_i^2] = sigma_q^2 sigma_k^2; d_k independent terms add up.
    return d_k * sigma_q**2 * sigma_k**2
    # END SOLUTION


q4.check(qk_variance)

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
