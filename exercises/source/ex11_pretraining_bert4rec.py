# %% [markdown]
# # Exercises · 11 Pre-training and fine-tuning: from BERT to BERT4Rec
#
# Five questions that rebuild, by hand, the pieces of notebook 11: BERT's masking of a batch
# (the cloze task), the loss over the masked positions only, the attention masks of SASRec and
# BERT4Rec, why a model that looks both ways must hide what it predicts, and how to tell, data
# fraction by data fraction, whether pre-training helped. Each asks for a small NumPy or pandas
# function; the `check()` line under it runs your function on inputs of its own and says what
# is wrong, if anything. Nothing here trains a model. Stuck? Use `hint()`, then `solution()`.
# The last cell prints your progress.

# %%
import numpy as np
import pandas as pd

from recsys_lib.exercises.ex11 import *  # noqa: F403  (q1, q2, ..., summary, PER_USER_NDCG)

# %% [markdown]
# ## Question 1: BERT's 80-10-10 masking
# BERT4Rec learns by the cloze task: hide some items of a history and predict them from the
# items on both sides. Write `cloze_mask(sequences, n_items, rng, rate)` that corrupts a batch
# the way BERT does. `sequences` is a `(batch, T)` integer array of item indices, padded with 0
# on the left; the items are `1..n_items` and the mask token [MASK] is `n_items + 1`. `rng` is a
# NumPy `Generator` and `rate` a number in (0, 1].
#
# * Each **real** position (item > 0) is chosen independently with probability `rate`;
#   padding is never chosen.
# * A chosen position's input becomes [MASK] with probability 0.8, a random item drawn
#   uniformly from `1..n_items` with probability 0.1 (it may happen to be the original item),
#   and stays as it is with probability 0.1.
# * `targets` holds the original item at every chosen position and 0 (no loss) everywhere else.
#
# Return `(inputs, targets)`, two integer arrays of the shape of `sequences`; leave
# `sequences` itself unchanged, and draw every random number from `rng`, so that a seeded run
# repeats. The library's version, `recsys_lib.models.transformer.cloze_mask`, also chooses one
# item of a sequence at random when the draw chose none; you may leave that out.
#
# The masking is random, so the checker looks at what must hold for every draw (hand-made
# batches) and at the proportions over two large random batches, which must be within 6
# binomial standard deviations of what the rules give (`rate` of the real positions chosen;
# of those, 80% [MASK], 10% random, 10% unchanged).

# %%
def cloze_mask(sequences: np.ndarray, n_items: int, rng: np.random.Generator,
               rate: float) -> tuple[np.ndarray, np.ndarray]:
    # BEGIN SOLUTION q1
    sequences = np.asarray(sequences)
    chosen = (sequences > 0) & (rng.random(sequences.shape) < rate)  # never the padding
    action = rng.random(sequences.shape)  # one draw per position decides what happens to it
    inputs = sequences.copy()
    inputs[chosen & (action < 0.8)] = n_items + 1  # 80%: [MASK]
    swap = chosen & (action >= 0.8) & (action < 0.9)  # 10%: a random item (maybe itself)
    inputs[swap] = rng.integers(1, n_items + 1, size=int(swap.sum()))
    # the other 10% keep their item, and still have a target
    targets = np.where(chosen, sequences, 0)
    return inputs, targets
    # END SOLUTION


q1.check(cloze_mask)

# %% [markdown]
# BERT's paper gives the reason for the 10% random and 10% unchanged items: [MASK] never
# appears in the text a model is fine-tuned on, so a model that only ever predicts behind
# [MASK] learns little about the positions that hold a real item. Which positions of your
# `inputs` have a target but still show the model their own item? Keep them in mind for
# question 4.

