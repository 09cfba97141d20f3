"""Attributions of SASRec scores (notebook 14): attention is a distribution over the history,
gradient x input matches finite differences and a gradient taken another way, leave-one-out
and deletion curves match scoring each history separately, agreement and areas, errors.

One untrained SASRec (2 blocks, d_model 16, 30 items) serves every test: no training needed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from recsys_lib.attribution import (  # noqa: E402
    agreement,
    area_under_deletion,
    attention_attribution,
    attention_rollout,
    deletion_curve,
    deletion_order,
    explain,
    gradient_x_input,
    leave_one_out,
    random_deletion_curve,
    read_window,
)
from recsys_lib.models.sasrec import SASRec, SASRecRecommender, left_pad  # noqa: E402
from recsys_lib.preprocessing import IdEncoder  # noqa: E402

MAX_LEN = 8
HISTORY = [103, 117, 104, 105, 106]  # item ids (the catalogue is 100..129), oldest first
TARGET = 107


@pytest.fixture(scope="module")
def rec():
    """An untrained SASRec (the maths needs no skill) with items 100..129, set up as
    SASRecRecommender.load does; item vectors of a trained model's scale (std 0.5)."""
    keras.utils.set_random_seed(1)
    rec = SASRecRecommender(max_len=MAX_LEN, d_model=16, num_heads=2, num_blocks=2,
                            dropout=0.0, progress=False)
    rec.items_ = IdEncoder().fit(range(100, 130))
    rec.model_ = SASRec(30, MAX_LEN, d_model=16, num_heads=2, num_blocks=2, dropout=0.0,
                        item_ids=list(range(100, 130)))
    rec.model_.build((None, MAX_LEN))
    table = rec.model_.embed.item_embedding.embeddings
    table.assign(np.random.default_rng(0).normal(0.0, 0.5, table.shape).astype("float32"))
    return rec


def indices(rec, ids):
    return rec.items_.transform(ids) + 1


def column(rec, item):
    return int(rec.items_.transform([item])[0])


def target_logit(rec, vectors, sequences, target):
    """The target's last-position logit with the given item vectors (the new argument)."""
    hidden = rec.model_.hidden(sequences, training=False, item_vectors=vectors)
    logits = rec.model_.logits(hidden[:, -1, :])
    return float(keras.ops.convert_to_numpy(logits)[0, target + 1])


def manual_rank(scores, target, history_idx):
    """Rank like recommend: history items removed, stable sort."""
    scores = scores.astype(np.float64).copy()
    scores[np.asarray(history_idx, dtype=int) - 1] = -np.inf
    return int(np.flatnonzero(np.argsort(-scores, kind="stable") == target)[0]) + 1


def test_precomputed_item_vectors_change_nothing(rec):
    sequences = left_pad([indices(rec, HISTORY)], MAX_LEN)
    model = rec.model_
    vectors = model.embed.item_embedding(sequences)
    default = keras.ops.convert_to_numpy(model.hidden(sequences, training=False))
    given = keras.ops.convert_to_numpy(model.hidden(sequences, training=False,
                                                    item_vectors=vectors))
    np.testing.assert_array_equal(given, default)  # bit-identical
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.embed(sequences)),
        keras.ops.convert_to_numpy(model.embed(sequences, item_vectors=vectors)))


def test_attention_is_a_distribution_over_the_history(rec):
    sequences = left_pad([indices(rec, HISTORY)], MAX_LEN)
    _, maps = rec.model_.hidden(sequences, training=False, return_attention=True)
    n = len(HISTORY)
    for block in (0, 1, -1):
        full = keras.ops.convert_to_numpy(maps[block])  # (batch, heads, T, T)
        assert full.shape == (1, 2, MAX_LEN, MAX_LEN)
        np.testing.assert_array_equal(full[0, :, -1, :MAX_LEN - n], 0.0)  # padding keys
        np.testing.assert_allclose(full[0, :, -1].sum(axis=-1), 1.0, rtol=1e-6)
        weights = attention_attribution(rec, HISTORY, block=block)
        assert weights.shape == (n,)
        assert (weights >= 0).all()
        np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-6)
        np.testing.assert_allclose(weights, full[0, :, -1, -n:].mean(axis=0), rtol=1e-6)
    assert not np.allclose(attention_attribution(rec, HISTORY, block=0),
                           attention_attribution(rec, HISTORY, block=1))
    with pytest.raises(ValueError, match="block must be an integer"):
        attention_attribution(rec, HISTORY, block=2)


