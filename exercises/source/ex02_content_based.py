# %% [markdown]
# # Exercises · 02 Content-based filtering
#
# Four questions that rebuild, by hand, the pieces of a content-based recommender from notebook
# 02: the idf weight, the cosine similarity, a user's profile and the "because you liked" reason.
# Each asks for a small function; the `check()` line under it runs your function on tiny
# hand-made inputs and says what is wrong, if anything. Stuck? Use `hint()`, then `solution()`.
# The last cell prints your progress.

# %%
import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_lib.exercises.ex02 import *  # noqa: F403  (q1, q2, ..., summary)

# %% [markdown]
# ## Question 1: the smoothed idf
# Write `smoothed_idf(documents)` that takes a list of documents, each a list of tokens, and
# returns a dict `{term: idf}` with one entry per distinct term, using eq. (2) of the notebook:
#
# $$\mathrm{idf}(t) = \ln \frac{1 + N}{1 + \mathrm{df}(t)} + 1$$
#
# where $N$ is the number of documents and $\mathrm{df}(t)$ the number of documents that contain
# $t$. Careful: a term that occurs twice in one document is still in only one document.

# %%
def smoothed_idf(documents: list[list[str]]) -> dict[str, float]:
    # BEGIN SOLUTION q1
    n = len(documents)
    df: dict[str, int] = {}
    for doc in documents:
        for term in set(doc):
            df[term] = df.get(term, 0) + 1
    return {term: float(np.log((1 + n) / (1 + count)) + 1) for term, count in df.items()}
    # END SOLUTION


q1.check(smoothed_idf)

# %% [markdown]
# ## Question 2: cosine similarity
# Write `cosine_similarity(a, b)` that returns the cosine of the angle between two vectors,
# eq. (4), as a float. It must work for 1-D NumPy arrays **and** for 1 x n `scipy.sparse` rows
# (a row of a TF-IDF matrix, e.g. `X[3]`). When either vector is all zeros, return `0.0`: such a
# film has nothing in common with anything (and 0 / 0 would give `nan`).

# %%
def cosine_similarity(a, b) -> float:
    # BEGIN SOLUTION q2
    a = a.toarray().ravel() if sp.issparse(a) else np.asarray(a, dtype=float)
    b = b.toarray().ravel() if sp.issparse(b) else np.asarray(b, dtype=float)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norms) if norms > 0 else 0.0
    # END SOLUTION


q2.check(cosine_similarity)

# %% [markdown]
# ## Question 3: a rating-weighted user profile
# Write `user_profile(item_profiles, ratings)` that builds one user's profile, eq. (5) with
# mean-centred weights:
#
# $$p_u = \sum_{i \in I_u} (r_{ui} - \bar r_u)\, x_i$$
#
# * `item_profiles` is a DataFrame with one row per film (index: `item_id`) and one column per
#   term, as from `tfidf_matrix`;
# * `ratings` is a DataFrame with the columns `item_id` and `rating` of the films this user
#   rated, **not** in the order of `item_profiles`.
#
# Return a pandas Series indexed by the terms (the columns of `item_profiles`).

# %%
def user_profile(item_profiles: pd.DataFrame, ratings: pd.DataFrame) -> pd.Series:
    # BEGIN SOLUTION q3
    weights = ratings["rating"].to_numpy() - ratings["rating"].mean()  # (n_rated,)
    rows = item_profiles.loc[ratings["item_id"]].to_numpy()  # (n_rated, n_terms)
    return pd.Series(weights @ rows, index=item_profiles.columns)
    # END SOLUTION


q3.check(user_profile)

# %% [markdown]
# ## Question 4: "because you liked X"
# The library's `explain` picks the reason among *all* the films a user rated, so it can say
# "because you liked X" about a film the user rated badly. Write
# `because_you_liked(item_profiles, ratings, item_id)` that returns the `item_id` of the film,
# among those the user rated **above their own mean rating**, whose profile has the largest
# cosine with the profile of the recommended film `item_id`. The rows of `item_profiles` are unit
# vectors (so the cosine is a dot product); `ratings` has the columns `item_id` and `rating` of
# this user's films.

# %%
def because_you_liked(item_profiles: pd.DataFrame, ratings: pd.DataFrame, item_id: int) -> int:
    # BEGIN SOLUTION q4
    liked = ratings.loc[ratings["rating"] > ratings["rating"].mean(), "item_id"]
    sims = item_profiles.loc[liked].to_numpy() @ item_profiles.loc[item_id].to_numpy()
    return int(liked.to_numpy()[np.argmax(sims)])
    # END SOLUTION


q4.check(because_you_liked)

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
