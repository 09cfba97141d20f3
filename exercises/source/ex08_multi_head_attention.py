# %% [markdown]
# # Exercises · 08 Multi-head attention
#
# Four questions that rebuild the pieces of notebook 08: the parameter count of a layer, the
# reshapes that split an array into heads and merge it back, one head computed by hand, and
# finding $W^O$ among the weights of `keras.layers.MultiHeadAttention`. Each asks for a small
# function; the `check()` line under it runs your function on small inputs and says what is
# wrong, if anything. Stuck? Use `hint()`, then `solution()`. The last cell prints your progress.

# %%
from recsys_lib.config import import_tensorflow_quietly

import_tensorflow_quietly()  # before `import keras`: hides TensorFlow's C++ start-up lines
import keras
import numpy as np

from recsys_lib.exercises.ex08 import *  # noqa: F403  (q1, q2, ..., summary)

# %% [markdown]
# ## Question 1: how many parameters?
# Write `mha_params(d_model, num_heads, key_dim, use_bias=True)` that returns the number of
# trainable parameters (an `int`) of `keras.layers.MultiHeadAttention(num_heads, key_dim,
# use_bias=use_bias)` used for self-attention on inputs with `d_model` features. As in Keras,
# `key_dim` is the size of **each** head's queries and keys, each head's values have the same
# size, and the output has `d_model` features. Count every matrix of equations (2) and (3) of
# notebook 08, and the biases when `use_bias` is true.

# %%
def mha_params(d_model: int, num_heads: int, key_dim: int, use_bias: bool = True) -> int:
    # BEGIN SOLUTION q1
    projections = 3 * d_model * num_heads * key_dim  # W^Q, W^K, W^V: all heads together
    output = num_heads * key_dim * d_model  # W^O: (h * d_v, d_model)
    biases = 3 * num_heads * key_dim + d_model if use_bias else 0  # b_Q, b_K, b_V, b_O
    return projections + output + biases
    # END SOLUTION


q1.check(mha_params)

# %% [markdown]
# ## Question 2: split into heads, merge back
# Write `split_heads(x, num_heads)` that turns an array of shape `(batch, T, num_heads * d)` into
# shape `(batch, num_heads, T, d)`, where head `i` gets the consecutive columns `i*d` to
# `(i+1)*d - 1` (equation (4) of notebook 08), and `merge_heads(x)` that turns
# `(batch, num_heads, T, d)` back into `(batch, T, num_heads * d)`, so that
# `merge_heads(split_heads(x, h))` equals `x`. Check both at once by passing the pair.

# %%
def split_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    # BEGIN SOLUTION q2
    batch, T, width = x.shape
    return x.reshape(batch, T, num_heads, width // num_heads).transpose(0, 2, 1, 3)
    # END SOLUTION


def merge_heads(x: np.ndarray) -> np.ndarray:
    # BEGIN SOLUTION q2
    batch, num_heads, T, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, T, num_heads * d)
    # END SOLUTION


q2.check((split_heads, merge_heads))

# %% [markdown]
# ## Question 3: one head by hand
# Here is one head on a sequence of 3 items with 3 features each, and projections to
# $d_k = d_v = 2$:

# %%
x_small = np.array([[1.0, 0.0, 1.0],
                    [0.0, 2.0, 0.0],
                    [1.0, 1.0, 0.0]])  # (T, d_model) = (3, 3)
w_q_small = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # (d_model, d_k) = (3, 2)
w_k_small = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])  # (3, 2)
w_v_small = np.array([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]])  # (d_model, d_v) = (3, 2)
print("queries:\n", x_small @ w_q_small, "\nkeys:\n", x_small @ w_k_small)

# %% [markdown]
# Write `one_head(x, w_q, w_k, w_v)` that returns `(output, weights)` for self-attention of one
# sequence `x` of shape `(T, d_model)`: the queries, keys and values are `x @ w_q`, `x @ w_k` and
# `x @ w_v`, `weights[i, j]` is how much query `i` attends to key `j` (each row sums to 1, scores
# scaled by $1/\sqrt{d_k}$), and `output = weights @ values` has shape `(T, d_v)`. Use NumPy only
# (no library attention function). Try it on the example above and look at the weights: which
# item does each query attend to most, and why?

# %%
def one_head(x: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, w_v: np.ndarray):
    # BEGIN SOLUTION q3
    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (T, d_k), (T, d_k), (T, d_v)
    scores = q @ k.T / np.sqrt(q.shape[1])  # (T, T)
    scores = scores - scores.max(axis=1, keepdims=True)  # stable softmax, row by row
    weights = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)  # (T, T)
    return weights @ v, weights  # (T, d_v), (T, T)
    # END SOLUTION


# BEGIN SOLUTION q3
out_small, weights_small = one_head(x_small, w_q_small, w_k_small, w_v_small)
print("weights:\n", weights_small.round(3), "\noutput:\n", out_small.round(3))
# END SOLUTION
# BEGIN EXERCISE
# # Uncomment to look at your result on the example:
# # out_small, weights_small = one_head(x_small, w_q_small, w_k_small, w_v_small)
# # print("weights:\n", weights_small.round(3), "\noutput:\n", out_small.round(3))
# END EXERCISE
q3.check(one_head)

# %% [markdown]
# ## Question 4: which Keras weight is $W^O$?
# This layer has 2 heads, queries and keys of size 3 per head, values of size 4 per head, and
# works on inputs with 6 features:

# %%
layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4)
layer(np.zeros((1, 5, 6)), np.zeros((1, 5, 6)))  # the first call builds the weights
for weight in layer.weights:
    print(f"{weight.path:<45} {tuple(weight.shape)}")

# %% [markdown]
# Write `w_o_matrix(layer)` that takes such a built layer and returns the $W^O$ of equation (3),
# $\mathrm{Concat}(\mathrm{head}_1, \ldots, \mathrm{head}_h)\, W^O$, as a 2-D NumPy array of shape
# `(num_heads * value_dim, d_model)`: rows `0 .. value_dim-1` belong to head 1, the next
# `value_dim` rows to head 2, and so on. Find the right weight by its shape (`layer.weights`,
# `layer.get_weights()`, or `recsys_lib.attention.keras_mha_weights_by_name`).

# %%
def w_o_matrix(layer) -> np.ndarray:
    # BEGIN SOLUTION q4
    kernel = np.asarray(layer.get_weights()[6])  # attention_output/kernel (h, d_v, d_model)
    return kernel.reshape(-1, kernel.shape[-1])  # (h * d_v, d_model), head by head
    # END SOLUTION


q4.check(w_o_matrix)

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