def test_attention_rollout_chains_the_blocks(rec):
    sequences = left_pad([indices(rec, HISTORY)], MAX_LEN)
    _, maps = rec.model_.hidden(sequences, training=False, return_attention=True)
    n = len(HISTORY)
    # row vector through the blocks, last block first: e_last A~_2 A~_1
    row = np.eye(n)[-1]
    for m in reversed(maps):
        mixed = 0.5 * keras.ops.convert_to_numpy(m)[0].mean(axis=0)[-n:, -n:] + 0.5 * np.eye(n)
        row = row @ (mixed / mixed.sum(axis=1, keepdims=True))
    rollout = attention_rollout(rec, HISTORY)
    np.testing.assert_allclose(rollout, row, rtol=1e-5)
    np.testing.assert_allclose(rollout.sum(), 1.0, rtol=1e-6)
    assert (rollout >= 0).all()


def test_gradient_x_input_matches_finite_differences(rec):
    sequences = left_pad([indices(rec, HISTORY)], MAX_LEN)
    target = column(rec, TARGET)
    vectors = keras.ops.convert_to_numpy(rec.model_.embed.item_embedding(sequences))
    attribution = gradient_x_input(rec, HISTORY, TARGET)
    n = len(HISTORY)
    assert attribution.shape == (n,)
    eps = 1e-2
    # per position: the directional derivative along that item's own vector
    for i in range(n):
        step = np.zeros_like(vectors)
        step[0, MAX_LEN - n + i] = eps * vectors[0, MAX_LEN - n + i]
        slope = (target_logit(rec, vectors + step, sequences, target)
                 - target_logit(rec, vectors - step, sequences, target)) / (2 * eps)
        np.testing.assert_allclose(attribution[i], slope, rtol=2e-2, atol=2e-3)
    # all together: scaling every item vector by (1 + eps) changes the logit by eps * sum
    change = (target_logit(rec, vectors * (1 + eps), sequences, target)
              - target_logit(rec, vectors * (1 - eps), sequences, target)) / (2 * eps)
    np.testing.assert_allclose(attribution.sum(), change, rtol=2e-2, atol=2e-3)
    assert np.abs(attribution).max() > 1e-3  # not trivially zero


def test_gradient_x_input_matches_the_gradient_of_the_item_table(rec):
    """Another way: differentiate with respect to the whole item table, the output side's
    use of the table cut off with stop_gradient; history items are distinct, so row j of the
    table gradient is the gradient at the one position that holds item j."""
    import tensorflow as tf

    idx = indices(rec, HISTORY)
    sequences = left_pad([idx], MAX_LEN)
    target = column(rec, TARGET)
    table = rec.model_.embed.item_embedding.embeddings
    with tf.GradientTape() as tape:
        hidden = rec.model_.hidden(sequences, training=False)[0, -1]
        logit = tf.reduce_sum(hidden * tf.stop_gradient(table[target + 1]))
    gradient = tf.convert_to_tensor(tape.gradient(logit, table)).numpy()
    expected = (gradient[idx] * table.numpy()[idx]).sum(axis=1)
    np.testing.assert_allclose(gradient_x_input(rec, HISTORY, TARGET), expected,
                               rtol=1e-4, atol=1e-6)


