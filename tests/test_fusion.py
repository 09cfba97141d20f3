"""Content features, the pooled-history model and the fusion recommender of notebook 14."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

keras = pytest.importorskip("keras")

import recsys_lib.models.fusion as fusion  # noqa: E402
from recsys_lib.checks import ArgumentError  # noqa: E402
from recsys_lib.models.fusion import (  # noqa: E402
    FusionRecommender,
    item_content_features,
    next_item_examples,
    pooled_history_model,
    truncated_svd,
)

ITEMS = pd.DataFrame({
    "item_id": [10, 20, 30, 40, 50, 60],
    "title": ["Toy Story (1995)", "Alien (1979)", "Aliens (1986)", "Heat (1995)", None,
              "Story of Heat (2001)"],
    "genres": ["Adventure|Animation|Children", "Horror|Sci-Fi", "Action|Horror|Sci-Fi",
               "Action|Crime|Thriller", "(no genres listed)", "Drama"],
    "year": pd.array([1995, 1979, 1986, 1995, None, 2001], dtype="Int64"),
})


def block(features, prefix):
    return features[[c for c in features.columns if c.startswith(prefix)]].to_numpy()


# ---------------------------------------------------------------------- content features
def test_content_features_have_one_row_per_item_three_unit_blocks_and_are_deterministic():
    features = item_content_features(ITEMS, title_dims=3)
    assert features.index.tolist() == ITEMS["item_id"].tolist()
    genres = {"genre:" + g for g in ("adventure animation children horror sci-fi action "
                                     "crime thriller drama").split()}
    assert {c for c in features.columns if c.startswith("genre:")} == genres
    assert {c for c in features.columns if c.startswith("decade:")} == {
        "decade:1970s", "decade:1980s", "decade:1990s", "decade:2000s", "decade:unknown"}
    assert [c for c in features.columns if c.startswith("title:")] == ["title:0", "title:1",
                                                                       "title:2"]
    assert features.shape[1] == len(genres) + 5 + 3
    assert np.isfinite(features.to_numpy()).all()
    for prefix in ("genre:", "decade:", "title:"):
        norms = np.linalg.norm(block(features, prefix), axis=1)
        np.testing.assert_allclose(norms[norms > 0], 1.0)  # each block scaled to unit length
    np.testing.assert_allclose(features.loc[10, ["genre:adventure", "genre:animation"]],
                               1 / np.sqrt(3))
    assert (features.loc[50, [c for c in genres]] == 0).all()  # (no genres listed): none
    assert features.loc[50, "decade:unknown"] == 1 and features.loc[40, "decade:1990s"] == 1
    assert (features.loc[50, ["title:0", "title:1", "title:2"]] == 0).all()  # no title
    pd.testing.assert_frame_equal(features, item_content_features(ITEMS, title_dims=3))


def test_title_block_pads_with_zero_columns_beyond_the_titles_rank():
    features = item_content_features(ITEMS, title_dims=40)  # 6 titles: rank <= 6
    titles = block(features, "title:")
    assert titles.shape == (6, 40) and (titles[:, 6:] == 0).all()


def test_sparse_and_dense_svd_agree_with_the_sign_convention(monkeypatch):
    matrix = sp.random(120, 90, density=0.1, random_state=np.random.default_rng(0), format="csr")
    dense = truncated_svd(matrix, 5)
    monkeypatch.setattr(fusion, "DENSE_SVD_CELLS", 0)  # force scipy's svds
    sparse = truncated_svd(matrix, 5)
    np.testing.assert_allclose(sparse, dense, atol=1e-8)
    largest = dense[np.argmax(np.abs(dense), axis=0), np.arange(5)]
    assert (largest > 0).all()  # each component's largest entry is positive
    u, s, _ = np.linalg.svd(matrix.toarray())
    np.testing.assert_allclose(np.abs(dense), np.abs(u[:, :5] * s[:5]), atol=1e-8)


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns="year"), r"missing column\(s\) \['year'\]"),
    (lambda t: t.iloc[:0], "empty"),
    (lambda t: pd.concat([t, t.iloc[:1]]), r"repeats 1 item id\(s\), e.g. \[10\]"),
    (lambda t: t.astype({"year": object}).assign(year=["1995", "x", None, 1, 2, 3]),
     "not numbers"),
])
def test_content_features_reject_bad_item_tables(change, message):
    with pytest.raises(ValueError, match=message):
        item_content_features(change(ITEMS))
    with pytest.raises(ArgumentError, match="title_dims"):
        item_content_features(ITEMS, title_dims=0)


# ---------------------------------------------------------------------- the Keras model
def random_features(n_items, n_features=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n_items, n_features))


def test_model_outputs_logits_over_padding_and_items_with_padding_masked():
    keras.utils.set_random_seed(0)
    model = pooled_history_model(7, d_model=4, max_len=4, item_features=random_features(7))
    logits = keras.ops.convert_to_numpy(model(np.array([[0, 0, 1, 2], [3, 4, 5, 6],
                                                        [0, 0, 0, 7]])))
    assert logits.shape == (3, 8) and logits.dtype == np.float32
    assert (logits[:, 0] <= -1e8).all() and np.isfinite(logits[:, 1:]).all()
    assert (np.abs(logits[:, 1:]) < 1e3).all()


def test_id_dropout_acts_in_training_only():
    keras.utils.set_random_seed(0)
    x = np.array([[1, 2, 3, 4], [0, 5, 6, 7]])
    model = pooled_history_model(8, d_model=4, max_len=4, item_features=random_features(8),
                                 mode="fused", id_dropout=0.5, seed=3)
    infer = [keras.ops.convert_to_numpy(model(x, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(infer[0], infer[1])
    train = [keras.ops.convert_to_numpy(model(x, training=True)) for _ in range(2)]
    assert not np.allclose(train[0], infer[0]) and not np.allclose(train[0], train[1])
    keras.utils.set_random_seed(0)
    plain = pooled_history_model(8, d_model=4, max_len=4, item_features=random_features(8),
                                 mode="fused", id_dropout=0.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(plain(x, training=True)),
                                  keras.ops.convert_to_numpy(plain(x, training=False)))


@pytest.mark.parametrize("mode", ["id", "content", "fused"])
def test_masked_mean_ignores_padding(mode):
    keras.utils.set_random_seed(0)
    model = pooled_history_model(6, d_model=4, max_len=4, item_features=random_features(6),
                                 mode=mode)
    x = np.array([[0, 0, 2, 5], [2, 0, 5, 0], [5, 2, 0, 0]])  # the same items, padded anyhow
    before = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(before, before[[0, 0, 0]], rtol=1e-6)
    if mode != "content":  # a padding row full of large values changes nothing
        table = keras.ops.convert_to_numpy(model.id_embedding.embeddings).copy()
        table[0] = 100.0
        model.id_embedding.embeddings.assign(table)
    if mode != "id":
        features = keras.ops.convert_to_numpy(model.item_features).copy()
        features[0] = 100.0
        model.item_features.assign(features)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), before, rtol=1e-6)
    single = keras.ops.convert_to_numpy(model(np.array([[0, 0, 0, 2], [2, 2, 2, 2]])))
    np.testing.assert_allclose(single[0], single[1], rtol=1e-6)  # a mean, not a sum


def test_unknown_items_have_a_zero_id_part():
    keras.utils.set_random_seed(0)
    known = np.array([True, True, False, True])
    model = pooled_history_model(4, d_model=3, max_len=2, mode="id", known_items=known)
    logits = keras.ops.convert_to_numpy(model(np.array([[1, 2], [0, 4]])))
    assert (logits[:, 3] == 0).all() and (logits[:, [1, 2, 4]] != 0).all()


def test_model_arguments_are_checked():
    with pytest.raises(ValueError, match="mode 'content' needs item_features"):
        pooled_history_model(5, mode="content")
    with pytest.raises(ArgumentError, match="mode must be one of 'id', 'content', 'fused'"):
        pooled_history_model(5, mode="both", item_features=random_features(5))
    with pytest.raises(ValueError, match=r"\(5, >= 1\)"):
        pooled_history_model(5, item_features=random_features(4))
    with pytest.raises(ValueError, match="NaN"):
        pooled_history_model(2, item_features=[[0.0], [np.nan]])
    with pytest.raises(ValueError, match="known_items"):
        pooled_history_model(5, mode="id", known_items=[True])
    with pytest.raises(ArgumentError, match="id_dropout"):
        pooled_history_model(5, mode="id", id_dropout=1.0)


# ---------------------------------------------------------------------- training examples
def test_next_item_examples_cover_every_position_left_padded():
    inputs, targets = next_item_examples([np.array([1, 2, 3, 4]), np.array([7]),
                                          np.array([5, 6])], max_len=2)
    np.testing.assert_array_equal(inputs, [[0, 1], [1, 2], [2, 3], [0, 5]])
    np.testing.assert_array_equal(targets, [2, 3, 4, 6])
    assert inputs.dtype == targets.dtype == np.int32
    empty_inputs, empty_targets = next_item_examples([np.array([3])], max_len=3)
    assert empty_inputs.shape == (0, 3) and empty_targets.shape == (0,)
    with pytest.raises(ValueError, match="indices start at 1"):
        next_item_examples([np.array([0, 1])], max_len=2)


# ---------------------------------------------------------------------- the recommender
N_GENRES, PER_GENRE, COLD_PER_GENRE = 4, 10, 2


def genre_world(n_users=80, seed=0):
    """Items of four genres; each user watches (in random order) the warm items of one genre.

    Returns ``(train, items, cold_ids)``: the two last items of every genre are cold.
    """
    rng = np.random.default_rng(seed)
    ids = np.arange(100, 100 + N_GENRES * PER_GENRE)
    genre = (ids - 100) // PER_GENRE
    names = ["Action", "Comedy", "Drama", "Horror"]
    items = pd.DataFrame({"item_id": ids, "title": [f"Film {w}" for w in rng.permutation(ids)],
                          "genres": [names[g] for g in genre],
                          "year": pd.array(rng.integers(1970, 2010, len(ids)), dtype="Int64")})
    cold = ids[(ids - 100) % PER_GENRE >= PER_GENRE - COLD_PER_GENRE]
    rows = []
    for user in range(n_users):
        warm = ids[(genre == user % N_GENRES) & ~np.isin(ids, cold)]
        rows += [(user, int(item), t) for t, item in enumerate(rng.permutation(warm))]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), items, cold


def fitted(mode, train, items, cold, **kwargs):
    settings = {"d_model": 16, "max_len": 10, "epochs": 12, "batch_size": 64,
                "learning_rate": 1e-2, "progress": False, "seed": 1} | kwargs
    features = item_content_features(items, title_dims=4) if mode != "id" else None
    return FusionRecommender(features, mode=mode, **settings).fit(train, items=cold)


@pytest.mark.slow  # trains two small models (about 6 s)
@pytest.mark.parametrize("mode", ["content", "fused"])
def test_content_ranks_cold_items_of_the_users_genre_first(mode):
    train, items, cold = genre_world()
    rec = fitted(mode, train, items, cold, id_dropout=0.5)
    assert set(rec.cold_items_) == set(cold) and rec.known_items_.sum() == len(rec.items_) - 8
    users = np.arange(80)
    columns = rec.items_.transform(cold)
    scores = rec.score(users)[:, columns]  # (users, cold items)
    top = np.argsort(-scores, axis=1)[:, :COLD_PER_GENRE]
    right = (cold[top] - 100) // PER_GENRE == (users % N_GENRES)[:, None]
    assert right.all(axis=1).mean() >= 0.9  # both top cold items in the user's genre
    recs = rec.recommend_for_history([100, 101], k=3)  # an Action history
    assert all((item - 100) // PER_GENRE == 0 for item in recs)


@pytest.mark.slow  # trains two small models (about 3 s)
def test_cold_items_score_zero_in_id_mode_whatever_the_training():
    train, items, cold = genre_world(n_users=20)
    columns = None
    for epochs, seed in [(1, 1), (3, 2)]:
        rec = fitted("id", train, items, cold, epochs=epochs, seed=seed)
        columns = rec.items_.transform(cold)
        scores = rec.score(np.arange(20))
        assert (scores[:, columns] == 0).all()  # the score of a zero (untrained) vector
        warm = np.delete(scores, columns, axis=1)
        assert (warm != 0).all()


def test_items_with_equal_features_get_equal_scores_in_content_mode():
    train, items, cold = genre_world(n_users=20)
    features = item_content_features(items, title_dims=4)
    features.loc[cold[1]] = features.loc[cold[0]].to_numpy()  # two cold items look alike
    features.loc[101] = features.loc[100].to_numpy()  # and two warm ones
    rec = FusionRecommender(features, mode="content", d_model=8, max_len=10, epochs=2,
                            progress=False).fit(train, items=cold)
    scores = rec.score(np.arange(20))
    index = rec.items_.transform([cold[0], cold[1], 100, 101])
    np.testing.assert_allclose(scores[:, index[0]], scores[:, index[1]], rtol=1e-6)
    np.testing.assert_allclose(scores[:, index[2]], scores[:, index[3]], rtol=1e-6)


def test_recommender_rejects_bad_settings_and_missing_features():
    train, items, cold = genre_world(n_users=8)
    with pytest.raises(ValueError, match="mode 'content' needs item_features"):
        FusionRecommender(mode="content")
    with pytest.raises(ArgumentError, match="mode must be one of"):
        FusionRecommender(mode="ids")
    with pytest.raises(ValueError, match="NaN"):
        FusionRecommender(pd.DataFrame({"a": [np.nan]}, index=[1]))
    features = item_content_features(items[~items["item_id"].isin(cold[:3])], title_dims=2)
    rec = FusionRecommender(features, mode="fused", epochs=1, progress=False)
    with pytest.raises(ValueError, match=rf"no row for 3 catalogue item\(s\), e\.g\. "
                                         rf"\[{cold[0]}, {cold[1]}, {cold[2]}\]"):
        rec.fit(train, items=cold)
    with pytest.raises(ValueError, match="timestamp"):
        rec.fit(train.drop(columns="timestamp"))
