# %% [markdown]
# # Exercises · 06 Deep learning for recommendation
#
# Four questions that rebuild, in NumPy, the pieces of notebook 06: an embedding lookup written
# as a one-hot product, the GMF score of NeuMF, the in-batch softmax loss of a two-tower model
# and its logQ correction. Each asks for a small function; the `check()` line under it runs your
# function on small hand-made inputs and says what is wrong, if anything. Stuck? Use `hint()`,
# then `solution()`. The last cell prints your progress.

# %%
import numpy as np
from scipy.special import logsumexp

from recsys_lib.exercises.ex06 import *  # noqa: F403  (q1, q2, ..., summary)

# %% [markdown]
# ## Question 1: an embedding lookup is a one-hot product
# Write `embed_with_one_hot(table, ids)` that returns the embeddings of the integer array `ids`
# (shape `(batch,)`, values in `0 .. n_rows - 1`, repeats allowed) from `table` (shape
# `(n_rows, d)`) **by building the one-hot matrix of the ids and multiplying it by the table**,
# equation (1) of notebook 06. The result has shape `(batch, d)`. Then compare it with
# `table[ids]`, which is what `keras.layers.Embedding` does.

# %%
def embed_with_one_hot(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    # BEGIN SOLUTION q1
    one_hot = np.eye(table.shape[0])[ids]  # (batch, n_rows): a 1 at column ids[b] in row b
    return one_hot @ table  # (batch, d)
    # END SOLUTION


q1.check(embed_with_one_hot)

# %% [markdown]
# ## Question 2: the GMF score
# NeuMF's GMF branch (equation (4) of notebook 06) scores user `u` and item `i` as
# $h^\top (p_u \odot q_i)$: the element-wise product of the user's row of `P` (shape
# `(n_users, d)`) and the item's row of `Q` (shape `(n_items, d)`), weighted by `h` (shape
# `(d,)`) and summed. Write `gmf_logit(P, Q, h, u, i)` that returns this score, a single number
# (the logit, before any sigmoid).

# %%
def gmf_logit(P: np.ndarray, Q: np.ndarray, h: np.ndarray, u: int, i: int) -> float:
    # BEGIN SOLUTION q2
    return float(np.sum(h * P[u] * Q[i]))
    # END SOLUTION


q2.check(gmf_logit)

# %% [markdown]
# ## Question 3: the in-batch softmax loss
# A batch holds `B` observed pairs; `U` (shape `(B, d)`) holds the user vectors and `V` (shape
# `(B, d)`) the item vectors, in the same order, so user `k` interacted with item `k`. With
# $S = U V^\top / \tau$, each user's positive is on the diagonal and the other items of the
# batch are the negatives. Write `in_batch_loss(U, V, temperature)` that returns equation (11)
# of notebook 06, the mean over the rows of $\log \sum_j e^{S_{kj}} - S_{kk}$, as one number. It
# must not overflow when the scores are in the thousands (`np.exp(1000)` is `inf`).

# %%
def in_batch_loss(U: np.ndarray, V: np.ndarray, temperature: float) -> float:
    # BEGIN SOLUTION q3
    S = U @ V.T / temperature  # (B, B): S[k, j] = score of user k for the batch's item j
    per_row = logsumexp(S, axis=1) - np.diag(S)  # (B,) softmax cross-entropy per user
    return float(per_row.mean())
    # END SOLUTION


q3.check(in_batch_loss)

# %% [markdown]
# ## Question 4: the logQ-corrected logits
# In-batch negatives are drawn in proportion to popularity, so equation (12) of notebook 06
# subtracts, from each logit, the log of the candidate item's sampling probability
# $q_j = \text{count}_j / \sum \text{counts}$. Write
# `corrected_logits(U, V, batch_items, item_counts, temperature)` where `U` and `V` are as in
# question 3, `batch_items` (shape `(B,)`) gives the catalogue id of each of the batch's items
# and `item_counts` (shape `(n_items,)`) the number of training interactions of every catalogue
# item. Return the `(B, B)` matrix $S_{kj} - \log q_{j}$, with $S = U V^\top / \tau$ and
# $q_j$ the probability of the batch's item $j$.

# %%
def corrected_logits(U: np.ndarray, V: np.ndarray, batch_items: np.ndarray,
                     item_counts: np.ndarray, temperature: float) -> np.ndarray:
    # BEGIN SOLUTION q4
    q = item_counts / item_counts.sum()  # (n_items,) share of the training interactions
    log_q = np.log(q[batch_items])  # (B,) one value per candidate item (column)
    return U @ V.T / temperature - log_q[None, :]  # (B, B)
    # END SOLUTION


q4.check(corrected_logits)

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
