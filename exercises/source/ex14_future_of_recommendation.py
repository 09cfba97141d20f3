# %% [markdown]
# # Exercises · 14 The future of recommendation, measured
#
# Six questions on the small computations behind notebook 14's topics: the semantic IDs of
# generative retrieval (residual quantisation), the clipping and noise of differentially
# private training (DP-SGD), explaining a recommendation by leaving history items out, the
# harm of a shilling attack measured where it matters, updating a user's recommendations the
# moment they click, and the server's step of federated averaging. Each asks for a small
# NumPy or pandas function; the `check()` line under it runs your function on hand-made and
# random inputs and says what is wrong, if anything. Nothing here needs TensorFlow or a GPU.
# Stuck? Use `hint()`, then `solution()`. The last cell prints your progress.

# %%
import numpy as np
import pandas as pd

from recsys_lib.exercises.ex14 import *  # noqa: F403  (q1, ..., q6, summary, TOY_TITLES, ...)

# %% [markdown]
# ## Question 1: semantic IDs by residual quantisation
# Generative retrieval gives every item a short sequence of tokens, its **semantic ID**, and
# trains a sequence model to *generate* the ID of the next item, token by token, instead of
# scoring every item of the catalogue. The IDs come from the items' content vectors (text
# embeddings, say) by **residual quantisation**: a list of codebooks $C^{(1)}, \dots,
# C^{(L)}$, each a $(K_\ell, d)$ array of centroids. Level 1 picks the centroid nearest to the
# vector $x$; level 2 quantises what level 1 missed, the *residual*; and so on:
#
# $$r^{(1)} = x, \qquad c_\ell = \arg\min_j \lVert r^{(\ell)} - C^{(\ell)}_j \rVert^2, \qquad
# r^{(\ell+1)} = r^{(\ell)} - C^{(\ell)}_{c_\ell} .$$
#
# The codes $(c_1, \dots, c_L)$ are the semantic ID, and the **reconstruction**
# $\hat x = \sum_\ell C^{(\ell)}_{c_\ell}$ is what the ID gives back; each level is a finer
# correction, so similar items share their first tokens. (Notebook 14 learns the codebooks by
# k-means on the residuals, `recsys_lib.semantic_ids.ResidualKMeans`.)
#
# Write `residual_quantise(vectors, codebooks)`: `vectors` is an $(n, d)$ array, `codebooks` a
# list of $(K_\ell, d)$ arrays (their sizes may differ). Return the tuple
# `(codes, reconstruction)`: an $(n, L)$ integer array (column $\ell$ holds the level-$\ell$
# codes) and the $(n, d)$ reconstructions. Do not change the caller's arrays.