# %% [markdown]
# ## Question 2: the loss over the masked positions only
# The model scores every item at every position: `logits` has shape `(batch, T, V)`, where
# column `j` is the score of item `j` (column 0 is padding and is never a target; for BERT4Rec
# `V = n_items + 1`, and [MASK] has no column). `targets` is `(batch, T)` with 0 where there is
# nothing to predict. Write `masked_cross_entropy(logits, targets)` that returns, as a float,
# the **mean over the positions with a target** of the softmax cross-entropy
# $-\log \mathrm{softmax}(\text{logits}_{b,t})_{\text{targets}_{b,t}}$. Every batch the checker
# uses has at least one target. Logits can be large: `np.exp(1000)` overflows, so compute the
# log-softmax stably.

# %%
def masked_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    # BEGIN SOLUTION q2
    shifted = logits - logits.max(axis=-1, keepdims=True)  # same softmax, no overflow
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # over items
    picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]  # (batch, T)
    return float(-picked[targets > 0].mean())  # one term per target, each counted once
    # END SOLUTION


q2.check(masked_cross_entropy)

# %% [markdown]
# Keras' `SparseCategoricalCrossentropy` with `sample_weight=(targets > 0)`, which is how the
# course's training loop leaves the other positions out of the loss, divides the weighted sum
# by **all** `batch × T` positions, not by the number of targets. With a mask rate of 0.2 and
# windows that are 70% full, by how much does that shrink the loss BERT4Rec reports? Why can
# you then not compare its printed loss with SASRec's, whose targets fill every real position,
# or with $\log(\text{n\_items})$, the loss of a uniform guess?

# %% [solution-only]
rng = np.random.default_rng(0)
lengths = rng.integers(20, 51, 64)  # left-padded windows, 70% full on average
windows = np.where(np.arange(50) >= 50 - lengths[:, None], rng.integers(1, 1001, (64, 50)), 0)
_, targets = cloze_mask(windows, 1000, rng, 0.2)
logits = np.zeros((64, 50, 1001))  # a model that scores every item alike
logits[..., 0] = -1e9  # column 0 (padding) is never predicted, as in the library
per_target = masked_cross_entropy(logits, targets)
print(f"uniform guess, per target: {per_target:.3f} (log(1000) = {np.log(1000):.3f}); "
      f"divided by all positions: {per_target * (targets > 0).mean():.3f}, as "
      f"{(targets > 0).mean():.1%} of the positions have a target")

# %% [markdown]
# ## Question 3: causal and bidirectional attention masks
# SASRec's blocks are causal: position `t` attends to the positions up to `t`. BERT4Rec uses
# the same block with `causal=False`: every position attends to every real item, before and
# after it. Write `attention_mask(sequence, causal)` that returns the boolean `(T, T)` mask of
# one left-padded sequence (a 1-D integer array, 0 = padding): entry `[t, s]` is `True` when the
# query at position `t` may attend to the key at position `s`, that is when position `s` holds
# a real item **and**, if `causal` is true, `s <= t`. Hide only the padding keys (columns), not
# the rows of the padding queries: the block sets the outputs at padding positions to 0
# anyway.

# %%
def attention_mask(sequence: np.ndarray, causal: bool) -> np.ndarray:
    # BEGIN SOLUTION q3
    T = len(sequence)
    allowed = np.ones((T, T), dtype=bool)
    if causal:
        allowed = np.tril(allowed)  # key s <= query t
    return allowed & (np.asarray(sequence) > 0)[None, :]  # padding keys hidden in every row
    # END SOLUTION


q3.check(attention_mask)

# %% [markdown]
# ## Question 4: does a training layout leak its answer?
# A training example is a pair of arrays: `inputs`, what the model reads, and `targets`, what
# it must predict at each position (0 = nothing). Position `t` predicts `targets[t]` from the
# inputs it may attend to (your mask of question 3, applied to `inputs`). The layout **leaks**
# when some position with a target may attend to a key whose input is that very target item:
# the model can then copy the answer instead of learning to predict it.
#
# Write `has_leak(inputs, targets, causal)` that returns `True` when the layout leaks and
# `False` otherwise. In the checker's examples no item appears twice in a history, so a target
# item among the visible inputs is always the answer itself. For instance the next-item layout
# of SASRec (`inputs = [0, 0, 3, 1, 5]`, `targets = [0, 0, 1, 5, 2]`) does not leak with
# `causal=True`; does it leak without the causal mask?

