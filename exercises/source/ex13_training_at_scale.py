# %% [markdown]
# # Exercises · 13 Training at scale
#
# Four questions on the arithmetic behind notebook 13's decisions: how the batch and the
# learning rate change when training is spread over several replicas, how much memory an
# item-embedding table takes (and what mixed precision does, and does not, change about it),
# how much of a padded batch is wasted and what bucketing saves, and how to read a scaling
# curve. Each asks for a small Python function; the `check()` line under it runs your function
# on hand-made inputs and says what is wrong, if anything. Nothing here needs TensorFlow or a
# GPU. Stuck? Use `hint()`, then `solution()`. The last cell prints your progress.

# %%
import numpy as np

from recsys_lib.exercises.ex13 import *  # noqa: F403  (q1, q2, ..., summary, SCALING_RUNS)

# %% [markdown]
# ## Question 1: the global batch and the learning rate for N replicas
# `tf.distribute.MirroredStrategy` (one machine, several GPUs) and
# `MultiWorkerMirroredStrategy` (several machines) keep one copy of the model on each device,
# a *replica*. At every step each replica computes the gradients of its own share of the batch,
# an **all-reduce** adds them up across the replicas (each replica divides its loss by the
# global batch size, so the sum is the gradient of the mean loss over the whole batch), and
# every replica applies the same update, so the copies stay identical. One step therefore
# learns from the **global batch**, the examples of all the replicas together: global batch =
# per-replica batch × replicas. (The input pipeline is batched with the global batch, and the
# strategy splits each batch between the replicas.)
#
# A learning rate tuned for one batch size does not carry over to another. The **linear
# scaling rule** (Goyal et al., 2017) says: when the global batch is multiplied by $k$,
# multiply the learning rate by $k$ (in practice with a few epochs of warm-up). With `base_lr`
# tuned for a global batch of `base_batch`,
#
# $$\text{learning rate} = \text{base\_lr} \times
# \frac{\text{global batch}}{\text{base\_batch}} .$$
#
# Write `scale_for_replicas(batch, replicas, base_lr, base_batch, keep)` that returns the
# tuple `(global_batch, per_replica_batch, learning_rate)`:
#
# * `keep="per_replica"`: each replica takes `batch` examples a step (the usual choice: it
#   keeps every device as busy as before), so the global batch grows with the replicas;
# * `keep="global"`: `batch` is the global batch; it stays as it is and is split evenly
#   between the replicas (to repeat a run made on one device, say). When it does not split
#   evenly, raise `ValueError`: the replicas cannot take equal shares.
#
# Both batch sizes are `int`s; the learning rate is a float.

# %%
def scale_for_replicas(batch: int, replicas: int, base_lr: float, base_batch: int,
                       keep: str) -> tuple[int, int, float]:
    # BEGIN SOLUTION q1
    if keep == "per_replica":
        per_replica, global_batch = batch, batch * replicas  # every replica takes `batch`
    else:  # keep == "global": the same global batch, split between the replicas
        if batch % replicas:
            raise ValueError(f"a global batch of {batch} does not split evenly over "
                             f"{replicas} replicas")
        global_batch, per_replica = batch, batch // replicas  # exact, so // loses nothing
    learning_rate = base_lr * global_batch / base_batch  # the linear scaling rule
    return global_batch, per_replica, learning_rate
    # END SOLUTION


q1.check(scale_for_replicas)

# %% [markdown]
# A run that was stable on one GPU diverges in its first hundred steps on eight, with
# `keep="per_replica"`. Which of your three numbers changed, and why does a warm-up (a learning
# rate that grows from a small value over the first steps) help? With `keep="global"` instead,
# what would you lose?