def test_leave_one_out_matches_scoring_each_history_alone(rec):
    idx = indices(rec, HISTORY)
    target = column(rec, TARGET)
    full = rec.score_histories([idx])[0]
    table = leave_one_out(rec, HISTORY, TARGET)
    assert list(table.columns) == ["position", "item_id", "score_without", "score_drop",
                                   "rank_without", "rank_change"]
    assert table["item_id"].tolist() == HISTORY
    assert table.attrs["score"] == pytest.approx(full[target], rel=1e-5)
    assert table.attrs["rank"] == manual_rank(full, target, idx)
    for i, row in table.iterrows():
        reduced = np.delete(idx, i)
        scores = rec.score_histories([reduced])[0]
        assert row["score_without"] == pytest.approx(scores[target], rel=1e-5, abs=1e-5)
        assert row["score_drop"] == pytest.approx(full[target] - scores[target], abs=1e-4)
        assert row["rank_without"] == manual_rank(scores, target, reduced)
        assert row["rank_change"] == row["rank_without"] - table.attrs["rank"]


def test_deletion_curve_runs_from_the_full_to_the_empty_history(rec):
    idx = indices(rec, HISTORY)
    target = column(rec, TARGET)
    n = len(HISTORY)
    order = deletion_order(gradient_x_input(rec, HISTORY, TARGET))
    curve = deletion_curve(rec, HISTORY, TARGET, order)
    assert curve["step"].tolist() == list(range(n + 1))
    assert curve["deleted_item"].tolist() == [None] + [HISTORY[i] for i in order]
    full, empty = rec.score_histories([idx, np.array([], dtype=int)])
    assert curve["score"].iloc[0] == pytest.approx(full[target], rel=1e-5)
    assert curve["score"].iloc[-1] == pytest.approx(empty[target], rel=1e-5, abs=1e-5)
    assert curve["rank"].iloc[-1] == manual_rank(empty, target, [])
    kept = np.delete(idx, order[:2])  # step 2: the two most important items gone
    scores = rec.score_histories([kept])[0]
    assert curve["score"].iloc[2] == pytest.approx(scores[target], rel=1e-5, abs=1e-5)
    assert curve["rank"].iloc[2] == manual_rank(scores, target, kept)
    # the random baseline: same ends, and one repeat is the curve of its permutation
    baseline = random_deletion_curve(rec, HISTORY, TARGET, repeats=7, seed=3)
    np.testing.assert_allclose(baseline["score"].iloc[[0, -1]], curve["score"].iloc[[0, -1]],
                               rtol=1e-5, atol=1e-5)
    single = random_deletion_curve(rec, HISTORY, TARGET, repeats=1, seed=5)
    same = deletion_curve(rec, HISTORY, TARGET, np.random.default_rng(5).permutation(n))
    np.testing.assert_allclose(single["score"], same["score"], rtol=1e-5, atol=1e-5)
    two = random_deletion_curve(rec, HISTORY, TARGET, repeats=2, seed=5)
    orders = np.random.default_rng(5)
    first, second = (deletion_curve(rec, HISTORY, TARGET, orders.permutation(n))
                     for _ in range(2))
    np.testing.assert_allclose(two["rank"], (first["rank"] + second["rank"]) / 2)
    with pytest.raises(ValueError, match="permutation"):
        deletion_curve(rec, HISTORY, TARGET, [0, 0, 1, 2, 3])
    with pytest.raises(ValueError, match="integer positions"):
        deletion_curve(rec, HISTORY, TARGET, gradient_x_input(rec, HISTORY, TARGET))


def test_area_under_deletion_is_normalised():
    assert area_under_deletion(np.array([3.0, 1.0, 1.0])) == pytest.approx(0.25)
    assert area_under_deletion(np.array([5.0, 3.0, 1.0])) == pytest.approx(0.5)
    assert area_under_deletion(np.array([-1.0, -1.0, -1.0, -4.0])) == pytest.approx(5 / 6)
    assert area_under_deletion(np.array([2.0, 7.0])) == pytest.approx(0.5)
    assert np.isnan(area_under_deletion(np.array([1.0, 4.0, 1.0])))  # ends equal
    assert area_under_deletion([1.0, 4.0, 1.0], normalise=False) == pytest.approx(2.5)
    import pandas as pd

    curve = pd.DataFrame({"score": [2.0, 0.0, 0.0], "rank": [1, 1, 9]})
    assert area_under_deletion(curve, column="rank") == pytest.approx(0.75)
    with pytest.raises(ValueError, match="no column"):
        area_under_deletion(curve, column="ndcg")
    with pytest.raises(ValueError, match="n >= 1"):
        area_under_deletion([1.0])


