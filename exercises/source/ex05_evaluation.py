# %% [markdown]
# # Exercises · 05 Evaluating recommenders honestly
#
# Four questions that rebuild, by hand, the measurements of notebook 05: NDCG@k of one ranked
# list, precision and recall at k, the rank of a held-out item among sampled negatives, and a
# hit rate with and without the items a user has already seen. Each asks for a small function;
# the `check()` line under it runs your function on small hand-made examples and compares it with
# the course library, and says what is wrong, if anything. Stuck? Use `hint()`, then
# `solution()`. The last cell prints your progress.
#
# Conventions (as in the notebook and `recsys_lib.metrics`): relevance is binary, ranks start at
# 1, and a list shorter than `k` counts its empty places as misses.

# %%
import numpy as np

from recsys_lib.exercises.ex05 import *  # noqa: F403  (q1, q2, ..., summary)

# %% [markdown]
# ## Question 1: NDCG@k of one ranked list
# Write `ndcg_at_k(ranked, relevant, k)` for one user: `ranked` is a list of items, best first,
# and `relevant` a set of items. With binary relevance and 1-based ranks $r$,
#
# $$\mathrm{DCG@}k = \sum_{r=1}^{k} \frac{\mathrm{rel}(r)}{\log_2(r+1)}, \qquad
# \mathrm{NDCG@}k = \frac{\mathrm{DCG@}k}{\mathrm{IDCG@}k}, \qquad
# \mathrm{IDCG@}k = \sum_{r=1}^{\min(|\mathrm{relevant}|,\,k)} \frac{1}{\log_2(r+1)}$$
#
# where $\mathrm{rel}(r) = 1$ when the item at rank $r$ is relevant. The ideal list puts as many
# relevant items as fit at the top. You may assume `relevant` is not empty.

# %%
def ndcg_at_k(ranked: list, relevant: set, k: int) -> float:
    # BEGIN SOLUTION q1
    dcg = sum(1.0 / np.log2(rank + 1)
              for rank, item in enumerate(ranked[:k], start=1) if item in relevant)
    ideal = sum(1.0 / np.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return float(dcg / ideal)
    # END SOLUTION


q1.check(ndcg_at_k)

# %% [markdown]
# ## Question 2: precision and recall at k
# Write `precision_recall_at_k(ranked, relevant, k)` that returns the tuple
# `(precision, recall)`: the hits are the relevant items among the first `k` of `ranked`;
# precision@k divides them by `k` (even when the list is shorter), recall@k by the number of
# relevant items. In the notebook's leave-last-out test each user has one relevant item: which
# of the two is then the hit rate, and what is the other one?

# %%
def precision_recall_at_k(ranked: list, relevant: set, k: int) -> tuple[float, float]:
    # BEGIN SOLUTION q2
    hits = len(set(ranked[:k]) & set(relevant))
    return hits / k, hits / len(relevant)
    # END SOLUTION


q2.check(precision_recall_at_k)

# %% [markdown]
# With one relevant item, recall@k is the hit rate (0 or 1 per user) and precision@k is the hit
# rate divided by k: it can never exceed 1/k, which says more about the test set than about the
# model.
#
# ## Question 3: the rank of a held-out item among sampled negatives
# The sampled protocol ranks a user's held-out item against a few random items instead of the
# whole catalogue. Write `sampled_rank(scores, target, negatives)`: `scores` holds one user's
# scores for every item (an array indexed by item), `target` is the index of the held-out item,
# and `negatives` an array of sampled item indices. Return the 1-based rank of the target among
# itself and the negatives. Ties: a negative with the **same** score ranks above the target when
# its index is lower (the tie rule of `recsys_lib.metrics.rank_of_item` and of the library's
# top-k lists).

# %%
def sampled_rank(scores: np.ndarray, target: int, negatives: np.ndarray) -> int:
    # BEGIN SOLUTION q3
    own, other = scores[target], scores[negatives]
    above = (other > own) | ((other == own) & (negatives < target))
    return int(above.sum()) + 1
    # END SOLUTION


q3.check(sampled_rank)

# %% [markdown]
# ## Question 4: why the seen items are excluded
# Write `hit_rate(scores, seen, held_out, k, exclude_seen)`: `scores` is a `(n_users, n_items)`
# array, `seen` a boolean array of the same shape (True where the user interacted with the item
# in training), `held_out` the index of each user's held-out item (`(n_users,)`, never a seen
# item). Rank each user's items by score; when `exclude_seen` is True, the seen items must not
# take places in the top `k` at all. Return HR@k: the share of users whose held-out item is in
# their top `k`. (The test scores have no ties, so any sort order works.)

# %%
def hit_rate(scores: np.ndarray, seen: np.ndarray, held_out: np.ndarray, k: int,
             exclude_seen: bool = True) -> float:
    # BEGIN SOLUTION q4
    scores = np.array(scores, dtype=float)  # a copy: do not change the caller's array
    if exclude_seen:
        scores[seen] = -np.inf  # below every real score
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (n_users, k)
    return float(np.mean([held_out[u] in top[u] for u in range(len(scores))]))
    # END SOLUTION


q4.check(hit_rate)

# %% [markdown]
# Once `q4` is correct, the next cell runs your function on the bundled MovieLens data: the
# popularity recommender of the notebook, the leave-last-out split, each user's last film held
# out. Without the exclusion, the films the user has already watched take most of the top 10,
# and they can never be the next film. How much does the hit rate change?

# %%
if q4.status == "correct":
    from recsys_lib.data import load_movielens
    from recsys_lib.models import PopularityRecommender
    from recsys_lib.splits import leave_last_out

    ratings, _ = load_movielens("bundled")
    split = leave_last_out(ratings, validation=False)
    model = PopularityRecommender().fit(split.train)
    test = split.test[split.test["item_id"].isin(model.items_.ids_)]  # items the model knows
    scores = model.score(test["user_id"])  # (users, items)
    seen = model.matrix_[model.users_.transform(test["user_id"])].toarray() > 0
    held_out = model.items_.transform(test["item_id"])
    with_exclusion = hit_rate(scores, seen, held_out, 10, exclude_seen=True)
    without = hit_rate(scores, seen, held_out, 10, exclude_seen=False)
    print(f"HR@10 with the seen items excluded: {with_exclusion:.4f}; "
          f"without: {without:.4f} ({len(test)} users)")
else:
    print("Answer question 4 first.")

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