# %% [markdown]
# ## Question 2: the memory of an embedding table, and what mixed precision changes
# A sequential recommender's item-embedding table has one row of `d_model` numbers per item,
# and row 0 for the padding: `n_items + 1` rows. With a large catalogue it is the largest
# weight of the model, and training needs more memory than the table itself: the Adam
# optimiser keeps two *slots* per weight, m (a moving average of the gradients) and v (a
# moving average of their squares), each of the shape of the weight. Keras creates the slots
# with the dtype of the variable they follow.
#
# Mixed precision is chosen with a Keras dtype policy,
# `keras.mixed_precision.set_dtype_policy(policy)`:
#
# | policy | variables stored in | computations in |
# |---|---|---|
# | `"float32"` (the default) | float32 | float32 |
# | `"mixed_bfloat16"` (CPUs, TPUs, recent GPUs) | float32 | bfloat16 |
# | `"mixed_float16"` (GPUs, with loss scaling) | float32 | float16 |
# | `"bfloat16"` | bfloat16 | bfloat16 |
# | `"float16"` | float16 | float16 |
#
# Under the mixed policies **the variables stay float32**: each layer casts its weights to 16
# bits for the computation, and the optimiser updates the float32 variables (a small update
# added to a 16-bit weight would often be rounded away). Mixed precision saves time and the
# memory of the activations, not the memory of the weights. A float32 number takes 32 bits,
# a bfloat16 or float16 number 16 bits.
#
# Write `embedding_memory(n_items, d_model, policy)` that returns the tuple
# `(table_bytes, training_bytes)`: the bytes of the table's variable under `policy` (one of
# the five above), and the bytes of the table together with Adam's two slots. Leave out the
# gradient (for an embedding it holds only the rows of a batch) and the activations.

# %%
def embedding_memory(n_items: int, d_model: int, policy: str) -> tuple[int, int]:
    # BEGIN SOLUTION q2
    bits = 16 if policy in ("bfloat16", "float16") else 32  # mixed_*: float32 variables
    table = (n_items + 1) * d_model * bits // 8  # row 0 is the padding; 8 bits a byte
    return table, 3 * table  # and Adam's m and v, each like the variable
    # END SOLUTION


q2.check(embedding_memory)

# %% [markdown]
# A catalogue of 10 million items with `d_model=256`: does the table, with Adam's slots, fit
# in the 16 GB of memory of a GPU? Would `"mixed_bfloat16"` change the answer? Name two
# things that would.

# %% [solution-only]
for policy in ("float32", "mixed_bfloat16", "bfloat16"):
    table, training = embedding_memory(10_000_000, 256, policy)
    print(f"{policy:>14}: table {table / 1e9:5.2f} GB, with Adam {training / 1e9:5.2f} GB")

# %% [markdown]
# ## Question 3: padding waste, and what bucketing saves
# The course's sequential models read windows of at most `max_len` items of a history,
# left-padded with 0 up to `max_len`, so that every batch has the shape (batch, max_len). Most
# users' windows are short, so many positions hold padding, and the model computes them all
# the same: the mask hides them from the softmax, but their scores, their feed-forward layers
# and their memory are spent. **Bucketing** groups the windows by length: with the boundaries
# `[10, 20, 50]`, a window of 1 to 10 items goes to the first bucket and is padded to 10, one
# of 11 to 20 items is padded to 20, one of 21 to 50 items to 50; each batch is drawn from one
# bucket, so the model sees only a few shapes. (`tf.data.Dataset.bucket_by_sequence_length`
# builds such batches in an input pipeline; it writes its boundaries differently, so read its
# documentation before you use it.)
#
# Write `padding_waste(lengths, max_len, boundaries)`. `lengths` is a 1-D NumPy array of
# window lengths, each between 1 and `max_len`; `boundaries` is an increasing list of ints
# whose last element is `max_len`, and a window goes to the first boundary that is at least
# its length. Return the tuple `(waste_plain, waste_bucketed, attention_ratio)`:
#
# * `waste_plain`: the fraction of all the positions that hold padding when every window is
#   padded to `max_len`;
# * `waste_bucketed`: the same fraction when each window is padded to its bucket's boundary
#   (a fraction of the positions that the bucketed windows hold);
# * `attention_ratio`: self-attention computes a T × T matrix of scores for a window padded to
#   length T, so its cost is proportional to T². Return the cost with bucketing divided by
#   the cost with plain padding: the sum of the squared padded lengths, divided by
#   `len(lengths) * max_len ** 2`.
#
# Do not change the caller's array.

