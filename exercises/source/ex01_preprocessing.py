# %% [markdown]
# # Exercises · 01 Preprocessing and honest splits
#
# Four questions that rebuild, by hand, the preprocessing steps of notebook 01. Each asks for a
# small function; the `check()` line under it runs your function on tricky little tables and
# says what is wrong, if anything. Stuck? Use `hint()`, then `solution()`. The last cell prints
# your progress.

# %%
import numpy as np
import pandas as pd

from recsys_lib.data import load_movielens
from recsys_lib.exercises.ex01 import *  # noqa: F403  (q1, q2, ..., summary)

ratings, items = load_movielens("bundled")

# %% [markdown]
# ## Question 1: mean-centring per user
# Some users rate everything 4 or 5, others rarely give more than 3. Write
# `user_mean_center(ratings)` that returns a pandas Series with, for each row, the rating minus
# that user's mean rating. Keep the index of `ratings`.

# %%
def user_mean_center(ratings: pd.DataFrame) -> pd.Series:
    # BEGIN SOLUTION q1
    return ratings["rating"] - ratings.groupby("user_id")["rating"].transform("mean")
    # END SOLUTION


q1.check(user_mean_center)

# %% [markdown]
# ## Question 2: k-core filtering
# Write `k_core_filter(ratings, k)` that keeps only the rows of users **and** items that have at
# least `k` ratings in the result. Careful: removing rare items can leave a user with fewer than
# `k` ratings, and so on.

# %%
def k_core_filter(ratings: pd.DataFrame, k: int) -> pd.DataFrame:
    # BEGIN SOLUTION q2
    while True:
        user_counts = ratings.groupby("user_id")["user_id"].transform("size")
        item_counts = ratings.groupby("item_id")["item_id"].transform("size")
        keep = (user_counts >= k) & (item_counts >= k)
        if keep.all():
            return ratings
        ratings = ratings[keep]
    # END SOLUTION


q2.check(k_core_filter)

# %% [markdown]
# ## Question 3: leave-last-out
# Write `last_item_split(ratings)` that returns `(train, test)`: for each user with at least two
# ratings, their last rating by time goes to `test`, everything else to `train`. When two ratings
# of a user have the same timestamp, the one that comes later in the table counts as later. Users
# with a single rating stay in `train`. Keep the original index.

# %%
def last_item_split(ratings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    # BEGIN SOLUTION q3
    ordered = ratings.sort_values("timestamp", kind="stable")
    ordered = ordered.sort_values("user_id", kind="stable")
    is_last = ~ordered.duplicated("user_id", keep="last")
    has_two = ordered.groupby("user_id")["user_id"].transform("size") >= 2
    test = ordered[is_last & has_two]
    train = ordered.drop(index=test.index)
    return train, test
    # END SOLUTION


q3.check(last_item_split)

# %% [markdown]
# ## Question 4: spot a leak
# Write `is_leaky(train, test)` that returns `True` when some user has a training rating made
# strictly **after** one of their own test ratings (the model would learn from that user's
# future), and `False` otherwise.

# %%
def is_leaky(train: pd.DataFrame, test: pd.DataFrame) -> bool:
    # BEGIN SOLUTION q4
    last_train = train.groupby("user_id")["timestamp"].max()
    first_test = test.groupby("user_id")["timestamp"].min()
    both = pd.concat([last_train, first_test], axis=1, keys=["train", "test"]).dropna()
    return bool((both["train"] > both["test"]).any())
    # END SOLUTION


q4.check(is_leaky)

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
