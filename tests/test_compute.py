"""The compute bill (recsys_lib/compute.py): stored numbers and time per user."""

import numpy as np
import pandas as pd
import pytest

from recsys_lib.checks import ArgumentError
from recsys_lib.compute import ms_per_user, stored_numbers
from recsys_lib.models.baselines import PopularityRecommender
from recsys_lib.models.factorization import MatrixFactorization
from recsys_lib.models.linear import EASERecommender
from recsys_lib.models.neighbours import ItemKNNRecommender


@pytest.fixture(scope="module")
def train():
    rng = np.random.default_rng(0)
    rows = [(u, i) for u in range(30) for i in rng.choice(25, 6, replace=False)]
    table = pd.DataFrame(rows, columns=["user_id", "item_id"])
    table["rating"] = rng.integers(1, 6, len(table)).astype(float)
    return table


def test_ease_stores_its_item_item_matrix(train):
    n_items = train["item_id"].nunique()
    assert stored_numbers(EASERecommender(l2=10.0).fit(train)) == n_items ** 2


def test_popularity_stores_one_number_per_item(train):
    assert stored_numbers(PopularityRecommender().fit(train)) == train["item_id"].nunique()


def test_item_knn_counts_its_stored_similarities(train):
    model = ItemKNNRecommender(k=3).fit(train)
    assert stored_numbers(model) == model.similarity_.nnz
    assert stored_numbers(model) <= 3 * train["item_id"].nunique()


def test_matrix_factorization_counts_factors_and_biases(train):
    model = MatrixFactorization(n_factors=4, epochs=1).fit(train)
    expected = sum(np.asarray(v).size for v in model.params_.values()
                   if np.asarray(v).dtype.kind == "f")
    assert stored_numbers(model) == expected
    n_users, n_items = train["user_id"].nunique(), train["item_id"].nunique()
    assert stored_numbers(model) >= 4 * (n_users + n_items)


def test_a_keras_recommender_reports_count_params():
    class Fitted:
        items_ = object()

        class model_:  # noqa: N801  (stands in for a keras.Model)
            @staticmethod
            def count_params():
                return 1234

    assert stored_numbers(Fitted()) == 1234


def test_an_unfitted_model_is_refused():
    with pytest.raises(ValueError, match="not fitted"):
        stored_numbers(EASERecommender())


def test_ms_per_user_times_recommend(train):
    model = PopularityRecommender().fit(train)
    ms = ms_per_user(model, train["user_id"].unique(), k=5, repeats=2)
    assert 0 < ms < 1000
    with pytest.raises(ValueError, match="empty"):
        ms_per_user(model, [])
    with pytest.raises(ArgumentError):
        ms_per_user(model, [0], k=0)
    with pytest.raises(ValueError, match="only recommend for users"):
        ms_per_user(model, ["nobody"])
