"""Splits: no leakage, every interaction in exactly one part, reproducible, clear errors."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_lib.data import load_movielens
from recsys_lib.splits import leave_last_out, order_by_user_time, random_split, temporal_split


def ratings_tables(max_rows: int = 60, unique_pairs: bool = False):
    """Random small ratings tables with repeated timestamps (ties) and short users.

    ``unique_pairs`` keeps the first row of each (user, item) pair, as leave_last_out needs.
    """
    row = st.tuples(st.integers(1, 6), st.integers(1, 8), st.integers(0, 12))
    tables = st.lists(row, min_size=1, max_size=max_rows).map(
        lambda rows: pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(
            rating=4.0
        )
    )
    if unique_pairs:
        return tables.map(lambda table: table.drop_duplicates(["user_id", "item_id"]))
    return tables


def assert_partition(split, ratings):
    parts = [split.train, split.val, split.test, split.dropped]
    indices = np.concatenate([p.index.to_numpy() for p in parts])
    assert len(indices) == len(set(indices)), "an interaction landed in two parts"
    assert set(indices) == set(ratings.index), "an interaction was lost"
    for part in parts:  # rows are unchanged copies of the input rows
        pd.testing.assert_frame_equal(part, ratings.loc[part.index])


@settings(max_examples=150, deadline=None)
@given(ratings_tables(unique_pairs=True), st.booleans(), st.sampled_from(["train", "drop"]))
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
    # The first cut-off is the timestamp at this position in time order; the training part
    # is empty (and refused) exactly when that is one of the rows tied at the earliest time.
    cut = int(np.floor(len(ratings) * (1 - test_frac - val_frac)))
    at_earliest = int((ratings["timestamp"] == ratings["timestamp"].min()).sum())
    if cut < at_earliest:
        with pytest.raises(ValueError, match="no training rows"):
            temporal_split(ratings, test_frac=test_frac, val_frac=val_frac)
        return
    split = temporal_split(ratings, test_frac=test_frac, val_frac=val_frac)
    assert len(split.train) > 0
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


def test_leave_last_out_refuses_duplicate_pairs():
    # User 1 rated item 10 twice: its last rating is the test item, its first one stays in
    # train, where the test item counts as seen and can never be recommended.
    ratings = pd.DataFrame({"user_id": [1, 1, 1, 1], "item_id": [10, 11, 12, 10],
                            "timestamp": [1, 2, 3, 4], "rating": 4.0})
    with pytest.raises(ValueError, match=r"1 duplicated \(user_id, item_id\) pair.*user 1, "
                                         r"item 10.*clean_ratings"):
        leave_last_out(ratings)
    from recsys_lib.preprocessing import clean_ratings  # the fix the message names works

    split = leave_last_out(clean_ratings(ratings)[0], validation=False)
    assert split.test["item_id"].tolist() == [10]
    assert 10 not in split.train["item_id"].tolist()


def test_temporal_split_accepts_datetimes():
    seconds = [100, 200, 300, 400, 500]
    as_numbers = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 3, 4, 5],
                               "timestamp": seconds, "rating": 4.0})
    as_dates = as_numbers.assign(timestamp=pd.to_datetime(seconds, unit="s"))
    by_number = temporal_split(as_numbers, test_frac=0.4, val_frac=0.2)
    by_date = temporal_split(as_dates, test_frac=0.4, val_frac=0.2)
    for part in ("train", "val", "test"):
        assert getattr(by_date, part).index.tolist() == getattr(by_number, part).index.tolist()
    assert by_number.notes["test_start"] == 400
    assert by_date.notes["test_start"] == pd.Timestamp(400, unit="s")
    assert by_date.notes["val_start"] == pd.Timestamp(by_number.notes["val_start"], unit="s")
    with pytest.raises(TypeError, match="test_start must be a date"):
        temporal_split(as_dates, test_start=300)
    explicit = temporal_split(as_dates, test_start=pd.Timestamp(300, unit="s"))
    assert explicit.test.index.tolist() == [2, 3, 4]


def test_temporal_split_refuses_fractions_that_leave_no_training_data():
    ratings = pd.DataFrame({"user_id": range(10), "item_id": range(10),
                            "timestamp": range(10), "rating": 4.0})
    with pytest.raises(ValueError, match="no training rows.*test_frac"):
        temporal_split(ratings, test_frac=0.49, val_frac=0.5)
    with pytest.raises(ValueError, match=r"test_frac \+ val_frac must be < 1"):
        temporal_split(ratings, test_frac=0.5, val_frac=0.5)
    with pytest.raises(ValueError, match="no training rows.*val_start"):
        temporal_split(ratings, test_start=5, val_start=0)
    assert len(temporal_split(ratings, test_frac=0.45, val_frac=0.45).train) == 1


@pytest.mark.parametrize("bad", [{"test_frac": "0.2"}, {"val_frac": float("nan")},
                                 {"test_frac": -0.1}])
def test_split_fractions_must_be_numbers_in_range(bad):
    ratings = load_movielens().ratings.head(100)
    for split_fn in (random_split, temporal_split):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be a finite number"):
            split_fn(ratings, **bad)


def test_shuffle_ties_decides_which_tied_item_is_last():
    """With equal timestamps, file order picks the test item; shuffle_ties picks at random."""
    from recsys_lib.splits import shuffle_ties

    ratings = pd.DataFrame({"user_id": [1] * 4 + [2] * 3, "item_id": [1, 2, 3, 4, 5, 6, 7],
                            "timestamp": [10, 50, 50, 50, 1, 2, 3]})
    assert leave_last_out(ratings).test.set_index("user_id")["item_id"].to_dict() == {1: 4, 2: 7}
    last_items = set()
    for seed in range(20):
        shuffled = shuffle_ties(ratings, seed)
        assert sorted(shuffled.index) == list(ratings.index)
        split = leave_last_out(shuffled)
        test = split.test.set_index("user_id")["item_id"]
        assert test[2] == 7  # no tie: time decides
        last_items.add(test[1])
        assert split.val.set_index("user_id").loc[1, "timestamp"] == 50
    assert last_items == {2, 3, 4}  # every tied film is sometimes the last one
    np.testing.assert_array_equal(shuffle_ties(ratings, 3).index, shuffle_ties(ratings, 3).index)