# %%
def padding_waste(lengths: np.ndarray, max_len: int,
                  boundaries: list[int]) -> tuple[float, float, float]:
    # BEGIN SOLUTION q3
    lengths = np.asarray(lengths)
    bounds = np.asarray(boundaries)
    padded = bounds[np.searchsorted(bounds, lengths)]  # the first boundary >= each length
    real = lengths.sum()  # positions that hold an item, whichever way they are padded
    waste_plain = 1 - real / (len(lengths) * max_len)
    waste_bucketed = 1 - real / padded.sum()
    attention_ratio = (padded.astype(float) ** 2).sum() / (len(lengths) * max_len**2)
    return float(waste_plain), float(waste_bucketed), float(attention_ratio)
    # END SOLUTION


q3.check(padding_waste)

# %% [solution-only]
rng = np.random.default_rng(0)
lengths = np.minimum(rng.geometric(1 / 40, size=10_000), 200)  # many short windows
plain, bucketed, attention = padding_waste(lengths, 200, [25, 50, 100, 200])
print(f"padding: {plain:.0%} of the positions, {bucketed:.0%} with bucketing; "
      f"attention costs {attention:.0%} of what plain padding costs")

# %% [markdown]
# Bucketing puts short windows together and long windows together. Why should the batches
# still be shuffled across the buckets during an epoch? And why does a compiled model (XLA, a
# `tf.function`) prefer a few fixed boundaries to padding each batch to its own longest
# window?

# %% [markdown]
# ## Question 4: read a scaling curve
# A scaling curve shows a model's quality against its size (its parameters) or against the
# size of its training data. Over a range of sizes it often follows a **power law**,
# value ≈ a × size^b, which is a straight line on log-log axes:
# $\log(\text{value}) = \log a + b \log(\text{size})$. The exponent $b$ says how fast the
# quality moves: doubling the size multiplies the value by $2^b$ ($b < 0$ for a loss, $b > 0$
# for an NDCG).
#
# Write `fit_power_law(sizes, values, new_size)` that fits the power law by least squares in
# log-log space, with `np.polyfit` of degree 1 on natural logarithms (`np.log`), and returns
# the tuple `(exponent, prediction)`: $b$, and the value the fitted law predicts at
# `new_size`. `sizes` and `values` are NumPy arrays of positive numbers; do not change them.
#
# What a few points measured on a small dataset cannot show is where the curve bends. A power
# law grows (or falls) for ever; real curves **saturate**: a loss cannot fall below the noise
# in the data, an NDCG cannot pass 1, and long before that it levels off once the model has
# learnt what the data can teach. Nothing in the first points says where the bend comes, so a
# fitted power law describes the range that was measured, and a prediction far beyond it is a
# guess.

# %%
def fit_power_law(sizes: np.ndarray, values: np.ndarray,
                  new_size: float) -> tuple[float, float]:
    # BEGIN SOLUTION q4
    b, c = np.polyfit(np.log(sizes), np.log(values), 1)  # log(value) = c + b log(size)
    prediction = np.exp(c + b * np.log(new_size))  # = e^c * new_size ** b
    return float(b), float(prediction)
    # END SOLUTION


q4.check(fit_power_law)

# %% [markdown]
# `SCALING_RUNS` holds the NDCG@10 of one model trained on samples of 12,500 to 1.6 million
# interactions (simulated numbers shaped like such an experiment):

# %%
SCALING_RUNS

# %% [markdown]
# Fit your power law to the first four rows only, as a team with a small dataset would, and
# predict the NDCG@10 at 1.6 million interactions: how far is it from the measured value? Then
# fit all eight rows: what happens to the exponent, and what does that tell you about the
# curve?

# %% [solution-only]
x, y = SCALING_RUNS["interactions"].to_numpy(), SCALING_RUNS["ndcg"].to_numpy()
b_small, predicted = fit_power_law(x[:4], y[:4], x[-1])
b_all, _ = fit_power_law(x, y, x[-1])
print(f"first four rows: exponent {b_small:.3f}, predicted NDCG@10 at {x[-1]:,} "
      f"interactions {predicted:.3f} (measured {y[-1]:.3f}); all eight rows: exponent "
      f"{b_all:.3f}")

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
