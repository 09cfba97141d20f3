"""NeuMF and two-tower recommenders: shapes, planted structure, real data, seeds, errors.

Models are tiny and train for a few epochs so that the file runs in about a minute on two
CPU cores. The whole file is skipped when Keras is not installed (it is an optional extra).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytest.importorskip("keras")

from recsys_lib.data import load_movielens  # noqa: E402
from recsys_lib.metrics import evaluate_ranking, relevant_items  # noqa: E402
from recsys_lib.models.baselines import (  # noqa: E402
    PopularityRecommender,
    RandomRecommender,
)
from recsys_lib.models.deep import NeuMFRecommender, TwoTowerRecommender  # noqa: E402
from recsys_lib.splits import leave_last_out  # noqa: E402

N_USERS, N_ITEMS, PER_USER = 200, 40, 8
TINY = {
    "neumf": dict(gmf_dim=4, mlp_dim=4, mlp_layers=(8,), n_negatives=4, epochs=10,
                  batch_size=256, learning_rate=0.01, progress=False),
    "two_tower": dict(embedding_dim=16, hidden=(16,), output_dim=16, use_history=True,
                      max_history=8,
                      epochs=10, batch_size=128, learning_rate=0.01, progress=False),
}
MODELS = {"neumf": NeuMFRecommender, "two_tower": TwoTowerRecommender}


def make_model(name: str, **overrides):
    return MODELS[name](**{**TINY[name], **overrides})


def planted_split():
    """Even users interact only with the first half of the items, odd users with the rest.

    Ids are offset (users from 1, items from 100) so that the id encoders are exercised.
    The last interaction of each user (by timestamp) is held out as its test item.
    """
    rng = np.random.default_rng(0)
    half = N_ITEMS // 2
    rows = [(u + 1, 100 + (u % 2) * half + i, t)
            for u in range(N_USERS)
            for t, i in enumerate(rng.choice(half, PER_USER, replace=False))]
    table = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return leave_last_out(table)


def own_half(user_id: int, item_id: int) -> bool:
    return (item_id - 100) // (N_ITEMS // 2) == (user_id - 1) % 2


@pytest.fixture(scope="module")
def planted():
    return planted_split()


@pytest.fixture(scope="module", params=list(MODELS))
def fitted(request, planted):
    return make_model(request.param).fit(planted.train)


# --------------------------------------------------------------------------------------
# shapes and the interface
# --------------------------------------------------------------------------------------


def test_score_shape_and_seen_items_excluded(fitted, planted):
    users = [1, 2, 7]
    scores = fitted.score(users)
    assert scores.shape == (3, N_ITEMS)
    assert np.isfinite(scores).all()
    recs = fitted.recommend(users, k=5)
    seen = planted.train.groupby("user_id")["item_id"].agg(set)
    for user in users:
        assert len(recs[user]) == 5 and len(set(recs[user])) == 5
        assert not set(recs[user]) & seen[user]
    assert len(fitted.history_) == TINY[fitted.name]["epochs"]
    assert all(np.isfinite(row["loss"]) for row in fitted.history_)


def test_planted_structure_is_learned(fitted, planted):
    users = sorted(planted.test["user_id"])
    recs = fitted.recommend(users, k=5)
    share_own = np.mean([own_half(u, i) for u in users for i in recs[u]])
    assert share_own >= 0.9, f"{fitted.name}: only {share_own:.0%} of the top 5 in own half"
    # the held-out item (own half) should score above the items of the other half
    scores, ids = fitted.score(users), fitted.items_.ids_
    held_out = planted.test.set_index("user_id")["item_id"]
    above = [np.mean(scores[row, ~own_half(u, ids)] < scores[row, ids == held_out[u]])
             for row, u in enumerate(users)]
    assert np.mean(above) >= 0.9, (f"{fitted.name}: held-out item above only "
                                   f"{np.mean(above):.0%} of the other half's items")


def test_same_seed_same_scores(fitted, planted):
    again = make_model(fitted.name).fit(planted.train)
    np.testing.assert_allclose(again.score([1, 2, 3]), fitted.score([1, 2, 3]), atol=1e-6)
    other = make_model(fitted.name, seed=7, epochs=1).fit(planted.train)
    assert not np.allclose(other.score([1, 2, 3]), fitted.score([1, 2, 3]), atol=1e-3)


def test_neumf_fast_scoring_matches_the_keras_model(planted):
    model = make_model("neumf", epochs=2, mlp_layers=(16, 8, 4)).fit(planted.train)
    users = np.repeat(np.arange(5), N_ITEMS).astype(np.int32)
    items = np.tile(np.arange(N_ITEMS), 5).astype(np.int32)
    logits = model.model_.predict({"user": users, "item": items}, verbose=0)
    np.testing.assert_allclose(model._score(np.arange(5)), logits.reshape(5, N_ITEMS),
                               rtol=1e-4, atol=1e-5)


def test_two_tower_vectors_are_unit_and_give_the_scores(planted):
    model = make_model("two_tower", epochs=1).fit(planted.train)
    items = model.item_vectors()
    users = model.user_vectors(np.arange(4))
    assert items.shape == (N_ITEMS, 16) and users.shape == (4, 16)
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(model._score(np.arange(4)), users @ items.T, atol=1e-6)


def test_two_tower_history_is_recent_and_hides_the_target():
    train = pd.DataFrame({"user_id": [5, 5, 5, 5, 9], "item_id": [1, 2, 3, 2, 3],
                          "timestamp": [40, 10, 30, 20, 0]})
    model = TwoTowerRecommender(use_history=True, max_history=2, epochs=1, batch_size=8,
                                progress=False)
    model.fit(train)
    # user 5 in time order: 2 (t=10), 2 (t=20, a repeat), 3 (t=30), 1 (t=40): last two = 3, 1
    np.testing.assert_array_equal(model.history_items_, [[3, 1], [3, 0]])
    x, _ = model._epoch_data(model.matrix_, np.random.default_rng(0))
    for user, item, history in zip(x["user"], x["item"], x["history"], strict=True):
        assert item + 1 not in history
        assert set(history) - {0} <= set(model.history_items_[user])


def test_two_tower_with_item_features_without_history_or_logq(planted):
    items = np.arange(100, 100 + N_ITEMS)
    features = pd.DataFrame({"first_half": (items < 120).astype(float)}, index=items)
    model = make_model("two_tower", epochs=2, item_features=features, logq_correction=False,
                       use_history=False).fit(planted.train)
    assert model.score([1, 2]).shape == (2, N_ITEMS)
    assert "history" not in model.model_.input


def test_validation_keeps_the_best_epoch(planted):
    """The shared loop validates every eval_every epochs and restores the best NDCG@10."""
    model = make_model("neumf", epochs=6, eval_every=2, learning_rate=0.003)
    model.fit(planted.train, validation=planted.test)
    evaluated = [row for row in model.history_ if "val_ndcg@10" in row]
    assert [row["epoch"] for row in evaluated] == [2, 4, 6]
    best = max(evaluated, key=lambda row: row["val_ndcg@10"])
    assert model.best_epoch_ == best["epoch"]
    relevant = relevant_items(planted.test)
    now = evaluate_ranking(model.recommend(list(relevant), k=10), relevant, k=10)
    assert now["ndcg@10"] == pytest.approx(best["val_ndcg@10"])
    assert now["hit_rate@10"] == pytest.approx(best["val_hit_rate@10"])


def test_patience_stops_one_validation_after_the_best(planted):
    """With patience=1 the shared loop stops at the first validation that is not better."""
    model = make_model("neumf", epochs=30, learning_rate=1e-6, patience=1)
    model.fit(planted.train, validation=planted.test)
    assert len(model.history_) == model.best_epoch_ + 1 < 30
    scores = [row["val_ndcg@10"] for row in model.history_]
    assert scores[-1] <= max(scores[:-1]) and scores.index(max(scores)) + 1 == model.best_epoch_


# --------------------------------------------------------------------------------------
# real data
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled():
    ratings, _ = load_movielens()
    split = leave_last_out(ratings)
    return split, relevant_items(split.test)


def hit_rate(model, split, relevant) -> float:
    recs = model.fit(split.train).recommend(list(relevant), k=10)
    return evaluate_ranking(recs, relevant, k=10, metrics=("hit_rate",))["hit_rate@10"]


@pytest.mark.parametrize("name, settings", [
    ("neumf", dict(gmf_dim=16, mlp_dim=16, mlp_layers=(32, 16), n_negatives=2, epochs=2,
                   batch_size=2048, learning_rate=0.005)),
    ("two_tower", dict(embedding_dim=32, hidden=(64,), output_dim=32, epochs=3,
                       batch_size=1024, learning_rate=0.005)),
])
def test_beats_random_on_bundled_data(bundled, name, settings):
    split, relevant = bundled
    random_hr = hit_rate(RandomRecommender(), split, relevant)
    popular_hr = hit_rate(PopularityRecommender(), split, relevant)
    model_hr = hit_rate(MODELS[name](progress=False, **settings), split, relevant)
    print(f"\nHR@10 bundled: {name} {model_hr:.4f}, popularity {popular_hr:.4f}, "
          f"random {random_hr:.4f}")
    assert model_hr > max(5 * random_hr, 0.02)


# --------------------------------------------------------------------------------------
# clear errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, bad, message", [
    ("neumf", {"n_negatives": 0}, "n_negatives must be an integer >= 1"),
    ("neumf", {"gmf_dim": 0}, "gmf_dim must be an integer >= 1"),
    ("neumf", {"mlp_dim": 2.5}, "mlp_dim must be an integer"),
    ("neumf", {"mlp_layers": ()}, "mlp_layers needs at least one layer"),
    ("neumf", {"mlp_layers": (8, 0)}, "every size in mlp_layers"),
    ("neumf", {"mlp_layers": 8}, "mlp_layers must be a sequence"),
    ("neumf", {"l2": -1.0}, "l2 must be a finite number >= 0"),
    ("neumf", {"learning_rate": 0}, "learning_rate must be a finite number > 0"),
    ("neumf", {"epochs": 0}, "epochs must be an integer >= 1"),
    ("two_tower", {"embedding_dim": 0}, "embedding_dim must be an integer >= 1"),
    ("two_tower", {"temperature": 0.0}, "temperature must be a finite number > 0"),
    ("two_tower", {"batch_size": -1}, "batch_size must be an integer >= 1"),
    ("two_tower", {"seed": -1}, "seed must be an integer >= 0"),
    ("two_tower", {"item_features": np.ones((3, 2))}, "item_features must be a DataFrame"),
    ("two_tower", {"item_features": pd.DataFrame({"g": ["a"]})}, "must hold numbers"),
])
def test_bad_hyper_parameters_raise(name, bad, message):
    with pytest.raises(ValueError, match=message):
        MODELS[name](**bad)


def test_fit_errors(planted):
    model = make_model("neumf", epochs=1)
    with pytest.raises(ValueError, match="validation must be a DataFrame"):
        model.fit(planted.train, validation=planted.test[["user_id"]])
    with pytest.raises(RuntimeError, match="not fitted"):
        model.score([1])
