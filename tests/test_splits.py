"""Splits: no leakage, every interaction in exactly one part, reproducible, clear errors."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_lib.data import load_movielens
from recsys_lib.splits import leave_last_out, order_by_user_time, random_split, temporal_split


def ratings_tables(max_rows: int = 60):
    """Random small ratings tables with repeated timestamps (ties) and short users."""
    row = st.tuples(st.integers(1, 6), st.integers(1, 8), st.integers(0, 12))
    return st.lists(row, min_size=1, max_size=max_rows).map(
        lambda rows: pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(
            rating=4.0
        )
    )


def assert_partition(split, ratings):
    parts = [split.train, split.val, split.test, split.dropped]
    indices = np.concatenate([p.index.to_numpy() for p in parts])
    assert len(indices) == len(set(indices)), "an interaction landed in two parts"
    assert set(indices) == set(ratings.index), "an interaction was lost"
    for part in parts:  # rows are unchanged copies of the input rows
        pd.testing.assert_frame_equal(part, ratings.loc[part.index])


@settings(max_examples=150, deadline=None)
@given(ratings_tables(), st.booleans(), st.sampled_from(["train", "drop"]))
def test_leave_last_out_partitions_and_does_not_leak(ratings, validation, policy):
    split = leave_last_out(ratings, validation=validation, short_users=policy)
    assert_partition(split, ratings)
    need = 3 if validation else 2
    counts = ratings.groupby("user_id").size()
    long_users = set(counts[counts >= need].index)
    assert set(split.test["user_id"]) == long_users
    assert split.test["user_id"].is_unique
    if validation:
        assert set(split.val["user_id"]) == long_users and split.val["user_id"].is_unique
    else:
        assert split.val.empty
    # per user, nothing in train is later than val, nothing in val later than test
    for user, test_row in split.test.groupby("user_id"):
        t_test = test_row["timestamp"].iloc[0]
        assert (split.train.loc[split.train.user_id == user, "timestamp"] <= t_test).all()
        assert (split.val.loc[split.val.user_id == user, "timestamp"] <= t_test).all()
    short = set(counts[counts < need].index)
    assert split.notes["short_users"] == len(short)
    where_short = split.dropped if policy == "drop" else split.train
    assert short <= set(where_short["user_id"])


@settings(max_examples=150, deadline=None)
@given(ratings_tables(), st.floats(0.05, 0.5), st.floats(0.0, 0.4))
def test_temporal_split_has_one_global_cutoff(ratings, test_frac, val_frac):
    if test_frac + val_frac >= 1:
        return
    split = temporal_split(ratings, test_frac=test_frac, val_frac=val_frac)
    assert_partition(split, ratings)
    cut_val, cut_test = split.notes["val_start"], split.notes["test_start"]
    assert (split.train["timestamp"] < cut_val).all()
    assert ((split.val["timestamp"] >= cut_val) & (split.val["timestamp"] < cut_test)).all()
    assert (split.test["timestamp"] >= cut_test).all()
    if len(split.train) and len(split.test):
        assert split.train["timestamp"].max() < split.test["timestamp"].min()


@settings(max_examples=100, deadline=None)
@given(ratings_tables(), st.floats(0.0, 0.6), st.floats(0.0, 0.3), st.integers(0, 10))
def test_random_split_partitions_and_is_reproducible(ratings, test_frac, val_frac, seed):
    if test_frac + val_frac >= 1:
        return
    split = random_split(ratings, test_frac=test_frac, val_frac=val_frac, seed=seed)
    assert_partition(split, ratings)
    assert len(split.test) == round(len(ratings) * test_frac)
    again = random_split(ratings, test_frac=test_frac, val_frac=val_frac, seed=seed)
    for a, b in ((split.train, again.train), (split.val, again.val), (split.test, again.test)):
        pd.testing.assert_frame_equal(a, b)


def test_random_split_depends_on_seed():
    ratings = load_movielens().ratings
    a = random_split(ratings, seed=1).test.index
    b = random_split(ratings, seed=2).test.index
    assert not a.equals(b)


def test_leave_last_out_ties_keep_file_order():
    ratings = pd.DataFrame({"user_id": [1, 1, 1, 1], "item_id": [10, 11, 12, 13],
                            "timestamp": [5, 7, 7, 7], "rating": 4.0})
    split = leave_last_out(ratings)
    assert split.test.index.tolist() == [3]  # last row among the tied timestamps
    assert split.val.index.tolist() == [2]
    assert split.train.index.tolist() == [0, 1]
    # shuffling rows with different timestamps changes nothing; tied rows follow file order
    shuffled = ratings.loc[[2, 0, 3, 1]]
    assert leave_last_out(shuffled).test.index.tolist() == [1]


def test_order_by_user_time_is_stable():
    ratings = pd.DataFrame({"user_id": [2, 1, 2, 1], "timestamp": [1, 1, 1, 0]})
    assert order_by_user_time(ratings).index.tolist() == [3, 1, 0, 2]


def test_leave_last_out_on_bundled_data():
    ratings = load_movielens().ratings
    split = leave_last_out(ratings)
    assert len(split.test) == len(split.val) == ratings["user_id"].nunique() == 671
    assert len(split.train) + len(split.val) + len(split.test) == len(ratings)
    summary = split.summary()
    assert summary.loc["test", "rows"] == 671 and summary.loc["dropped", "rows"] == 0


def test_short_users_error_policy_names_a_user():
    ratings = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [1, 2, 3, 1],
                            "timestamp": [1, 2, 3, 4], "rating": 3.0})
    with pytest.raises(ValueError, match="fewer than 3 interactions, e.g. user 2"):
        leave_last_out(ratings, short_users="error")
    with pytest.raises(ValueError, match="short_users must be one of"):
        leave_last_out(ratings, short_users="ignore")


@pytest.mark.parametrize("split_fn", [random_split, temporal_split, leave_last_out])
def test_bad_input_gets_clear_errors(split_fn):
    with pytest.raises(ValueError, match="empty"):
        split_fn(pd.DataFrame(columns=["user_id", "item_id", "timestamp"]))
    with pytest.raises(ValueError, match="missing column"):
        split_fn(pd.DataFrame({"user": [1], "item_id": [1], "timestamp": [1]}))
    with pytest.raises(ValueError, match="missing values"):
        split_fn(pd.DataFrame({"user_id": [1, None], "item_id": [1, 2], "timestamp": [1, 2]}))
    with pytest.raises(TypeError, match="DataFrame"):
        split_fn([(1, 2, 3)])


def test_fractions_are_validated():
    ratings = load_movielens().ratings.head(100)
    with pytest.raises(ValueError, match="test_frac"):
        random_split(ratings, test_frac=1.5)
    with pytest.raises(ValueError, match="< 1"):
        random_split(ratings, test_frac=0.6, val_frac=0.5)
    with pytest.raises(ValueError, match="must not be after"):
        temporal_split(ratings, test_start=10, val_start=20)


def test_temporal_split_reports_cold_start_users():
    ratings = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 2, 3],
                            "timestamp": [1, 5, 6], "rating": 3.0})
    split = temporal_split(ratings, test_start=5)
    assert split.notes["test_users_without_history"] == 1  # user 2 appears only in test
