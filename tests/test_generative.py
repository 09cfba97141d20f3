"""Generative retrieval with semantic IDs: tokens, trie, beam search = exhaustive scoring,
cold items, learning, errors."""

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from sequences import cyclic_histories  # noqa: E402

from recsys_lib.checks import ArgumentError  # noqa: E402
from recsys_lib.models.generative import (  # noqa: E402
    GenerativeRecommender,
    build_trie,
    token_vocabulary,
    token_windows,
)
from recsys_lib.semantic_ids import semantic_ids  # noqa: E402

COLD = 130  # an item with a vector but no interactions
TWIN = 105  # COLD's vector is a copy of this item's


def item_vectors(seed=0):
    """Random vectors for items 100..129 (the cyclic data) and the cold item 130."""
    ids = np.arange(100, 131)
    values = np.random.default_rng(seed).normal(size=(len(ids), 6))
    values[-1] = values[TWIN - 100]
    return pd.DataFrame(values, index=ids)


def test_tokens_are_level_specific_and_the_trie_leads_to_every_item():
    ids = semantic_ids(np.array([[0, 2], [1, 0], [0, 2], [0, 1], [1, 0], [1, 1]]))
    tokens, offsets = token_vocabulary(ids)
    np.testing.assert_array_equal(offsets, [0, 2, 5, 7])  # 2 + 3 + 2 tokens
    np.testing.assert_array_equal(tokens[0], [1, 3 + 2, 5 + 1])
    np.testing.assert_array_equal(tokens[2], [1, 5, 7])  # same codes, disambiguated
    children, leaves = build_trie(tokens, offsets)
    assert [c.shape for c in children] == [(1, 2), (2, 3), (4, 2)]
    for item, row in enumerate(tokens):
        node = 0
        for step, token in enumerate(row):
            node = children[step][node, token - offsets[step] - 1]
            assert node >= 0
        assert leaves[node] == item
    assert (children[1] >= 0).sum() == 4  # 4 distinct two-code prefixes
    with pytest.raises(ValueError, match="same semantic id"):
        build_trie(tokens[[0, 0]], offsets)


def test_token_windows_keep_items_on_multiples_of_L():
    item_tokens = np.array([[0, 0], [1, 4], [2, 5], [3, 6], [1, 5], [2, 4]])  # row 0: padding
    inputs, targets = token_windows([np.array([1, 2, 3, 4, 5]), np.array([1, 2])],
                                    item_tokens, max_len=2)
    assert inputs.shape == targets.shape == (3, 5)  # (max_len + 1) * L - 1 positions
    np.testing.assert_array_equal(inputs[0], [3, 6, 1, 5, 2])  # items 3, 4, 5 (most recent)
    np.testing.assert_array_equal(targets[0], [6, 1, 5, 2, 4])
    np.testing.assert_array_equal(inputs[1], [1, 4, 2, 5, 3])  # items 1, 2, 3
    np.testing.assert_array_equal(inputs[2], [0, 0, 1, 4, 2])  # items 1, 2 from position 2
    np.testing.assert_array_equal(targets[2], [0, 0, 4, 2, 5])
    inputs, _ = token_windows([np.array([3])], item_tokens, max_len=2)
    assert len(inputs) == 0  # one item: nothing to predict


