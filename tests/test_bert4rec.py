"""BERT4Rec (notebook 11): windows and masks, learning, save/load, warm starts, bad input."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from sequences import cyclic_histories  # noqa: E402

from recsys_lib.models.bert4rec import (  # noqa: E402
    BERT4Rec,
    BERT4RecRecommender,
    cloze_windows,
    mask_last_item,
    target_positions,
)


def small(**kw):
    """A tiny BERT4Rec for the synthetic cycles."""
    settings = {"max_len": 8, "d_model": 16, "num_heads": 2, "num_blocks": 1, "dropout": 0.0,
                "learning_rate": 5e-3, "progress": False, "seed": 3, "jit_compile": False}
    return BERT4RecRecommender(**settings | kw)


def test_cloze_windows_cover_every_item_once_and_mask_last_item():
    windows = cloze_windows([np.arange(1, 121), np.array([7])], 50)
    assert windows.shape == (4, 50)
    np.testing.assert_array_equal(windows[0], np.arange(71, 121))
    np.testing.assert_array_equal(windows[1], np.arange(21, 71))
    np.testing.assert_array_equal(windows[2, 30:], np.arange(1, 21))
    assert not windows[2, :30].any() and windows[3, -1] == 7 and not windows[3, :-1].any()
    assert sorted(windows[windows > 0].tolist()) == sorted([*range(1, 121), 7])
    inputs, targets = mask_last_item(np.array([[0, 3, 4], [0, 0, 0]]), mask_token=9)
    np.testing.assert_array_equal(inputs, [[0, 3, 9], [0, 0, 0]])
    np.testing.assert_array_equal(targets, [[0, 0, 4], [0, 0, 0]])


def test_each_epoch_masks_afresh_reproducibly_and_never_masks_padding():
    data = cyclic_histories(n_users=20, length=12)
    model = small(epochs=1).fit(data)
    (windows,) = model.windows_
    a_inputs, a_targets = model.cloze_batch(1)
    b_inputs, b_targets = model.cloze_batch(2)
    again, _ = model.cloze_batch(1)
    np.testing.assert_array_equal(a_inputs, again)  # seeded by (seed, epoch)
    assert (a_inputs != b_inputs).any()  # a new corruption every epoch
    assert not a_targets[windows == 0].any() and not a_inputs[windows == 0].any()
    np.testing.assert_array_equal(a_targets[a_targets > 0], windows[a_targets > 0])
    # the trainer scores exactly the chosen positions (there are few enough per window here)
    (inputs, positions), picked, weights = model._epoch_data(1)
    np.testing.assert_array_equal(inputs, a_inputs)
    np.testing.assert_array_equal(weights, picked > 0)
    assert (picked > 0).sum() == (a_targets > 0).sum()
    np.testing.assert_array_equal(np.take_along_axis(a_targets, positions, 1)[picked > 0],
                                  picked[picked > 0])
    last_only = small(epochs=1, last_item_rate=1.0).fit(data)
    inputs, targets = last_only.cloze_batch(1)
    assert (inputs[:, -1] == last_only.model_.mask_token).all() and not targets[:, :-1].any()


def test_target_positions_keep_a_random_subset_when_a_row_has_too_many():
    targets = np.array([[0, 5, 0, 6, 7, 8], [0, 0, 0, 0, 0, 9], [0, 0, 0, 0, 0, 0]])
    positions, picked = target_positions(targets, 3, np.random.default_rng(0))
    assert positions.shape == picked.shape == (3, 3)
    assert set(picked[0]) <= {5, 6, 7, 8} and len(set(picked[0])) == 3
    np.testing.assert_array_equal(np.take_along_axis(targets, positions, 1), picked)
    np.testing.assert_array_equal(picked[1], [9, 0, 0])
    np.testing.assert_array_equal(positions[1], [5, 0, 0])
    assert not picked[2].any() and not positions[2].any()


def test_bert4rec_learns_a_predictable_sequence_and_saves(tmp_path):
    data = cyclic_histories()
    last = data.groupby("user_id").tail(1)
    train = data.drop(index=last.index)
    # a cloze target is ~30% of a window's items, so it needs more epochs than SASRec
    model = small(epochs=150, mask_rate=0.3, patience=None).fit(train, validation=last)
    recs = model.recommend(last["user_id"].tolist(), k=1)
    hits = np.mean([recs[u][0] == i for u, i in zip(last.user_id, last.item_id, strict=True)])
    # measured 0.925 (seed 3, Keras 3.15) and 0.85 (Colab's Keras 3.13); chance is 1/30
    assert hits > 0.75, model.history_[-3:]
    path = tmp_path / "bert4rec.keras"
    model.save(str(path))
    loaded = BERT4RecRecommender.load(str(path))
    users = last["user_id"].tolist()[:5]
    histories = [model.histories_[u] for u in users]
    np.testing.assert_array_equal(loaded.score_histories(histories),
                                  model.score_histories(histories))
    history_ids = train.loc[train.user_id == users[0], "item_id"].tolist()
    assert loaded.recommend_for_history(history_ids, k=3) == model.recommend_for_history(
        history_ids, k=3)
    # the [MASK] token is never recommended and histories longer than max_len are cut
    scores = model.score_histories([np.arange(1, 31).repeat(2)])
    assert scores.shape == (1, 30) and np.isfinite(scores).all()


def test_pretrained_weights_start_the_fit_and_must_match():
    data = cyclic_histories(n_users=30, length=8)
    catalogue = data["item_id"].unique()
    first = small(epochs=2).fit(data[data.user_id < 15], items=catalogue)
    tuned = small(epochs=1, learning_rate=1e-9, pretrained=first.model_).fit(
        data[data.user_id >= 15], items=catalogue)
    for before, after in zip(first.model_.get_weights(), tuned.model_.get_weights(), strict=True):
        np.testing.assert_allclose(after, before, atol=1e-6)
    with pytest.raises(ValueError, match="same full catalogue"):
        small(epochs=1, pretrained=first.model_).fit(data[data.item_id < 110])
    with pytest.raises(ValueError, match="d_model=16"):
        small(epochs=1, d_model=8, pretrained=first.model_).fit(data, items=catalogue)


def test_bert4rec_bad_input_gets_clear_messages(tmp_path):
    data = cyclic_histories(n_users=12, length=6)
    data["user_id"] = "u" + data["user_id"].astype(str)
    model = small(epochs=1).fit(data)
    assert len(model.recommend(["u1", "u3"], k=3)["u3"]) == 3
    with pytest.raises(ValueError, match="unknown id"):
        model.recommend_for_history([999])
    with pytest.raises(ValueError, match="timestamp"):
        small().fit(data.drop(columns="timestamp"))
    for bad, match in [({"max_len": 1}, "max_len must be an integer >= 2"),
                       ({"mask_rate": 0.0}, "mask_rate"), ({"last_item_rate": 1.5},
                                                           "last_item_rate"),
                       ({"dropout": 1.0}, "dropout"), ({"batch_size": True}, "batch_size")]:
        with pytest.raises(ValueError, match=match):
            BERT4RecRecommender(**bad)
    path = tmp_path / "model.keras"
    model.save(str(path))
    with pytest.raises(RuntimeError, match="recommend_for_history"):
        BERT4RecRecommender.load(str(path)).recommend(["u1"])
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    other.save(tmp_path / "other.keras")
    with pytest.raises(ValueError, match="not a BERT4Rec model"):
        BERT4RecRecommender.load(str(tmp_path / "other.keras"))
    with pytest.raises(FileNotFoundError, match="no model file"):
        BERT4RecRecommender.load(str(tmp_path / "missing.keras"))
    assert isinstance(BERT4RecRecommender.load(str(path)).model_, BERT4Rec)


def test_bert4rec_learns_more_than_popularity_on_real_data():
    """One short fit per seed on a small fixed split of the bundled data (films with 50 or
    more ratings, leave-last-out, full ranking over them): BERT4Rec clearly beats popularity.
    Measured ratios over seeds 42, 1, 2 after 20 epochs: NDCG@10 1.85-2.09x (Keras 3.15),
    1.80-1.91x (Colab's Keras 3.13); after 8 epochs only 1.5x, so it trains longer than the
    SASRec test (a cloze target is a third of a window). The bar is 1.5x."""
    from recsys_lib.data import load_movielens
    from recsys_lib.metrics import evaluate_ranking, relevant_items
    from recsys_lib.models.baselines import PopularityRecommender
    from recsys_lib.splits import leave_last_out

    ratings = load_movielens("bundled").ratings
    counts = ratings["item_id"].value_counts()
    split = leave_last_out(ratings[ratings["item_id"].isin(counts[counts >= 50].index)],
                           validation=False)
    relevant = relevant_items(split.test)
    users = list(relevant)
    popularity = evaluate_ranking(PopularityRecommender().fit(split.train).recommend(users, k=10),
                                  relevant, k=10)
    for seed in (42, 1, 2):
        model = BERT4RecRecommender(max_len=20, d_model=32, num_heads=1, num_blocks=1,
                                    epochs=20, batch_size=64, learning_rate=3e-3,
                                    mask_rate=0.3, progress=False, seed=seed,
                                    jit_compile=False).fit(split.train)
        bert = evaluate_ranking(model.recommend(users, k=10), relevant, k=10)
        for metric in ("ndcg@10", "hit_rate@10"):
            assert bert[metric] >= 1.5 * popularity[metric], (seed, metric, bert, popularity)


def test_benchmark_runs_bert4rec_end_to_end(tmp_path, monkeypatch):
    """The benchmark tunes, refits on train + validation and writes both files for BERT4Rec; a
    tiny grid keeps it fast (learning is the test above)."""
    from recsys_lib import benchmark
    from recsys_lib.data import load_movielens

    factory, full_grid, _ = benchmark.MODELS["bert4rec"]
    tiny = [{"max_len": 10, "d_model": 8, "num_heads": 1, "num_blocks": 1, "epochs": 2,
             "eval_every": 1, "progress": False, "jit_compile": False}]
    monkeypatch.setitem(benchmark.MODELS, "bert4rec", (factory, full_grid, tiny))
    ratings, items = load_movielens("bundled")
    few = ratings[ratings["user_id"] <= 50]
    result = benchmark.run("bert4rec", "bundled (50 users)", tmp_path, quick=True,
                           progress=False, data=(few, items))
    assert result["model"] == "bert4rec" and 1 <= result["best_params"]["epochs"] <= 2
    assert 0.0 <= result["test"]["ndcg@10"] <= result["test"]["hit_rate@10"] <= 1.0
    written = (tmp_path / "recommendations.csv").read_text().splitlines()
    assert written[0].startswith("user_id") and len(written) > 1
