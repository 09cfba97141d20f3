"""Cleaning, id encoding, normalisation, implicit feedback and k-core filtering."""

import numpy as np
import pandas as pd
import pytest

from recsys_lib.data import load_movielens
from recsys_lib.preprocessing import (
    IdEncoder,
    clean_ratings,
    encode_ids,
    k_core,
    mean_center,
    to_implicit,
    zscore,
)


@pytest.fixture(scope="module")
def ratings():
    return load_movielens().ratings


def test_clean_ratings_reports_each_rule():
    dirty = pd.DataFrame({
        "user_id": [1, 1, 1, 2, 2, 3],
        "item_id": [10, 10, 11, 10, 12, 13],
        "rating": [3.0, 5.0, 4.0, 7.0, np.nan, 2.0],
        "timestamp": [1, 2, 3, 4, 5, 6],
    })
    clean, report = clean_ratings(dirty)
    assert report == {"missing": 1, "out_of_range": 1, "duplicates": 1}
    assert clean.index.tolist() == [1, 2, 5]  # latest duplicate (rating 5.0) kept, order kept
    assert clean.loc[1, "rating"] == 5.0


def test_clean_ratings_keeps_later_row_on_tied_duplicate():
    dup = pd.DataFrame({"user_id": [1, 1], "item_id": [5, 5], "rating": [2.0, 4.0],
                        "timestamp": [9, 9]})
    clean, report = clean_ratings(dup)
    assert clean["rating"].tolist() == [4.0] and report["duplicates"] == 1


def test_clean_bundled_data_is_already_clean(ratings):
    clean, report = clean_ratings(ratings)
    assert report == {"missing": 0, "out_of_range": 0, "duplicates": 0}
    assert len(clean) == len(ratings)


def test_id_encoder_round_trip_and_errors(ratings):
    encoded, users, items = encode_ids(ratings)
    assert encoded["user_idx"].min() == 0 and encoded["user_idx"].max() == len(users) - 1
    assert sorted(encoded["item_idx"].unique()) == list(range(len(items)))
    np.testing.assert_array_equal(items.inverse_transform(encoded["item_idx"]),
                                  ratings["item_id"])
    with pytest.raises(ValueError, match="unknown id"):
        items.transform([1, 10**9])
    with pytest.raises(ValueError, match="out of range"):
        items.inverse_transform([len(items)])
    with pytest.raises(RuntimeError, match="fit"):
        IdEncoder().transform([1])
    with pytest.raises(ValueError, match="no ids"):
        IdEncoder().fit([])


def test_id_encoder_does_not_depend_on_row_order():
    a = IdEncoder().fit([30, 10, 20, 10])
    b = IdEncoder().fit([10, 20, 30])
    np.testing.assert_array_equal(a.transform([10, 20, 30]), [0, 1, 2])
    np.testing.assert_array_equal(a.ids_, b.ids_)


def test_mean_center_and_zscore_by_hand():
    r = pd.DataFrame({"user_id": [1, 1, 2, 2, 2], "item_id": [1, 2, 1, 2, 3],
                      "rating": [2.0, 4.0, 3.0, 3.0, 3.0]})
    np.testing.assert_allclose(mean_center(r), [-1.0, 1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(zscore(r), [-1.0, 1.0, 0.0, 0.0, 0.0])  # std 0 -> z = 0
    np.testing.assert_allclose(mean_center(r, by="item_id"), [-0.5, 0.5, 0.5, -0.5, 0.0])


def test_zscore_per_user_has_mean_zero_and_unit_std(ratings):
    z = zscore(ratings)
    stats = z.groupby(ratings["user_id"]).agg(["mean", lambda s: s.std(ddof=0)])
    np.testing.assert_allclose(stats["mean"], 0.0, atol=1e-9)
    constant = ratings.groupby("user_id")["rating"].transform("nunique") == 1
    np.testing.assert_allclose(stats.iloc[:, 1][~stats.index.isin(
        ratings.loc[constant, "user_id"])], 1.0, atol=1e-9)


def test_to_implicit(ratings):
    implicit = to_implicit(ratings, threshold=4.0)
    assert "rating" not in implicit.columns
    assert len(implicit) == int((ratings["rating"] >= 4.0).sum())


def test_k_core_iterates_until_stable():
    r = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 3, 4, 4],
                      "item_id": [1, 2, 1, 2, 4, 5, 4, 9]})
    core = k_core(r, 2, 2)
    assert core.index.tolist() == [0, 1, 2, 3]  # needs three passes


def test_k_core_on_real_data(ratings):
    core = k_core(ratings, 10, 10)
    assert core.groupby("user_id").size().min() >= 10
    assert core.groupby("item_id").size().min() >= 10
    assert 0 < len(core) < len(ratings)
    with pytest.raises(ValueError, match=">= 1"):
        k_core(ratings, 0, 5)