def test_bad_item_vectors_get_clear_errors():
    data = cyclic_histories(n_users=6, length=4)
    first, second = sorted(data["item_id"].unique())[:2]
    model = GenerativeRecommender(item_vectors().drop(index=[first, second]), codes=4,
                                  epochs=1, progress=False)
    with pytest.raises(ValueError, match=rf"no row for 2 catalogue item\(s\), e.g. "
                                         rf"\[{first}, {second}\]"):
        model.fit(data)
    with pytest.raises(ValueError, match="no row for 1"):
        GenerativeRecommender(item_vectors().drop(index=COLD), codes=4, progress=False).fit(
            data, items=[COLD])
    with pytest.raises(ValueError, match="non-empty DataFrame"):
        GenerativeRecommender(np.zeros((3, 2)))
    vectors = item_vectors()
    vectors.iloc[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        GenerativeRecommender(vectors)
    with pytest.raises(ValueError, match="duplicate"):
        GenerativeRecommender(pd.concat([item_vectors(), item_vectors().head(1)]))
    with pytest.raises(ValueError, match=r"fewer vectors \(\d+\) than codes .* codes <= \d+"):
        GenerativeRecommender(item_vectors(), codes=64, progress=False).fit(data, items=[COLD])
    with pytest.raises(ArgumentError, match="beam_size"):
        GenerativeRecommender(item_vectors(), beam_size=0)


@pytest.fixture(scope="module")
def trained():
    data = cyclic_histories()
    last = data.groupby("user_id").tail(1)
    train = data.drop(index=last.index)
    model = GenerativeRecommender(item_vectors(), levels=2, codes=4, max_len=6, d_model=32,
                                  num_heads=2, num_blocks=1, dropout=0.0, epochs=20,
                                  batch_size=32, learning_rate=5e-3, patience=None,
                                  eval_every=5, progress=False, seed=1, beam_size=10,
                                  jit_compile=False)
    model.fit(train, items=[COLD], validation=last)
    return model, train, last


@pytest.mark.slow
def test_it_learns_the_sequence(trained):
    model, _, last = trained
    recs = model.recommend(last["user_id"].tolist(), k=1)
    hits = np.mean([recs[u][:1] == [i] for u, i in zip(last.user_id, last.item_id, strict=True)])
    assert hits > 0.5, model.history_[-3:]  # random: about 1 / 22
    assert model.history_[-1]["loss"] < 0.5 * model.history_[0]["loss"]
    validated = [row for row in model.history_ if "val_hit_rate@10" in row]
    assert [row["epoch"] for row in validated] == [5, 10, 15, 20]
    assert max(row["val_hit_rate@10"] for row in validated) > 0.9  # random: about 10 / 22


@pytest.mark.slow
def test_beam_results_are_valid_unseen_and_sorted(trained):
    model, train, _ = trained
    users = sorted(train["user_id"].unique())
    recs = model.recommend(users, k=10)
    seen = train.groupby("user_id")["item_id"].agg(set)
    for user in users:
        assert len(recs[user]) == len(set(recs[user])) > 0
        assert set(recs[user]) <= set(model.items_.ids_)
        assert not set(recs[user]) & seen[user]
    histories = [model.histories_[u] for u in users]
    items, scores = model.beam_search(histories)
    assert items.shape == scores.shape == (len(users), 10)
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first
    assert np.all(scores <= 0)  # log-probabilities
    assert model.recommend([users[0]], k=10)[users[0]] == \
        model.items_.inverse_transform(items[0][np.isfinite(scores[0])]).tolist()
    assert model.recommend_for_history(train.loc[train.user_id == users[0], "item_id"],
                                       k=10) == recs[users[0]]
    kept = model.recommend(users[:5], k=10, exclude_seen=False)
    assert any(set(kept[u]) & seen[u] for u in users[:5])  # seen items may come back


@pytest.mark.slow
def test_a_wide_beam_equals_exhaustive_scoring(trained):
    model, train, _ = trained
    n_items = len(model.items_)
    model.beam_size = n_items
    try:
        for user in (0, 7, 33):
            history_ids = model.items_.inverse_transform(model.histories_[user] - 1)
            exhaustive = model.exhaustive_scores(history_ids)
            full = model.exhaustive_scores(history_ids)  # the same history again
            np.testing.assert_array_equal(exhaustive, full)
            assert np.all(exhaustive < 0)
            beam = model.score_histories([model.histories_[user]])[0]
            seen = model.histories_[user] - 1
            expected = exhaustive.copy()
            expected[seen] = -np.inf
            assert np.array_equal(np.isfinite(beam), np.isfinite(expected))
            np.testing.assert_allclose(beam[np.isfinite(beam)],
                                       expected[np.isfinite(expected)], rtol=1e-4, atol=1e-4)
            top = np.argsort(-expected, kind="stable")[:5]
            np.testing.assert_allclose(beam[top], expected[top], rtol=1e-4, atol=1e-4)
            # without exclusion the beam scores every item, the history too
            everything = model.score_histories([model.histories_[user]], exclude_seen=False)[0]
            np.testing.assert_allclose(everything, exhaustive, rtol=1e-4, atol=1e-4)
    finally:
        model.beam_size = 10


@pytest.mark.slow
def test_a_cold_item_has_a_semantic_id_and_can_be_generated(trained):
    model, train, _ = trained
    assert COLD not in set(train["item_id"])
    ids = model.semantic_ids_
    assert len(ids) == 31 and ids.index.name == "item_id"
    assert ids.loc[COLD, "semantic_id"][:-1] == ids.loc[TWIN, "semantic_id"][:-1]
    assert ids.loc[COLD, "semantic_id"][-1] > ids.loc[TWIN, "semantic_id"][-1]
    assert len(set(ids["tokens"])) == 31  # unique token sequences
    # within a shared code tuple the disambiguation code ranks items by training popularity
    counts = train["item_id"].value_counts().reindex(ids.index, fill_value=0)
    table = pd.DataFrame({"cell": [t[:-1] for t in ids["semantic_id"]],
                          "extra": [t[-1] for t in ids["semantic_id"]], "count": counts})
    for _, cell in table.groupby("cell"):
        cell = cell.sort_values("extra")
        assert cell["extra"].tolist() == list(range(len(cell)))
        assert cell["count"].is_monotonic_decreasing
    assert table["extra"].max() > 0  # there are collisions to rank
    model.beam_size = 31
    try:
        recs = model.recommend([0, 1, 2], k=31)
    finally:
        model.beam_size = 10
    assert all(COLD in items for items in recs.values())  # in the trie, reachable
    scores = model.exhaustive_scores([TWIN])
    assert np.isfinite(scores[model.items_.transform([COLD])[0]])


@pytest.mark.slow
def test_bad_requests_get_clear_errors(trained):
    model, _, _ = trained
    with pytest.raises(ArgumentError, match="k must be an integer >= 1"):
        model.recommend([0], k=0)
    with pytest.raises(ArgumentError, match="beam_size"):
        model.recommend([0], k=11)
    with pytest.raises(ValueError, match="unknown id"):
        model.recommend([12345], k=3)
    with pytest.raises(ValueError, match="unknown id"):
        model.recommend_for_history([999], k=3)
    with pytest.raises(ValueError, match="at least one item"):
        model.recommend_for_history([], k=3)
    with pytest.raises(NotImplementedError, match="refit"):
        model.save("model.keras")
