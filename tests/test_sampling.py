"""Negative sampling: never a seen item, the same stream as plain uniform draws, popularity."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lib.checks import ArgumentError
from recsys_lib.sampling import interaction_keys, is_seen, sample_negatives


def matrix_of(dense) -> sp.csr_matrix:
    return sp.csr_matrix(np.asarray(dense, dtype=float))


def test_keys_and_membership():
    matrix = matrix_of([[1, 0, 1], [0, 1, 0]])
    keys = interaction_keys(matrix)
    np.testing.assert_array_equal(keys, [0, 2, 4])
    np.testing.assert_array_equal(is_seen(keys, np.array([0, 0, 1, 1]), np.array([0, 1, 1, 2]),
                                          3), [True, False, True, False])
    assert not is_seen(interaction_keys(matrix_of([[0, 0]])), np.array([0]), np.array([1]),
                       2).any()


def test_negatives_are_never_seen_and_have_the_right_shape():
    rng = np.random.default_rng(0)
    dense = (rng.random((30, 12)) < 0.5).astype(float)
    dense[:, 0] = 0  # every user has at least one unseen item
    users = np.repeat(np.arange(30), 20)
    negatives = sample_negatives(matrix_of(dense), users, np.random.default_rng(1), n=3)
    assert negatives.shape == (600, 3) and negatives.dtype == np.int64
    assert not dense[users[:, None], negatives].any()


def test_uniform_draws_are_the_plain_generator_stream_when_nothing_is_seen():
    """Reproducibility contract used by notebook 04: draw all, then redraw collisions."""
    matrix = matrix_of(np.zeros((4, 50)))
    got = sample_negatives(matrix, np.array([0, 1, 2, 3]), np.random.default_rng(5), n=2)
    np.testing.assert_array_equal(got.ravel(), np.random.default_rng(5).integers(0, 50, 8))


def test_with_seen_items_allowed_the_draws_are_plain_uniform():
    matrix = matrix_of(np.ones((2, 6)))  # everything seen: only possible with exclude_seen=False
    got = sample_negatives(matrix, np.array([0, 1]), np.random.default_rng(3), n=4,
                           exclude_seen=False)
    np.testing.assert_array_equal(got.ravel(), np.random.default_rng(3).integers(0, 6, 8))


def test_popularity_sampling_follows_counts_to_the_power_alpha():
    counts = np.array([1, 4, 16, 0])
    dense = np.zeros((16, 4))
    for item, count in enumerate(counts):
        dense[:count, item] = 1
    matrix = matrix_of(dense)
    draws = sample_negatives(matrix, np.zeros(20000, dtype=int), np.random.default_rng(0),
                             exclude_seen=False, distribution="popularity", alpha=0.5)
    share = np.bincount(draws.ravel(), minlength=4) / draws.size
    np.testing.assert_allclose(share, [1 / 7, 2 / 7, 4 / 7, 0.0], atol=0.01)


def test_popularity_with_exclusion_skips_seen_items():
    dense = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1]], dtype=float)
    users = np.repeat([0, 1, 2], 200)
    draws = sample_negatives(matrix_of(dense), users, np.random.default_rng(0), n=2,
                             distribution="popularity")
    assert not dense[users[:, None], draws].any()
    assert set(np.unique(draws[users == 0])) == {2, 3}


def test_same_generator_state_same_negatives():
    dense = np.eye(5)
    a = sample_negatives(matrix_of(dense), np.arange(5), np.random.default_rng(9), n=3)
    b = sample_negatives(matrix_of(dense), np.arange(5), np.random.default_rng(9), n=3)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"n": 0}, ArgumentError, "n must be an integer >= 1"),
    ({"distribution": "zipf"}, ArgumentError, "distribution must be one of"),
    ({"distribution": "popularity", "alpha": -1.0}, ArgumentError, "alpha"),
    ({"users": np.array([0, 3])}, ArgumentError, r"indices in \[0, 3\)"),
    ({"users": np.array([0.5])}, ArgumentError, "1-D array of user indices"),
    ({"users": np.array([2])}, ValueError, "every item that can be drawn"),
])
def test_bad_input_is_explained(kwargs, error, message):
    dense = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1]], dtype=float)  # user 2 has seen all
    args = {"users": np.array([0, 1]), **kwargs}
    users = args.pop("users")
    with pytest.raises(error, match=message):
        sample_negatives(matrix_of(dense), users, np.random.default_rng(0), **args)
