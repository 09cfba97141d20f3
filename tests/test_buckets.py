"""Length buckets of SASRec's training batches (notebook 13): cropping left padding changes
nothing, every window is trained on once per epoch, and the loss weights count every target
the same. Forward passes of tiny models only (fast tier)."""

import keras
import numpy as np
import pytest
from keras import ops
from sequences import cyclic_histories

from recsys_lib.models.sasrec import (
    SASRec,
    SASRecRecommender,
    bucket_boundaries,
    bucketed_dataset,
    left_pad,
    length_batches,
    training_windows,
)
from recsys_lib.models.transformer import ItemPositionEmbedding


def test_bucket_boundaries_are_few_multiples_of_8_ending_at_max_len():
    assert bucket_boundaries(200) == [56, 104, 200]
    assert bucket_boundaries(50) == [16, 32, 50]
    assert bucket_boundaries(5) == [5]
    for max_len in (1, 7, 64, 300):
        widths = bucket_boundaries(max_len)
        assert widths == sorted(set(widths)) and widths[-1] == max_len and len(widths) <= 3


def test_length_batches_visit_every_window_once_in_a_bucket_that_holds_it():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 201, size=1000)
    boundaries = bucket_boundaries(200)
    batches = length_batches(lengths, 64, boundaries, np.random.default_rng(1))
    seen = np.concatenate([rows for rows, _ in batches])
    assert sorted(seen.tolist()) == list(range(1000))
    for rows, width in batches:
        assert len(rows) <= 64 and lengths[rows].max() <= width
        smaller = [b for b in boundaries if b < width]
        assert not smaller or lengths[rows].min() > smaller[-1]  # the smallest bucket that fits
    again = length_batches(lengths, 64, boundaries, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(batches, again, strict=True))


def test_a_token_budget_sets_the_rows_of_each_bucket():
    lengths = np.array([3] * 100 + [40] * 100)
    batches = length_batches(lengths, 10, [8, 50], np.random.default_rng(0), batch_tokens=400)
    rows = {width: max(len(r) for r, w in batches if w == width) for width in (8, 50)}
    assert rows == {8: 50, 50: 8}


def test_length_batches_refuse_a_window_longer_than_the_largest_bucket():
    with pytest.raises(ValueError, match="largest bucket"):
        length_batches(np.array([3, 60]), 8, [8, 50], np.random.default_rng(0))


def test_positions_count_from_the_right_so_cropping_padding_changes_nothing():
    layer = ItemPositionEmbedding(20, 6, 4)
    seqs = left_pad([[4, 9, 2], [7, 1]], 6)
    full = ops.convert_to_numpy(layer(seqs))
    cropped = ops.convert_to_numpy(layer(seqs[:, -3:]))
    np.testing.assert_allclose(cropped, full[:, -3:], atol=1e-6)
    np.testing.assert_allclose(full[:, :3], 0.0)


@pytest.mark.parametrize("causal", ["sasrec", "bert4rec"])
def test_model_outputs_of_a_cropped_batch_equal_the_padded_ones(causal):
    keras.utils.set_random_seed(3)
    if causal == "sasrec":
        model = SASRec(30, max_len=12, d_model=8, num_heads=2, num_blocks=2, dropout=0.0)
    else:
        from recsys_lib.models.bert4rec import BERT4Rec
        model = BERT4Rec(30, max_len=12, d_model=8, num_heads=2, num_blocks=2, dropout=0.0)
    model.build((None, 12))
    seqs = left_pad([[4, 9, 2, 5], [7, 1], [3, 3, 8, 1, 2]], 12)
    full = ops.convert_to_numpy(model(seqs))
    cropped = ops.convert_to_numpy(model(seqs[:, -5:]))
    np.testing.assert_allclose(cropped, full[:, -5:], rtol=1e-5, atol=1e-5)


def test_bucketed_dataset_crops_batches_and_weighs_every_target_the_same():
    histories = [np.arange(1, n + 1) for n in (3, 5, 9, 30, 31, 2)]
    inputs, targets = training_windows(histories, 16)
    rng = np.random.default_rng(0)
    batches = list(bucketed_dataset(inputs, targets, 2, rng).as_numpy_iterator())
    assert sum(int((x > 0).any(axis=1).sum()) for x, _, _ in batches) == len(inputs)
    assert len({x.shape for x, _, _ in batches}) == len({x.shape[1] for x, _, _ in batches})
    total_targets = int((targets > 0).sum())
    per_batch = total_targets / len(batches)
    weighted = 0.0
    for x, y, w in batches:
        assert x.shape == y.shape == w.shape and x.shape[1] in bucket_boundaries(16)
        assert np.all((w > 0) == (y > 0))
        # Keras divides sum(weight * loss) by rows * width: each target then counts 1/per_batch
        np.testing.assert_allclose(w[y > 0] / (x.size / per_batch), 1.0, rtol=1e-6)
        weighted += w.sum() / x.size
    np.testing.assert_allclose(weighted, total_targets / per_batch, rtol=1e-6)
    kept = sorted(tuple(np.trim_zeros(row, "f")) for x, _, _ in batches for row in x
                  if row.any())
    assert kept == sorted(tuple(np.trim_zeros(row, "f")) for row in inputs)  # nothing lost


def test_scores_are_the_same_with_and_without_cropping():
    data = cyclic_histories(n_users=12, n_items=15, length=6)
    rec = SASRecRecommender(max_len=40, d_model=8, num_blocks=1, epochs=1, progress=False,
                            jit_compile=False, bucketing=True).fit(data)
    histories = [rec.histories_[u] for u in list(rec.histories_)[:5]]
    cropped = rec.score_histories(histories)  # the longest history is 6: width 8 of 40
    full = []
    for h in histories:
        hidden = rec.model_.hidden(left_pad([h], 40), training=False)
        full.append(ops.convert_to_numpy(rec.model_.logits(hidden[:, -1, :]))[0, 1:])
    np.testing.assert_allclose(cropped, np.array(full), rtol=1e-5, atol=1e-5)
