# %% [markdown]
# # Exercises · 03 Neighbourhood collaborative filtering
#
# Four questions that rebuild, by hand, the pieces of a neighbourhood recommender from notebook 03:
# two similarity measures, a rating prediction from the nearest neighbours, and the neighbours of
# an item. Each asks for a small function; the `check()` line under it runs your function on
# small hand-made examples and says what is wrong, if anything. Stuck? Use `hint()`, then
# `solution()`. The last cell prints your progress.
#
# Ratings are NumPy arrays with `np.nan` for "not rated". The six users and films of the notebook
# are below, if you want to try your functions on them.

# %%
import numpy as np

from recsys_lib.exercises.ex03 import *  # noqa: F403  (q1, q2, ..., summary)

nan = np.nan
films = ["Alien", "Die Hard", "Notting Hill", "Toy Story", "Titanic", "The Matrix"]
R_tiny = np.array([  # (6 users, 6 films): Ann, Bob, Cara, Dev, Eve, Finn
    [5, 4, nan, 2, nan, 5],
    [5, 5, 2, nan, 5, 4],
    [1, nan, 5, 4, 3, 1],
    [nan, 2, 4, 5, 2, nan],
    [4, 5, 1, 2, nan, 4],
    [nan, nan, 3, 1, 4, 5],
])

# %% [markdown]
# ## Question 1: cosine similarity of two users
# Write `cosine_users(a, b)` for two users' rating vectors over the same films (`np.nan` where a
# user has not rated a film). Use eq. (1) of the notebook: a missing rating counts as 0, so the
# dot product only sees the films both rated, while each norm runs over all the films that user
# rated. A user with no ratings at all has no direction: return `0.0` then.
#
# $$\cos(u, v) = \frac{\sum_i r_{ui}\, r_{vi}}{\sqrt{\sum_i r_{ui}^2}\,\sqrt{\sum_i r_{vi}^2}}$$

# %%
def cosine_users(a: np.ndarray, b: np.ndarray) -> float:
    # BEGIN SOLUTION q1
    a, b = np.nan_to_num(a), np.nan_to_num(b)  # missing -> 0
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norms) if norms > 0 else 0.0
    # END SOLUTION


q1.check(cosine_users)

# %% [markdown]
# ## Question 2: Pearson correlation on co-rated films
# Write `pearson_corated(a, b)`: the Pearson correlation of eq. (2), computed **only on the films
# both users rated**, with each user's mean taken over those shared films. Return `0.0` when it
# is undefined: fewer than 2 shared films, or a user who gave the same rating to all of them.

# %%
def pearson_corated(a: np.ndarray, b: np.ndarray) -> float:
    # BEGIN SOLUTION q2
    both = ~np.isnan(a) & ~np.isnan(b)  # the co-rated films
    if both.sum() < 2:
        return 0.0
    da, db = a[both] - a[both].mean(), b[both] - b[both].mean()
    ss_a, ss_b = (da**2).sum(), (db**2).sum()
    if ss_a == 0 or ss_b == 0:
        return 0.0
    return float(da @ db / np.sqrt(ss_a * ss_b))
    # END SOLUTION


q2.check(pearson_corated)

# %% [markdown]
# ## Question 3: predict a rating from the k nearest neighbours
# Write `predict_rating(R, sim, u, i, k)` with eq. (8) of the notebook. `R` is a
# `(n_users, n_items)` array of ratings (`np.nan` = not rated), `sim` a `(n_users, n_users)`
# similarity matrix, `u` a user and `i` an item that `u` has not rated.
#
# * The neighbours are the users $v \ne u$ who **rated item $i$** and have **positive**
#   similarity `sim[u, v]`; keep the `k` most similar of them.
# * $\bar r_v$ is user $v$'s mean over all the films they rated.
# * $\hat r_{ui} = \bar r_u + \sum_v s_{uv}(r_{vi} - \bar r_v) / \sum_v |s_{uv}|$ over those
#   neighbours; with no neighbour, return $\bar r_u$. Do not clip the result.

# %%
def predict_rating(R: np.ndarray, sim: np.ndarray, u: int, i: int, k: int) -> float:
    # BEGIN SOLUTION q3
    means = np.nanmean(R, axis=1)  # (n_users,) each user's mean rating
    raters = np.flatnonzero(~np.isnan(R[:, i]) & (sim[u] > 0))
    raters = raters[raters != u]
    if len(raters) == 0:
        return float(means[u])
    nearest = raters[np.argsort(-sim[u, raters], kind="stable")[:k]]
    weights = sim[u, nearest]
    deviations = R[nearest, i] - means[nearest]
    return float(means[u] + weights @ deviations / np.abs(weights).sum())
    # END SOLUTION


q3.check(predict_rating)

# %% [markdown]
# ## Question 4: the top-k neighbours of an item
# Item-based kNN keeps, for every item, its `k` most similar items. Write
# `top_neighbours(sim, i, k)` that returns the indices of the `k` items most similar to item `i`
# in the `(n_items, n_items)` similarity array `sim`, most similar first. Item `i` itself is not
# its own neighbour, even if `sim[i, i]` is the largest value of the row. When two items have the
# same similarity, the smaller index comes first. (For a SciPy sparse matrix such as the one
# `cosine_similarity` returns, `sim[i].toarray().ravel()` gives the row.)

# %%
def top_neighbours(sim: np.ndarray, i: int, k: int) -> np.ndarray:
    # BEGIN SOLUTION q4
    row = np.array(sim[i], dtype=float)  # a copy: do not change sim
    row[i] = -np.inf  # never pick the item itself
    return np.argsort(-row, kind="stable")[:k]
    # END SOLUTION


q4.check(top_neighbours)

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
