# %% [markdown]
# # Exercises · 10 The Transformer recommender
#
# Four questions that rebuild, by hand, the data plumbing and the evaluation of notebook 10: the
# attention mask of a left-padded batch, NDCG@10 when one item is relevant, left truncation and
# padding of a history, and the next-item inputs and targets of a training window. Each asks for
# a small NumPy function; the `check()` line under it runs your function on small hand-made
# inputs and says what is wrong, if anything. Stuck? Use `hint()`, then `solution()`. The last
# cell prints your progress.

# %%
import math

import numpy as np

from recsys_lib.exercises.ex10 import *  # noqa: F403  (q1, q2, ..., summary)

# %% [markdown]
# ## Question 1: the attention mask of a left-padded batch
# A batch holds histories of different lengths, padded with 0 on the **left** to `T` positions
# (so a history of length `L` fills the last `L` positions). You get only the lengths. Write
# `mask_from_lengths(lengths, T)` that returns the boolean mask of shape `(batch, T, T)` used by
# every causal block of notebook 10: entry `[b, t, s]` is `True` when, in sequence `b`, the
# query at position `t` may attend to the key at position `s`, that is when `s` is not after `t`
# **and** position `s` holds a real item. `True` means allowed, as in Keras. All lengths are
# between 0 and `T`.
#
# (Exercise 4 of notebook 09 built the same mask from the sequences themselves; here you must
# work out where the real items are.)

# %%
def mask_from_lengths(lengths: np.ndarray, T: int) -> np.ndarray:
    # BEGIN SOLUTION q1
    lengths = np.asarray(lengths)
    real = np.arange(T)[None, :] >= T - lengths[:, None]  # (batch, T): the last L positions
    causal = np.tril(np.ones((T, T), dtype=bool))  # (T, T): key s <= query t
    return causal[None, :, :] & real[:, None, :]  # (batch, T, T): padding keys hidden
    # END SOLUTION


q1.check(mask_from_lengths)

# %% [markdown]
# Look at the rows of the padding positions in your mask: what is special about them with left
# padding, and why does the library's block set the outputs at those positions to 0?

# %% [markdown]
# ## Question 2: NDCG@10 when one item is relevant
# In leave-last-out evaluation each user has exactly one relevant item, the held-out one. Write
# `ndcg_at_10(ranking, relevant_item)` that returns NDCG@10 as a float for a ranked list of item
# ids (best first) and that one relevant item. Use ranks that start at 1 and the discount
# $1/\log_2(\mathrm{rank} + 1)$ of notebook 05; items below rank 10 do not count. Do not call
# `recsys_lib.metrics` (the checker compares you with it).

# %%
def ndcg_at_10(ranking: list, relevant_item) -> float:
    # BEGIN SOLUTION q2
    top = list(ranking)[:10]
    if relevant_item not in top:
        return 0.0
    rank = top.index(relevant_item) + 1  # 1-based
    return 1.0 / math.log2(rank + 1)  # the ideal DCG with one relevant item is 1 / log2(2) = 1
    # END SOLUTION


q2.check(ndcg_at_10)

# %% [markdown]
# ## Question 3: keep the most recent items, pad on the left
# Write `left_pad_history(history, max_len)` that turns a list of item indices (oldest first,
# no zeros in it) into a NumPy integer array of exactly `max_len` entries: a history longer than
# `max_len` keeps only its `max_len` **most recent** items, and a shorter one is padded with 0
# on the **left**, so that the newest item is always at the last position.

# %%
def left_pad_history(history: list, max_len: int) -> np.ndarray:
    # BEGIN SOLUTION q3
    kept = list(history)[-max_len:] if history else []
    out = np.zeros(max_len, dtype=np.int64)
    if kept:
        out[max_len - len(kept):] = kept
    return out
    # END SOLUTION


q3.check(left_pad_history)

# %% [markdown]
# ## Question 4: next-item inputs and targets
# SASRec is trained to predict, at every position, the item that comes next. Write
# `next_item_window(history, max_len)` that returns the tuple `(inputs, targets)` of the most
# recent training window of one history (a list of at least 2 item indices, oldest first): two
# integer arrays of `max_len` entries each, where `targets[t]` is the item that followed
# `inputs[t]`, both truncated and left-padded as in question 3 (a target of 0 means "no loss
# here"). For the history `[1, 2, 3]` and `max_len=4` that is `[0, 0, 1, 2]` and `[0, 0, 2, 3]`.

# %%
def next_item_window(history: list, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    # BEGIN SOLUTION q4
    inputs = left_pad_history(history[:-1], max_len)  # what the model reads
    targets = left_pad_history(history[1:], max_len)  # the next item at each position
    return inputs, targets
    # END SOLUTION


q4.check(next_item_window)

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