def test_agreement():
    a = np.array([0.1, 0.5, -0.2, 0.9, 0.3])
    assert agreement(a, a) == {"top": 1, "top_overlap": 1.0, "spearman": pytest.approx(1.0)}
    reverse = agreement(a, -a, top=2)
    assert reverse["spearman"] == pytest.approx(-1.0) and reverse["top_overlap"] == 0.0
    assert agreement(a, a ** 3 + 7, top=3)["spearman"] == pytest.approx(1.0)  # ranks only
    assert agreement(a, [0, 1, 0, 0, 1], top=2)["top_overlap"] == 0.5  # {3, 1} vs {1, 4}
    assert agreement(a, np.zeros(5))["spearman"] == 0.0  # one constant: no ranking
    assert agreement(np.ones(5), np.zeros(5))["spearman"] == 1.0  # both all tied
    assert agreement([2.0], [5.0]) == {"top": 1, "top_overlap": 1.0, "spearman": 1.0}
    with pytest.raises(ValueError, match="lengths 5 and 4"):
        agreement(a, a[:4])
    with pytest.raises(ValueError, match="top must be an integer"):
        agreement(a, a, top=6)
    with pytest.raises(ValueError, match="non-finite"):
        agreement(a, [0, np.nan, 0, 0, 0])


def test_explain_puts_the_three_attributions_side_by_side(rec):
    table = explain(rec, HISTORY, TARGET)
    assert list(table.columns) == ["position", "item_id", "attention", "attention_rollout",
                                   "gradient_x_input", "score_drop", "rank_without",
                                   "rank_change"]
    np.testing.assert_allclose(table["attention"], attention_attribution(rec, HISTORY))
    np.testing.assert_allclose(table["attention_rollout"], attention_rollout(rec, HISTORY))
    np.testing.assert_allclose(table["gradient_x_input"],
                               gradient_x_input(rec, HISTORY, TARGET), rtol=1e-6)
    loo = leave_one_out(rec, HISTORY, TARGET)
    np.testing.assert_allclose(table["score_drop"], loo["score_drop"], rtol=1e-6)
    assert table.attrs == loo.attrs | {"target_item": TARGET}


def test_a_long_history_is_cropped_to_what_the_model_reads(rec):
    long = [110, 111, 112, 113] + HISTORY + [108, 109]  # 11 items, max_len 8
    read = long[-MAX_LEN:]
    assert read_window(rec, long).tolist() == read
    with pytest.warns(UserWarning, match="reads only the last max_len=8"):
        weights = attention_attribution(rec, long)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a history that fits gives no warning
        np.testing.assert_allclose(weights, attention_attribution(rec, read))
    with pytest.warns(UserWarning):
        table = leave_one_out(rec, long, TARGET)
    assert table["item_id"].tolist() == read
    with pytest.warns(UserWarning):
        assert len(gradient_x_input(rec, long, TARGET)) == MAX_LEN


def test_clear_errors(rec):
    with pytest.raises(ValueError, match="not fitted"):
        attention_attribution(SASRecRecommender(progress=False), HISTORY)
    with pytest.raises(ValueError, match="empty"):
        gradient_x_input(rec, [], TARGET)
    with pytest.raises(ValueError, match=r"not in the model's catalogue: \[999, 5\]"):
        leave_one_out(rec, [103, 999, 5, 999], TARGET)
    with pytest.raises(ValueError, match="target item 42 is not in the model's catalogue"):
        gradient_x_input(rec, HISTORY, 42)
    with pytest.raises(ValueError, match="is in the history"):
        leave_one_out(rec, HISTORY, HISTORY[0])
    with pytest.raises(ValueError, match="1-D"):
        attention_rollout(rec, [[103, 104]])
    with pytest.raises(ValueError, match="repeats must be an integer"):
        random_deletion_curve(rec, HISTORY, TARGET, repeats=0)
    with pytest.raises(TypeError, match="rec must be a fitted SASRecRecommender"):
        explain("model", HISTORY, TARGET)
