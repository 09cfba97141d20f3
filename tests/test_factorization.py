"""Matrix factorisation: exact gradients, learning on real ratings, Keras agreement, ranking.

The bundled MovieLens data is loaded once per module; models on it are kept small (few
factors and epochs) so the file runs in well under a minute on two cores. Keras is imported
only by the test that compares against it.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys_lib.data import load_movielens
from recsys_lib.metrics import evaluate_ranking, relevant_items
from recsys_lib.models import PopularityRecommender
from recsys_lib.models.factorization import (
    MF_LEARNED,
    ALSRecommender,
    BPRRecommender,
    MatrixFactorization,
    als_solve_rows,
    build_keras_mf,
    init_mf_params,
    keras_mf_get_params,
    keras_mf_set_weights,
    mf_gradients,
    mf_loss,
    mf_predict,
)
from recsys_lib.splits import leave_last_out, random_split


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return load_movielens()[0]


def random_params(seed: int = 0, n_users: int = 5, n_items: int = 6, k: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    params = init_mf_params(n_users, n_items, k, global_mean=3.5, init_std=0.5, seed=seed)
    params["b_u"] = rng.normal(0, 0.5, n_users)
    params["b_i"] = rng.normal(0, 0.5, n_items)
    return params


def random_batch(seed: int, n_users: int, n_items: int, n: int = 25) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, n_users, n), rng.integers(0, n_items, n),
            rng.choice(np.arange(1.0, 5.5, 0.5), n))


# --------------------------------------------------------------------------------------
# the pure functions of the explicit model
def test_prediction_and_loss_by_hand():
    params = {"mu": 3.0, "b_u": np.array([0.5]), "b_i": np.array([-0.2]),
              "P": np.array([[1.0, 2.0]]), "Q": np.array([[0.5, 0.25]])}
    np.testing.assert_allclose(mf_predict(params, [0], [0]), [4.3])
    # (4 - 4.3)^2 + 0.1 * (0.25 + 0.04 + 5 + 0.3125): the regulariser counts per rating
    assert mf_loss(params, [0], [0], [4.0], l2=0.1) == pytest.approx(0.65025)
    assert mf_loss(params, [0, 0], [0, 0], [4.0, 4.0], l2=0.1) == pytest.approx(2 * 0.65025)


def test_gradients_match_finite_differences():
    params = random_params()
    users, items, ratings = random_batch(1, 5, 6)  # repeats users and items; item 5 may be absent
    l2, eps = 0.3, 1e-6
    grads = mf_gradients(params, users, items, ratings, l2)
    assert set(grads) == set(MF_LEARNED)  # mu is fixed, not learned
    for name in MF_LEARNED:
        numeric = np.zeros_like(params[name])
        for idx in np.ndindex(params[name].shape):
            saved = params[name][idx]
            params[name][idx] = saved + eps
            up = mf_loss(params, users, items, ratings, l2)
            params[name][idx] = saved - eps
            down = mf_loss(params, users, items, ratings, l2)
            params[name][idx] = saved
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("users, items, match", [
    ([0, 5], [0, 1], "outside 0..4"),
    ([0, 1], [0, -1], "outside 0..5"),
    ([0.0, 1.0], [0, 1], "integer indices"),
    ([0, 1, 2], [0, 1], "same length"),
])
def test_pure_functions_reject_bad_indices(users, items, match):
    with pytest.raises(ValueError, match=match):
        mf_predict(random_params(), users, items)


def test_pure_functions_reject_bad_params():
    params = random_params()
    del params["mu"]
    with pytest.raises(ValueError, match="init_mf_params"):
        mf_predict(params, [0], [0])
    with pytest.raises(ValueError, match="l2 must be a finite number >= 0"):
        mf_loss(random_params(), [0], [0], [4.0], l2=-1)


# --------------------------------------------------------------------------------------
# the explicit model on real ratings
@pytest.fixture(scope="module")
def rating_split(ratings):
    return random_split(ratings, test_frac=0.1, val_frac=0.1, seed=0)


@pytest.fixture(scope="module")
def fitted_mf(rating_split):
    model = MatrixFactorization(n_factors=32, epochs=8, seed=0)
    return model.fit(rating_split.train, validation=rating_split.val)


def test_sgd_decreases_the_training_loss(fitted_mf):
    losses = [h["train_loss"] for h in fitted_mf.history_]
    assert len(losses) == 8 and np.all(np.diff(losses) < 0), losses
    assert list(fitted_mf.history_[0]) == ["epoch", "train_loss", "train_rmse", "val_rmse"]


def test_mf_beats_the_bias_baselines_on_validation(fitted_mf, rating_split):
    train, val = rating_split.train, rating_split.val
    val = val[val["user_id"].isin(train["user_id"]) & val["item_id"].isin(train["item_id"])]
    assert fitted_mf.val_skipped_ == len(rating_split.val) - len(val)
    truth = val["rating"].to_numpy()
    mu = train["rating"].mean()
    user_mean = train.groupby("user_id")["rating"].mean()
    item_bias = (train["rating"] - train["user_id"].map(user_mean)).groupby(
        train["item_id"]).mean()
    baseline = val["user_id"].map(user_mean) + val["item_id"].map(item_bias)
    rmse_global = np.sqrt(np.mean((truth - mu) ** 2))
    rmse_baseline = np.sqrt(np.mean((truth - baseline.to_numpy()) ** 2))
    rmse_mf = np.sqrt(np.mean((truth - fitted_mf.predict(val["user_id"], val["item_id"])) ** 2))
    assert rmse_mf == pytest.approx(fitted_mf.history_[-1]["val_rmse"])
    assert rmse_mf < rmse_baseline < rmse_global, (rmse_mf, rmse_baseline, rmse_global)


def test_predict_and_score_agree_and_unknown_ids_raise(fitted_mf, rating_split):
    user = rating_split.train["user_id"].iloc[0]
    items = fitted_mf.items_.ids_[:7]
    np.testing.assert_allclose(fitted_mf.predict([user] * 7, items),
                               fitted_mf.score([user])[0, :7])
    with pytest.raises(ValueError, match="unknown id.*training data"):
        fitted_mf.predict([-1], [items[0]])
    with pytest.raises(ValueError, match="unknown id.*catalogue"):
        fitted_mf.predict([user], [-1])
    with pytest.raises(RuntimeError, match="call fit"):
        MatrixFactorization().predict([user], [items[0]])


def test_mf_fit_rejects_tables_it_cannot_learn_from():
    table = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 1, 2], "rating": [4.0, 5, 3]})
    with pytest.raises(ValueError, match="clean_ratings"):
        MatrixFactorization().fit(table)
    with pytest.raises(ValueError, match="rating"):
        MatrixFactorization().fit(table.drop(columns="rating"))
    with pytest.raises(ValueError, match="n_factors"):
        MatrixFactorization(n_factors=0)


# --------------------------------------------------------------------------------------
# Keras computes the same model
def test_keras_mf_gives_the_numpy_predictions_and_loss():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    pytest.importorskip("keras")
    params = random_params(3, n_users=7, n_items=9, k=4)
    users, items, ratings = random_batch(4, 7, 9, n=30)
    model = build_keras_mf(7, 9, 4, l2=0.1, global_mean=0.0, seed=0)
    keras_mf_set_weights(model, params)
    predicted = model.predict({"user": users, "item": items}, verbose=0)
    np.testing.assert_allclose(predicted, mf_predict(params, users, items), atol=1e-5)
    model.compile(optimizer="sgd", loss="mse")
    keras_loss = model.evaluate({"user": users, "item": items}, ratings, batch_size=30,
                                verbose=0)
    assert keras_loss == pytest.approx(mf_loss(params, users, items, ratings, 0.1) / 30,
                                       rel=1e-5)
    back = keras_mf_get_params(model)
    for name in ("mu", *MF_LEARNED):
        np.testing.assert_allclose(back[name], params[name], atol=1e-6, err_msg=name)
    with pytest.raises(ValueError, match="same sizes"):
        keras_mf_set_weights(model, random_params(n_users=8, n_items=9, k=4))


# --------------------------------------------------------------------------------------
# implicit models
def planted(n_per_group: int = 20, n_items: int = 30, seen: int = 8, seed: int = 0):
    """Two user groups, each interacting only with its half of the items."""
    rng = np.random.default_rng(seed)
    half = n_items // 2
    rows = []
    for user in range(2 * n_per_group):
        own = np.arange(half) + (half if user >= n_per_group else 0)
        rows += [(user, int(item)) for item in rng.choice(own, seen, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id"]), half


IMPLICIT_SMALL = {
    "bpr": lambda seed=0: BPRRecommender(n_factors=8, epochs=20, seed=seed),
    "als": lambda seed=0: ALSRecommender(n_factors=8, iterations=5, l2=20.0, seed=seed),
}


@pytest.mark.parametrize("name", IMPLICIT_SMALL)
def test_implicit_models_find_the_planted_groups(name):
    table, half = planted()
    model = IMPLICIT_SMALL[name]().fit(table)
    users = sorted(table["user_id"].unique())
    recs = model.recommend(users, k=half - 8)  # exactly the unseen items of the own half
    right = [all((item >= half) == (user >= 20) for item in recs[user]) for user in users]
    assert np.mean(right) >= 0.9, recs
    seen = set(table.loc[table["user_id"] == 0, "item_id"])
    assert not seen & set(recs[0])  # the base class excludes seen items


def test_als_solve_rows_is_the_exact_least_squares_solution():
    rng = np.random.default_rng(0)
    dense = np.where(rng.random((6, 9)) < 0.4, rng.integers(1, 4, (6, 9)), 0).astype(float)
    dense[5] = 0.0
    rows, cols = np.nonzero(dense)
    # row 5 stores an explicit zero: it is not a positive
    ratings = sp.csr_matrix((np.append(dense[rows, cols], 0.0), (np.append(rows, 5),
                                                                  np.append(cols, 0))))
    fixed, l2, alpha = rng.normal(size=(9, 3)), 0.7, 2.5
    solved = als_solve_rows(ratings, fixed, l2, alpha)
    for row in range(6):
        c, p = 1 + alpha * dense[row], (dense[row] > 0).astype(float)
        a = fixed.T @ (c[:, None] * fixed) + l2 * np.eye(3)  # the O(n_items k^2) way
        np.testing.assert_allclose(solved[row], np.linalg.solve(a, fixed.T @ (c * p)),
                                   atol=1e-10)
    assert not solved[5].any()
    with pytest.raises(ValueError, match="columns"):
        als_solve_rows(ratings, fixed[:8], l2, alpha)


@pytest.mark.parametrize("make", [
    lambda seed: MatrixFactorization(n_factors=4, epochs=3, seed=seed),
    *(lambda seed, f=f: f(seed) for f in IMPLICIT_SMALL.values()),
], ids=["mf", *IMPLICIT_SMALL])
def test_same_seed_gives_identical_scores(make):
    table, _ = planted()
    table["rating"] = 1.0 + table["item_id"] % 5
    a, b, c = make(0).fit(table), make(0).fit(table), make(1).fit(table)
    np.testing.assert_array_equal(a.score([0, 25]), b.score([0, 25]))
    assert not np.array_equal(a.score([0, 25]), c.score([0, 25]))


# --------------------------------------------------------------------------------------
# ranking on the bundled data, against popularity
@pytest.fixture(scope="module")
def implicit_split(ratings):
    split = leave_last_out(ratings)
    relevant = relevant_items(split.val)
    popularity = PopularityRecommender().fit(split.train)
    return split, relevant, ranking_metrics(popularity, relevant)


def ranking_metrics(model, relevant) -> dict:
    recs = model.recommend(list(relevant), k=10)
    return evaluate_ranking(recs, relevant, k=10, metrics=("hit_rate", "ndcg"))


@pytest.mark.parametrize("model", [
    BPRRecommender(n_factors=64, epochs=10, seed=0),
    ALSRecommender(n_factors=32, iterations=5, seed=0),
], ids=["bpr", "als"])
def test_implicit_models_beat_popularity_on_validation(model, implicit_split):
    split, relevant, popularity = implicit_split
    result = ranking_metrics(model.fit(split.train), relevant)
    assert result["hit_rate@10"] > popularity["hit_rate@10"], (result, popularity)
    assert result["ndcg@10"] > popularity["ndcg@10"], (result, popularity)