# %%
def residual_quantise(vectors: np.ndarray,
                      codebooks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    # BEGIN SOLUTION q1
    residual = vectors.astype(float)  # a new array: the caller's vectors stay as they are
    codes = np.zeros((len(vectors), len(codebooks)), dtype=int)
    reconstruction = np.zeros_like(residual)
    for level, codebook in enumerate(codebooks):
        distances = ((residual[:, None, :] - codebook[None, :, :]) ** 2).sum(axis=2)
        codes[:, level] = distances.argmin(axis=1)  # the nearest centroid to the residual
        chosen = codebook[codes[:, level]]
        reconstruction = reconstruction + chosen
        residual = residual - chosen  # what the next level has to quantise
    return codes, reconstruction
    # END SOLUTION


q1.check(residual_quantise)

# %% [markdown]
# `ITEM_VECTORS` holds 300 item vectors and `CODEBOOKS` three codebooks of 8 centroids learnt
# on them. Quantise the vectors with 1, 2 and 3 levels (`CODEBOOKS[:levels]`) and compare the
# mean squared reconstruction error and the number of distinct IDs (the worked solutions
# notebook prints them).

# %% [solution-only]
for levels in (1, 2, 3):
    codes, reconstruction = residual_quantise(ITEM_VECTORS, CODEBOOKS[:levels])
    error = ((ITEM_VECTORS - reconstruction) ** 2).sum(axis=1).mean()
    distinct = len({tuple(c) for c in codes.tolist()})
    print(f"{levels} level(s): mean squared error {error:6.3f}, {distinct:3d} distinct IDs "
          f"for {len(codes)} items (at most {8 ** levels})")

# %% [markdown]
# Every added level lowers the reconstruction error and splits items that shared an ID, but
# with 8 centroids per level and 3 levels there are 512 possible IDs for 300 items, and some
# items still collide. What can a generative recommender do about two items with the same
# semantic ID (TIGER appends one more token)? Why does quantising the *residual*, rather than
# the vector again, make the second level useful?

# %% [markdown]
# ## Question 2: DP-SGD's clipping and noise
# A model trained on users' histories can remember them. **Differential privacy** bounds how
# much the trained model can depend on any one example: a training algorithm $M$ is
# $(\varepsilon, \delta)$-differentially private when, for any two datasets $D, D'$ that differ
# in one example and any set $S$ of outcomes,
# $P[M(D) \in S] \le e^{\varepsilon} P[M(D') \in S] + \delta$.
#
# **DP-SGD** (Abadi et al., 2016) makes each gradient step private. With the per-example
# gradients $g_1, \dots, g_n$ of a batch (one row each), a clipping norm $C$ and a noise
# multiplier $\sigma$:
#
# $$\bar g_i = g_i \cdot \min\!\Big(1, \frac{C}{\lVert g_i \rVert_2}\Big), \qquad
# \tilde g = \frac{1}{n}\Big(\sum_i \bar g_i + \mathcal N(0, \sigma^2 C^2 I)\Big).$$
#
# Clipping bounds the *sensitivity*: adding or removing one example changes the sum by at most
# $C$. The Gaussian noise, of standard deviation $\sigma C$ on each coordinate, hides a change
# of that size. (In training, $n$ is the *expected* batch size of Poisson sampling; here it is
# the number of rows.)
#
# Write `privatize(per_example_grads, clip, noise_multiplier, rng)`: `per_example_grads` is an
# $(n, p)$ array, `rng` a `np.random.Generator` to draw the noise from (one independent normal
# value per coordinate). Return $\tilde g$, a $(p,)$ array. Do not change the caller's array.

# %%
def privatize(per_example_grads: np.ndarray, clip: float, noise_multiplier: float,
              rng: np.random.Generator) -> np.ndarray:
    # BEGIN SOLUTION q2
    norms = np.linalg.norm(per_example_grads, axis=1)  # one L2 norm per example (row)
    factors = np.minimum(1.0, clip / np.maximum(norms, 1e-12))  # 1 for rows already short
    clipped = per_example_grads * factors[:, None]
    total = clipped.sum(axis=0)
    noise = rng.normal(0.0, noise_multiplier * clip, size=total.shape)  # on the sum
    return (total + noise) / len(per_example_grads)
    # END SOLUTION


q2.check(privatize)

# %% [markdown]
# The noise added to the sum does not depend on $n$, so its share of the mean gradient falls
# as the batch grows. Check it with your function: for batches of 16, 256 and 4096 gradients
# of 1,000 numbers (norms a little above 1, $C = 1$, $\sigma = 1$), compare the norm of the
# noise with the norm of the clipped mean gradient (the worked solutions notebook shows it).

# %% [solution-only]
rng = np.random.default_rng(0)
direction = rng.normal(size=1000)
for n in (16, 256, 4096):
    grads = (direction + rng.normal(scale=2.0, size=(n, 1000))) / 50  # a shared signal + noise
    signal = privatize(grads, 1.0, 0.0, rng)
    noisy = privatize(grads, 1.0, 1.0, rng)
    ratio = np.linalg.norm(noisy - signal) / np.linalg.norm(signal)
    print(f"batch of {n:5d}: ||noise|| / ||clipped mean gradient|| = {ratio:6.2f}")

# %% [markdown]
# A written question. A training run reports $\varepsilon = 2$ at $\delta = 10^{-5}$. What does
# this $\varepsilon$ bound, and for whom: for one *example* or for one *user* (what if a user
# has 50 training examples)? Name two things it does not promise: one about what the model
# can still reveal about a *group* of users, and one about the choices made by looking at the
# data (the catalogue, the hyperparameters) outside the training steps.

# %% [markdown]
# ## Question 3: leave-one-out attribution
# Why was an item recommended? **Leave-one-out** answers with a counterfactual: delete one item
# of the user's history, score again, and see how far the recommended *target* falls. Measured
# on the target's **rank** (1 = top), it is what the user sees. As in the course's evaluation,
# items in the history are already seen and never recommended, so the rank counts only the
# items outside the history:
#
# $$\text{rank}(h) = 1 + \big|\{\, j \notin h : s_j(h) > s_{\text{target}}(h) \,\}\big| ,$$
#
# where $s(h)$ are the scores for history $h$. Without item $h_i$, the history is
# $h_{-i}$ (the item is gone, so it is no longer seen and competes again), and the change is
# $\text{rank}(h_{-i}) - \text{rank}(h)$: positive when the target falls.
#
# Write `leave_one_out(score, history, target)`: `score` is a function that maps a history
# (a 1-D array of item indices) to a NumPy array of scores over all the items, `history` a 1-D
# array of distinct item indices, oldest first, and `target` an item index not in the history.
# Return the tuple `(rank, changes)`: the target's rank with the whole history, and an array
# with the change of rank for each history position. Do not change the caller's array.
#
# The check uses `toy_scores`, a bag-of-items model over the 8 films of `TOY_TITLES` (item
# $j$'s score is $\sum_{i \in h} W_{ij}$ with `TOY_WEIGHTS` as $W$), and random models like it.

# %%
def leave_one_out(score, history: np.ndarray, target: int) -> tuple[int, np.ndarray]:
    # BEGIN SOLUTION q3
    def rank(items: np.ndarray) -> int:
        scores = score(items)
        above = scores > scores[target]
        above[items] = False  # seen items are never recommended
        return 1 + int(above.sum())

    base = rank(history)
    changes = np.array([rank(np.delete(history, i)) - base for i in range(len(history))])
    return base, changes
    # END SOLUTION


q3.check(leave_one_out)

# %% [markdown]
# A user watched *Alien*, *Up* and *Finding Nemo*; the toy model ranks *Toy Story 2* third.
# Explain that rank two ways: by each item's share of the target's score (for this linear
# model, the score drop when the item is deleted, $W_{i,\text{target}}$, which is also what
# gradient × input gives) and by your leave-one-out rank changes. The worked solutions put
# both in one table.

# %% [solution-only]
history, target = np.array([3, 6, 2]), 1
rank, changes = leave_one_out(toy_scores, history, target)
print(f"{TOY_TITLES[target]} is ranked {rank} after {[TOY_TITLES[i] for i in history]}")
pd.DataFrame({"item": [TOY_TITLES[i] for i in history],
              "share of the score": TOY_WEIGHTS[history, target].round(2),
              "rank change without it": changes})

# %% [markdown]
# *Alien* adds nothing to *Toy Story 2*'s score, yet deleting it moves *Toy Story 2* up a
# place: why? Which explanation would a deletion curve (delete the items most-important-first,
# watch the target's rank) call faithful here? Attention weights are the same whatever the
# target: why does that make them a doubtful answer to "why *this* item"?

# %% [markdown]
# ## Question 4: a shilling attack, measured among the real users
# An attacker who wants an item recommended can create **fake profiles** (a *shilling* or
# *profile injection* attack): each one rates some random *filler* items and then the target,
# so the target looks like what people who watch anything go on to watch. The harm is the
# target's **exposure** among the *real* users: the share of them that see it in their top $k$,
#
# $$\text{exposure@}k = \frac{|\{u \in U_{\text{real}} : \text{target} \in \text{top}_k(u)\}|}
# {|U_{\text{real}}|} .$$
#
# The fake users see the target too, but they are the attacker's own: counting them inflates
# the number, the more so the larger the attack.
#
# Write two functions and check them together:
#
# * `exposure_among_real(recommendations, fake_users, item, k)`: `recommendations` maps each
#   user to a ranked list of items (best first), `fake_users` is a set of user ids (some may
#   have no recommendations). Return exposure@k of `item` among the real users: the users of
#   `recommendations` that are not in `fake_users`.
# * `fake_profiles(ratings, target_item, n_profiles, filler_size, rng)`: `ratings` has the
#   columns `user_id, item_id, rating, timestamp`. Return a new DataFrame with the same
#   columns and the fake rows only: `n_profiles` new users numbered from
#   `ratings["user_id"].max() + 1` on, each with `filler_size` different filler items drawn
#   uniformly with `rng` from the distinct items of `ratings` other than the target, then the
#   target. Every row has the highest rating of `ratings`; the timestamps come after the last
#   one of `ratings` and increase within a profile, so that the target comes last. Do not
#   change `ratings`.

# %%
def exposure_among_real(recommendations: dict, fake_users: set, item, k: int) -> float:
    # BEGIN SOLUTION q4
    real = [user for user in recommendations if user not in fake_users]
    hits = sum(item in list(recommendations[user])[:k] for user in real)
    return hits / len(real)
    # END SOLUTION


def fake_profiles(ratings: pd.DataFrame, target_item, n_profiles: int, filler_size: int,
                  rng: np.random.Generator) -> pd.DataFrame:
    # BEGIN SOLUTION q4
    items = ratings["item_id"].unique()
    others = items[items != target_item]  # distinct items: uniform, not by popularity
    first_user = ratings["user_id"].max() + 1
    start, top = ratings["timestamp"].max() + 1, ratings["rating"].max()
    rows = []
    for n in range(n_profiles):
        fillers = rng.choice(others, size=filler_size, replace=False)
        for position, item in enumerate([*fillers, target_item]):  # the target last
            rows.append((first_user + n, item, top, start + position))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    # END SOLUTION


q4.check((exposure_among_real, fake_profiles))

# %% [markdown]
# In notebook 14, profiles like these pushed an unpopular film into many real users' top 10.
# Why does an attack on a sequence model put the target *last* in each profile? The fillers are
# drawn uniformly here; a *bandwagon* attack uses the most popular items instead: which kind of
# model does that fool more easily, and which detection signals (burst of new accounts, many
# profiles with the same last item) does it leave?

# %% [markdown]
# ## Question 5: real-time updates for EASE
# EASE scores items for a user with one matrix product: with the user's history as a 0/1
# vector $x$ over the items and the learnt item-item weights $B$ (zero on the diagonal),
# $s = x B$, that is $s_j = \sum_i x_i B_{ij}$. When the user clicks item $m$, $x_m$ goes from
# 0 to 1, so
#
# $$s' = s + B_{m,:} ,$$
#
# one row of $B$, $O(n_{\text{items}})$ work, instead of recomputing $x B$ from the whole
# history. The recommendations refresh at once; only $B$ itself needs the nightly retraining.
#
# Write two functions and check them together:
#
# * `update_scores(scores, B, new_item)`: the user's scores after they add `new_item` (not
#   yet in their history). Return the new raw scores as a new array; do not change `scores`.
# * `top_k_fresh(scores, seen, k)`: the indices of the `k` highest-scoring items that are not
#   in `seen` (a list of item indices), best first; equal scores keep the lower index first
#   (`np.argsort(-scores, kind="stable")`). When fewer than `k` items are unseen, return all of
#   them. Do not change `scores`.

# %%
def update_scores(scores: np.ndarray, B: np.ndarray, new_item: int) -> np.ndarray:
    # BEGIN SOLUTION q5
    return scores + B[new_item]  # row new_item: x_new goes from 0 to 1 in x @ B
    # END SOLUTION


def top_k_fresh(scores: np.ndarray, seen, k: int) -> np.ndarray:
    # BEGIN SOLUTION q5
    order = np.argsort(-scores, kind="stable")  # best first, ties: lower index first
    return order[~np.isin(order, seen)][:k]
    # END SOLUTION


q5.check((update_scores, top_k_fresh))

# %% [markdown]
# To see it work, fit EASE (`ease_weights(X, l2)`, the closed form) on the bundled MovieLens
# ratings restricted to the 300 most-rated films, and follow one session: after each click,
# refresh the top 3 with one row of $B$ (the worked solutions notebook shows it).

# %% [solution-only]
from recsys_lib.data import load_movielens

ratings, movies = load_movielens("bundled")
popular = ratings["item_id"].value_counts().index[:300]
kept = ratings[ratings["item_id"].isin(popular)]
users = kept["user_id"].astype("category").cat.codes.to_numpy()
columns = pd.Index(popular)
X = np.zeros((users.max() + 1, len(columns)))
X[users, columns.get_indexer(kept["item_id"])] = 1.0
B = ease_weights(X, l2=200.0)
titles = movies.set_index("item_id")["title"]

scores, seen = np.zeros(len(columns)), []
for title in ("Toy Story (1995)", "Aladdin (1992)", "Terminator 2: Judgment Day (1991)"):
    item = columns.get_loc(titles.index[titles == title][0])
    scores, seen = update_scores(scores, B, item), seen + [item]
    top = [titles[columns[i]] for i in top_k_fresh(scores, seen, 3)]
    print(f"after {title}: {top}")
history = np.isin(np.arange(len(columns)), seen).astype(float)
print("same scores as the full recomputation x @ B:", np.allclose(scores, history @ B))

# %% [markdown]
# Which changes can be served in real time this way, and which need $B$ to be retrained: a
# user who clicks, a user who removes an item from their history, a new item added to the
# catalogue, a new user? What would you store per user so that a click costs one row of $B$?

# %% [markdown]
# ## Question 6: federated averaging
# In **federated learning** the data stays on the clients (phones, or groups of users): each
# round, clients start from the global weights, train on their own examples, and send back only
# their weights. The server's step, **federated averaging** (McMahan et al., 2017), weights
# each client $c$ by its number of examples $n_c$:
#
# $$w = \sum_c \frac{n_c}{\sum_{c'} n_{c'}} \, w_c ,$$
#
# layer by layer, so that the average is what one model trained on all the examples would
# roughly have moved to.
#
# Write `federated_average(client_weights, counts)`: `client_weights` has one entry per
# client, each a list of NumPy arrays (one per layer, as `model.get_weights()` gives them);
# `counts` the clients' numbers of examples. Return the averaged list of arrays, one per
# layer. Do not change the clients' arrays.

# %%
def federated_average(client_weights: list[list[np.ndarray]], counts) -> list[np.ndarray]:
    # BEGIN SOLUTION q6
    shares = np.asarray(counts, dtype=float) / np.sum(counts)  # they add up to 1
    pairs = list(zip(shares, client_weights, strict=True))
    return [sum(share * weights[layer] for share, weights in pairs)
            for layer in range(len(client_weights[0]))]
    # END SOLUTION


q6.check(federated_average)

# %% [markdown]
# Only weights leave the clients. Why is federated averaging still not differential privacy
# by itself (think of a client with a single user, or of the difference between two rounds'
# weights)? What would you add, on the clients and on the server, to make a round
# differentially private for each client?

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
