"""Residual k-means and semantic IDs: the maths of each level, exact cases, collisions, errors."""

import numpy as np
import pytest

from recsys_lib.checks import ArgumentError
from recsys_lib.semantic_ids import (
    ResidualKMeans,
    collision_rate,
    lloyd,
    semantic_ids,
    squared_distances,
)


def blobs(n_per=40, centres=((0, 0, 0), (5, 5, 0), (-5, 5, 3), (0, -6, -2)), seed=0):
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(c, 0.5, size=(n_per, len(c))) for c in centres])


def test_errors_never_increase_with_levels_and_match_the_reconstruction():
    x = np.random.default_rng(1).normal(size=(300, 6))
    deep = ResidualKMeans(levels=4, codes=8, seed=3).fit(x)
    errors = np.array(deep.level_errors_)
    assert len(errors) == 4 and len(deep.codebooks_) == 4
    assert np.all(np.diff(errors) <= 1e-12), errors
    assert errors[0] < (x ** 2).sum(axis=1).mean()  # level 1 beats "all zeros"
    assert errors[-1] < 0.6 * errors[0]  # the residual levels really help
    assert deep.reconstruction_error(x) == pytest.approx(errors[-1], rel=1e-12)
    shallow = ResidualKMeans(levels=1, codes=8, seed=3).fit(x)
    np.testing.assert_array_equal(shallow.codebooks_[0], deep.codebooks_[0])  # same level 1
    assert shallow.reconstruction_error(x) >= deep.reconstruction_error(x)


@pytest.mark.parametrize("codes", [10, 13])
def test_as_many_codes_as_distinct_points_reconstruct_exactly(codes):
    rng = np.random.default_rng(2)
    distinct = rng.normal(size=(10, 4))
    x = distinct[rng.integers(10, size=40)]
    x[:10] = distinct  # every distinct point is there
    quantiser = ResidualKMeans(levels=2, codes=codes, seed=0).fit(x)
    assert quantiser.reconstruction_error(x) < 1e-10
    assert quantiser.level_errors_[0] < 1e-10


def test_decode_is_the_sum_of_the_chosen_centroids():
    x = np.random.default_rng(4).normal(size=(120, 5))
    quantiser = ResidualKMeans(levels=3, codes=6, seed=1).fit(x)
    codes = quantiser.encode(x)
    assert codes.shape == (120, 3) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 6
    by_hand = sum(quantiser.codebooks_[level][codes[:, level]] for level in range(3))
    np.testing.assert_allclose(quantiser.decode(codes), by_hand)
    np.testing.assert_allclose(quantiser.decode(codes[:1]), by_hand[:1])


def test_each_level_picks_the_nearest_centroid_to_the_residual():
    x = np.random.default_rng(5).normal(size=(150, 3))
    quantiser = ResidualKMeans(levels=3, codes=7, seed=2).fit(x)
    codes = quantiser.encode(x)
    residual = x.copy()
    for level, codebook in enumerate(quantiser.codebooks_):
        brute = ((residual[:, None, :] - codebook[None, :, :]) ** 2).sum(axis=2)  # (n, codes)
        chosen = brute[np.arange(len(x)), codes[:, level]]
        np.testing.assert_allclose(chosen, brute.min(axis=1), atol=1e-12)
        residual = residual - codebook[codes[:, level]]
    np.testing.assert_allclose((residual ** 2).sum(axis=1).mean(), quantiser.level_errors_[-1])


def test_level_one_is_a_converged_k_means():
    x = blobs()
    quantiser = ResidualKMeans(levels=2, codes=4, seed=0).fit(x)
    assert quantiser.converged_[0]
    labels = quantiser.encode(x)[:, 0]
    for code, centroid in enumerate(quantiser.codebooks_[0]):
        members = x[labels == code]
        assert len(members) == 40  # each blob is one cluster
        np.testing.assert_allclose(centroid, members.mean(axis=0), atol=1e-12)
    # a fixed point of Lloyd's step: one more assignment and update change nothing
    again, labels_again, _, _ = lloyd(x, quantiser.codebooks_[0], iterations=1)
    np.testing.assert_array_equal(labels_again, labels)
    np.testing.assert_allclose(again, quantiser.codebooks_[0], atol=1e-12)


def test_an_empty_cluster_is_moved_onto_the_farthest_point():
    x = np.array([[0.0], [0.1], [0.2], [1.0], [1.1], [3.0]])
    start = np.array([[0.1], [1.0], [100.0]])  # the third centroid gets no point
    centroids, labels, _, _ = lloyd(x, start, iterations=10)
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 2])  # every code is used again
    np.testing.assert_allclose(centroids[:, 0], [0.1, 1.05, 3.0])  # 3.0 was the farthest
    np.testing.assert_allclose(squared_distances(x, centroids).min(axis=1),
                               ((x - centroids[labels]) ** 2).sum(axis=1), atol=1e-12)


def test_semantic_ids_disambiguate_collisions_in_row_order():
    codes = np.array([[0, 1], [0, 1], [2, 3], [0, 1], [2, 3], [1, 1]])
    ids = semantic_ids(codes)
    np.testing.assert_array_equal(ids[:, :2], codes)
    np.testing.assert_array_equal(ids[:, 2], [0, 1, 0, 2, 1, 0])
    assert len(np.unique(ids, axis=0)) == len(ids)
    assert collision_rate(codes) == pytest.approx(0.5)  # 3 distinct tuples for 6 items
    assert collision_rate(ids) == 0.0
    assert collision_rate(codes) == pytest.approx(np.mean(ids[:, -1] > 0))


def test_semantic_ids_of_a_coarse_quantiser_are_unique():
    x = np.random.default_rng(6).normal(size=(200, 4))
    codes = ResidualKMeans(levels=2, codes=3, seed=0).fit(x).encode(x)
    ids = semantic_ids(codes)
    assert ids.shape == (200, 3)
    assert len(np.unique(ids, axis=0)) == 200
    assert collision_rate(codes) >= 1 - 9 / 200  # at most 3 * 3 distinct tuples
    for row in (0, 57, 199):  # the extra code counts earlier rows with the same tuple
        same = (codes[:row] == codes[row]).all(axis=1).sum()
        assert ids[row, -1] == same


def test_bad_input_gets_clear_errors():
    x = np.random.default_rng(7).normal(size=(20, 3))
    with pytest.raises(ValueError, match="2-D"):
        ResidualKMeans(codes=2).fit(x[0])
    with pytest.raises(ValueError, match="empty"):
        ResidualKMeans(codes=2).fit(np.zeros((0, 3)))
    bad = x.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ResidualKMeans(codes=2).fit(bad)
    with pytest.raises(ValueError, match="codes <= 20"):
        ResidualKMeans(codes=32).fit(x)
    quantiser = ResidualKMeans(levels=2, codes=4).fit(x)
    with pytest.raises(ValueError, match="dimensions"):
        quantiser.encode(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"0\.\.3"):
        quantiser.decode(np.array([[0, 4]]))
    with pytest.raises(ValueError, match="one column per level"):
        quantiser.decode(np.array([[0, 1, 2]]))
    with pytest.raises(RuntimeError, match="not fitted"):
        ResidualKMeans().encode(x)
    with pytest.raises(ArgumentError, match="levels"):
        ResidualKMeans(levels=0)
    with pytest.raises(ValueError, match="integers"):
        semantic_ids(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="non-empty"):
        collision_rate(np.zeros((0, 2), dtype=int))
