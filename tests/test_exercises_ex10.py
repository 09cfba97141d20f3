"""Checkers of ex10: a correct answer passes, wrong answers fail with a useful message."""

import math

import numpy as np
from exercise_harness import make_case_tests

from recsys_lib.metrics import ndcg_at_k
from recsys_lib.models.sasrec import left_pad, training_windows


def _mask(lengths, T, side="left"):
    positions = np.arange(T)[None, :]
    real = positions >= T - lengths[:, None] if side == "left" else positions < lengths[:, None]
    return np.tril(np.ones((T, T), dtype=bool))[None] & real[:, None, :]


def _real(lengths, T):
    return np.arange(T)[None, :] >= T - lengths[:, None]


def _causal(lengths, T):
    return np.broadcast_to(np.tril(np.ones((T, T), dtype=bool)), (len(lengths), T, T)).copy()


def _ndcg(ranking, item, discount=lambda rank: 1 / math.log2(rank + 1), k=10):
    top = list(ranking)[:k]
    return discount(top.index(item) + 1) if item in top else 0.0


def _pad(history, max_len):
    return left_pad([np.array(history, dtype=np.int64)], max_len)[0].astype(np.int64)


def _right_pad(history, max_len):
    kept = list(history)[-max_len:]
    return np.array(kept + [0] * (max_len - len(kept)), dtype=np.int64)


def _window(history, max_len):
    inputs, targets = training_windows([np.array(history)], max_len)
    return inputs[0].astype(np.int64), targets[0].astype(np.int64)


# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (_mask,
           [(lambda n, T: ~_mask(n, T), "inverted"),
            (lambda n, T: _mask(n, T, side="right"), "LEFT"),
            (lambda n, T: np.triu(np.ones((T, T), dtype=bool))[None] & _real(n, T)[:, None, :],
             "future"),
            (_causal, "only causal"),
            (lambda n, T: np.broadcast_to(_real(n, T)[:, None, :], (len(n), T, T)).copy(),
             "only hides padding"),
            (lambda n, T: np.tril(np.ones((T, T), dtype=bool))[None] & _real(n, T)[:, :, None],
             "queries (rows)"),
            (lambda n, T: _mask(n, T).astype(int), "boolean"),
            (lambda n, T: _real(n, T), "return shape (batch, T, T)"),
            (lambda n, T: _mask(n, T).tolist(), "NumPy array"),
            (lambda n, T: np.tril(np.ones((T, T), dtype=bool), -1)[None]
             & _real(n, T)[:, None, :], "expected")]),
    "q2": (lambda ranking, item: ndcg_at_k(ranking, {item}, 10),
           [(lambda r, i: _ndcg(r, i, lambda rank: 1 / math.log2(rank)), "0-based"),
            (lambda r, i: _ndcg(r, i, k=20), "below rank 10"),
            (lambda r, i: _ndcg(r, i, lambda rank: 1 / rank), "MRR"),
            (lambda r, i: _ndcg(r, i, lambda rank: 1 / math.log(rank + 1)), "natural"),
            (lambda r, i: _ndcg(r, i, lambda rank: 1 / math.log2(rank + 2)), "rank + 2"),
            (lambda r, i: str(_ndcg(r, i)), "a float"),
            (lambda r, i: 0.5, "expected NDCG@10")]),
    "q3": (_pad,
           [(lambda h, m: _pad(list(h)[:m], m), "OLDEST"),
            (_right_pad, "right"),
            (lambda h, m: _pad(h, m)[::-1].copy(), "reversed"),
            (lambda h, m: _pad(h, m).astype(float), "integer"),
            (lambda h, m: _pad(h, m + 1), "shape"),
            (lambda h, m: list(_pad(h, m)), "NumPy array"),
            (lambda h, m: _pad(h, m) + 1, "expected")]),
    "q4": (_window,
           [(lambda h, m: (_pad(h[:-1], m), _pad(h[:-1], m)), "the same"),
            (lambda h, m: (_pad(h[1:], m), _pad(h[:-1], m)), "swapped"),
            (lambda h, m: (_pad(h, m), _pad(h[1:], m)), "has no next item"),
            (lambda h, m: (_right_pad(h[:-1], m), _right_pad(h[1:], m)), "right"),
            (lambda h, m: (_pad(h[:-1], m), _pad(h[:-2], m)), "BEFORE"),
            (lambda h, m: _pad(h, m), "tuple"),
            (lambda h, m: (_pad(h[:-1], m), list(_pad(h[1:], m))), "NumPy array"),
            (lambda h, m: (_pad(h[:-1], m), _pad(h[1:], m) + 1), "expected")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex10", CASES)


def test_reference_functions_of_the_checkers_match_the_library():
    from recsys_lib.exercises import ex10

    rng = np.random.default_rng(0)
    for _ in range(50):
        history = rng.integers(1, 30, size=rng.integers(2, 15)).tolist()
        max_len = int(rng.integers(1, 8))
        np.testing.assert_array_equal(ex10._left_pad([history], max_len),
                                      left_pad([np.array(history)], max_len))
        inputs, targets = training_windows([np.array(history)], max_len)
        got_inputs, got_targets = ex10._last_window(history, max_len)
        np.testing.assert_array_equal(got_inputs, inputs[0])
        np.testing.assert_array_equal(got_targets, targets[0])
    assert ex10._left_pad([[]], 3).tolist() == [[0, 0, 0]]