# %%
def has_leak(inputs: np.ndarray, targets: np.ndarray, causal: bool) -> bool:
    # BEGIN SOLUTION q4
    visible = attention_mask(inputs, causal)  # [t, s]: position t sees the input at s
    # [t, s]: the input at s is the item that position t must predict
    answer_at = (inputs[None, :] == targets[:, None]) & (targets[:, None] > 0)
    return bool((visible & answer_at).any())
    # END SOLUTION


q4.check(has_leak)

# %% [markdown]
# This is why BERT4Rec needs the cloze task: without the causal mask, the next-item targets of
# SASRec would be visible one position to the right, and a bidirectional model would learn to
# copy. One of the checker's layouts leaks on purpose, in BERT's 10% of chosen items that keep
# their item. Why does that small leak not teach the model to copy? (Can it tell those
# positions apart from the ones that were not chosen?)

# %% [markdown]
# ## Question 5: where does pre-training help?
# Notebook 11 pre-trains BERT4Rec on one group of users, fine-tunes it on another group using
# only a fraction of that group's training data, and compares it with the same model trained
# from scratch on the same fraction, both evaluated on the same test users. `PER_USER_NDCG`
# holds one row per fraction and test user: the NDCG@10 of the pre-trained model and of the
# model trained from scratch (simulated numbers shaped like such an experiment; the notebook
# measures real ones). Here are their means:

# %%
PER_USER_NDCG.groupby("fraction")[["pretrained", "scratch"]].mean()

# %% [markdown]
# Write `pretraining_gains(table, seed)` that returns a DataFrame with one row per fraction,
# indexed by the fraction, and the columns `difference` (the mean over the users of
# `pretrained - scratch`), `low` and `high` (a 95% paired percentile bootstrap interval of that
# mean) and `excludes_zero` (`True` when the interval lies entirely above or entirely below 0).
# Compute each fraction's interval exactly as `recsys_lib.stats.paired_bootstrap(a, b,
# seed=seed)` does (the checker compares you with it, so do not call it): take that
# fraction's rows in the order of the table, `diff = pretrained - scratch`; start a fresh
# `rng = np.random.default_rng(seed)`; draw all 2000 resamples of the users at once,
# `rng.integers(0, n_users, size=(2000, n_users))`; take the mean of `diff` in each resample;
# `low` and `high` are the 0.025 and 0.975 quantiles of those means (`np.quantile`).

# %%
def pretraining_gains(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    # BEGIN SOLUTION q5
    rows = {}
    for fraction, group in table.groupby("fraction"):  # keeps each group's rows in order
        diff = (group["pretrained"] - group["scratch"]).to_numpy()  # paired: per user
        rng = np.random.default_rng(seed)  # a fresh generator for every fraction
        users = rng.integers(0, len(diff), size=(2000, len(diff)))  # one resample per row
        means = diff[users].mean(axis=1)
        low, high = np.quantile(means, [0.025, 0.975])
        rows[fraction] = {"difference": diff.mean(), "low": low, "high": high,
                          "excludes_zero": bool(low > 0 or high < 0)}
    return pd.DataFrame.from_dict(rows, orient="index")
    # END SOLUTION


q5.check(pretraining_gains)

# %% [solution-only]
pretraining_gains(PER_USER_NDCG, seed=0).round(4)

# %% [markdown]
# Up to which fraction of the fine-tuning data does pre-training help, and by how much NDCG@10
# compared with the from-scratch model's own level? Why would the gain shrink as the
# fine-tuning data grows? You made five comparisons: if pre-training never helped, about how
# likely is it that at least one 95% interval excludes 0 by chance alone?

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
