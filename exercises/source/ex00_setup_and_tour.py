# %% [markdown]
# # Exercises · 00 Setup and a tour of the data
#
# Four short questions on the bundled MovieLens data from notebook 00. Write your answer where
# the cell says so and run the cell: the `check()` line under it tells you whether the answer is
# right and, if not, what is wrong. Stuck? Each question has a `hint()` and a `solution()`.
# The last cell prints your progress.

# %%
import math

import numpy as np
import pandas as pd

from recsys_lib.data import load_movielens
from recsys_lib.exercises.ex00 import *  # noqa: F403  (q1, q2, ..., summary)

ratings, items = load_movielens("bundled")
ratings.head()

# %% [markdown]
# ## Question 1: how many users?
# Store in `n_users` the number of distinct users who rated at least one movie.

# %%
# BEGIN SOLUTION q1
n_users = ratings["user_id"].nunique()
# END SOLUTION
# BEGIN EXERCISE
# n_users = ...  # your answer
# END EXERCISE
q1.check(n_users)

# %% [markdown]
# ## Question 2: how full is the rating matrix?
# Think of the ratings as a matrix with one row per user and one column per *rated* movie.
# Store in `density` the fraction of its cells that hold a rating (a number between 0 and 1).

# %%
# BEGIN SOLUTION q2
density = len(ratings) / (ratings["user_id"].nunique() * ratings["item_id"].nunique())
# END SOLUTION
# BEGIN EXERCISE
# density = ...  # your answer
# END EXERCISE
q2.check(density)

# %% [markdown]
# ## Question 3: the most-rated movies
# Write `top_items(ratings, n)` that returns a list of the `n` item ids with the most ratings,
# most-rated first. When two items have the same number of ratings, the smaller item id comes
# first.

# %%
def top_items(ratings: pd.DataFrame, n: int) -> list:
    # BEGIN SOLUTION q3
    counts = ratings.groupby("item_id").size().reset_index(name="count")
    counts = counts.sort_values(["count", "item_id"], ascending=[False, True])
    return counts["item_id"].head(n).tolist()
    # END SOLUTION


q3.check(top_items)

# %% [markdown]
# ## Question 4: the long tail
# What share of all ratings goes to the 10% most-rated movies? Count the ratings of each rated
# movie, sort the counts from high to low, keep the first `math.ceil(0.1 * number_of_rated_items)`
# and divide their ratings by all ratings. Store the fraction in `top10_share`.

# %%
# BEGIN SOLUTION q4
counts = ratings.groupby("item_id").size().sort_values(ascending=False)
top10_share = counts.head(math.ceil(0.1 * len(counts))).sum() / counts.sum()
# END SOLUTION
# BEGIN EXERCISE
# top10_share = ...  # your answer
# END EXERCISE
q4.check(top10_share)

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
