"""Checks for the exercises of notebook 10 (the Transformer recommender).

Used by ``exercises/10_transformer_recommender.ipynb``:
``from recsys_lib.exercises.ex10 import *``. Every expected value is computed on small
hand-made inputs, from the course library (``recsys_lib.attention``, ``recsys_lib.metrics``)
or from two small reference functions that the tests check against ``left_pad`` and
``training_windows`` of ``recsys_lib.models.sasrec`` (not imported here, so that checking an
answer does not start TensorFlow).
"""

from __future__ import annotations

import math

import numpy as np

from recsys_lib.attention import causal_mask, combine_masks, padding_mask
from recsys_lib.exercises.core import ExerciseSet, Incorrect, Question, call_answer
from recsys_lib.metrics import ndcg_at_k

__all__ = ["q1", "q2", "q3", "q4", "summary", "assert_all_correct", "EXERCISES"]


def _left_pad(sequences: list, max_len: int) -> np.ndarray:
    """Reference for ``recsys_lib.models.sasrec.left_pad`` without importing Keras.

    ``tests/test_exercises_ex10.py`` checks that the two agree.
    """
    out = np.zeros((len(sequences), max_len), dtype=np.int64)
    for row, seq in enumerate(sequences):
        seq = np.asarray(seq, dtype=np.int64)[-max_len:]
        if len(seq):
            out[row, max_len - len(seq):] = seq
    return out


def _last_window(history: list, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The most recent window of ``training_windows([history], max_len)`` (same check)."""
    window = list(history)[-(max_len + 1):]
    return _left_pad([window[:-1]], max_len)[0], _left_pad([window[1:]], max_len)[0]


def _int_vector(result, what: str, length: int) -> np.ndarray:
    """The learner's result as a 1-D integer array of ``length``, or Incorrect saying why."""
    if not isinstance(result, np.ndarray):
        raise Incorrect(f"{what} should be a NumPy array, got {type(result).__name__}")
    if result.shape != (length,):
        raise Incorrect(f"{what} should have shape ({length},) (max_len entries), got "
                        f"{result.shape}")
    if not np.issubdtype(result.dtype, np.integer):
        raise Incorrect(f"{what} should hold integer item indices, got dtype {result.dtype}; "
                        "an Embedding layer needs integers (np.zeros(..., dtype=int))")
    return result


# ----------------------------------------------------------------------------------- q1
_Q1_CASES = [(np.array([2, 5, 0, 1]), 5), (np.array([3, 1]), 4), (np.array([6]), 6)]


def _q1_reference(lengths: np.ndarray, T: int) -> np.ndarray:
    keys = padding_mask(lengths, T, pad_side="left")  # (batch, 1, T)
    return combine_masks(keys, causal_mask(T))  # (batch, T, T)


def _check_mask_from_lengths(func) -> None:
    for lengths, T in _Q1_CASES:
        got = call_answer(func, lengths.copy(), T)
        batch = len(lengths)
        if not isinstance(got, np.ndarray):
            raise Incorrect(f"Return a NumPy array, got {type(got).__name__}")
        if got.shape != (batch, T, T):
            raise Incorrect(f"For lengths {lengths.tolist()} and T={T} return shape "
                            f"(batch, T, T) = {(batch, T, T)}, got {got.shape}")
        if got.dtype != bool:
            raise Incorrect(f"Return a boolean array (True = may attend), got dtype {got.dtype}")
        want = _q1_reference(lengths, T)
        if np.array_equal(got, want):
            continue
        causal = causal_mask(T)
        left = padding_mask(lengths, T, pad_side="left")
        right = padding_mask(lengths, T, pad_side="right")
        if np.array_equal(got, ~want):
            raise Incorrect("Your mask is inverted: True must mean 'may attend'")
        if np.array_equal(got, combine_masks(right, causal)):
            raise Incorrect("You put the real items first (right padding). The batch is padded "
                            "on the LEFT: a history of length L fills the last L positions, "
                            "T - L ... T - 1")
        if np.array_equal(got, combine_masks(left, causal.T)):
            raise Incorrect("Your mask lets a query see the future: query t may attend to keys "
                            "s <= t (np.tril), not s >= t")
        if np.array_equal(got, np.broadcast_to(causal, got.shape)):
            raise Incorrect("Your mask is only causal: the padding keys must be hidden too")
        if np.array_equal(got, np.broadcast_to(left, got.shape)):
            raise Incorrect("Your mask only hides padding: the future keys s > t must be "
                            "hidden too")
        if np.array_equal(got, causal[None] & np.swapaxes(left, 1, 2)):
            raise Incorrect("You masked the padding queries (rows) instead of the padding keys "
                            "(columns): the key axis is the last one, real[:, None, :]")
        b, t, s = (int(v) for v in np.argwhere(got != want)[0])
        raise Incorrect(f"Lengths {lengths.tolist()}, T={T}: sequence {b}, query {t}, key {s}: "
                        f"expected {bool(want[b, t, s])}, got {bool(got[b, t, s])}")


# ----------------------------------------------------------------------------------- q2
# (ranking, relevant item): ranks 1, 3, 10, 11, absent, and a list shorter than 10
_Q2_CASES = [
    ([7, 3, 9, 1, 4], 7),
    ([5, 8, 2, 6, 1, 0, 3], 2),
    (list(range(100, 112)), 109),
    (list(range(100, 112)), 110),
    ([4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], 99),
    ([42, 17], 17),
]


_RANK_ONE = ("Ranks start at 1 and the discount is 1 / log2(rank + 1), so rank 1 gives "
             "1 / log2(2) = 1 (with a 0-based position i that is 1 / log2(i + 2))")


def _rank(ranking: list, item) -> int | None:
    return ranking.index(item) + 1 if item in ranking else None


def _check_ndcg(func) -> None:
    for ranking, item in _Q2_CASES:
        try:
            got = call_answer(func, list(ranking), item)
        except Incorrect as err:
            if "ZeroDivisionError" in str(err):
                raise Incorrect(f"{err}. {_RANK_ONE}") from None
            raise
        if isinstance(got, bool) or not isinstance(got, int | float | np.integer | np.floating):
            raise Incorrect(f"Return a number (a float), got {type(got).__name__}")
        got = float(got)
        want = ndcg_at_k(ranking, {item}, 10)
        if math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
            continue
        rank = _rank(ranking, item)
        where = (f"the relevant item {item} at rank {rank} of {ranking}" if rank
                 else f"a ranking {ranking} without the relevant item {item}")
        if math.isinf(got) or math.isnan(got):
            raise Incorrect(f"For {where} you returned {got}. {_RANK_ONE}")
        if rank is not None and rank > 10:
            raise Incorrect(f"For {where} you returned {got:.4f}; only the top 10 count, so an "
                            "item below rank 10 gives 0")
        if rank is not None:
            if math.isclose(got, 1 / rank):
                raise Incorrect(f"For {where} you returned 1 / rank = {got:.4f}: that is the "
                                "reciprocal rank (MRR). NDCG discounts by 1 / log2(rank + 1)")
            if math.isclose(got, 1 / math.log(rank + 1)):
                raise Incorrect(f"For {where} you used the natural logarithm; NDCG uses log2")
            if rank > 1 and math.isclose(got, 1 / math.log2(rank)):
                raise Incorrect(f"For {where} you returned 1 / log2(rank) = {got:.4f}; the "
                                "discount is 1 / log2(rank + 1) with ranks starting at 1")
            if rank < 10 and math.isclose(got, 1 / math.log2(rank + 2)):
                raise Incorrect(f"For {where} you returned {got:.4f} = 1 / log2(rank + 2): "
                                "one rank too far down; the top item has rank 1, discount "
                                "1 / log2(2) = 1")
        raise Incorrect(f"For {where} expected NDCG@10 = {want:.4f}, got {got:.4f}")


# ----------------------------------------------------------------------------------- q3
_Q3_CASES = [([11, 12, 13, 14, 15, 16, 17], 4), ([21, 22], 5), ([31, 32, 33], 3), ([], 3)]


def _check_left_pad(func) -> None:
    for history, max_len in _Q3_CASES:
        got = _int_vector(call_answer(func, list(history), max_len), "Your padded history",
                          max_len)
        want = _left_pad([np.array(history, dtype=np.int64)], max_len)[0]
        if np.array_equal(got, want):
            continue
        kept = history[-max_len:]
        if len(history) > max_len and np.array_equal(
                got, _left_pad([np.array(history[:max_len])], max_len)[0]):
            raise Incorrect(f"For {history} with max_len={max_len} you kept the OLDEST items "
                            f"{history[:max_len]}; keep the most recent ones, {kept} "
                            "(history[-max_len:])")
        if 0 < len(kept) < max_len and np.array_equal(got[:len(kept)], kept):
            raise Incorrect(f"For {history} with max_len={max_len} you padded on the right "
                            f"({got.tolist()}); pad on the left, so that the most recent item "
                            f"is always the last position: {want.tolist()}")
        if np.array_equal(got[::-1], want):
            raise Incorrect("Your history is reversed: keep the order oldest -> newest, with "
                            "the newest item last")
        raise Incorrect(f"For {history} with max_len={max_len} expected {want.tolist()}, got "
                        f"{got.tolist()}")


# ----------------------------------------------------------------------------------- q4
_Q4_CASES = [([11, 12, 13, 14, 15, 16, 17], 4), ([21, 22, 23], 5), ([31, 32], 3),
             ([41, 42, 43, 44, 45], 4)]


def _check_next_item_window(func) -> None:
    for history, max_len in _Q4_CASES:
        result = call_answer(func, list(history), max_len)
        if not isinstance(result, tuple) or len(result) != 2:
            raise Incorrect("Return a tuple (inputs, targets) of two arrays")
        inputs = _int_vector(result[0], "inputs", max_len)
        targets = _int_vector(result[1], "targets", max_len)
        want_in, want_tg = _last_window(history, max_len)
        if np.array_equal(inputs, want_in) and np.array_equal(targets, want_tg):
            continue
        case = f"For the history {history} with max_len={max_len}"
        if np.array_equal(inputs, want_tg) and np.array_equal(targets, want_in):
            raise Incorrect(f"{case} inputs and targets are swapped: the model reads "
                            "history[:-1] and predicts history[1:]")
        if np.array_equal(inputs, _left_pad([np.array(history)], max_len)[0]):
            raise Incorrect(f"{case} your inputs end with the last item {history[-1]}, which "
                            "has no next item to predict: the inputs are history[:-1]")
        if np.array_equal(inputs, targets):
            raise Incorrect(f"{case} inputs and targets are the same: the target at each "
                            "position is the item that comes NEXT, targets = history[1:]")
        if np.array_equal(targets, _left_pad([np.array(history[:-2])], max_len)[0]):
            raise Incorrect(f"{case} each of your targets is the item BEFORE its input; the "
                            "target is the item after it: inputs = history[:-1], targets = "
                            "history[1:]")
        real = np.count_nonzero(want_in)
        if real < max_len and np.array_equal(inputs[:real], want_in[-real:]):
            raise Incorrect(f"{case} you padded on the right; pad on the left (0s first), as "
                            "the model expects the newest item at the last position")
        if len(history) - 1 > max_len and np.array_equal(
                inputs, np.array(history[:max_len])):
            raise Incorrect(f"{case} you kept the oldest items; the window holds the most "
                            "recent ones, (history[:-1])[-max_len:]")
        raise Incorrect(f"{case} expected inputs {want_in.tolist()} and targets "
                        f"{want_tg.tolist()}, got {inputs.tolist()} and {targets.tolist()}")


EXERCISES = ExerciseSet("ex10", [
    Question("q1", "attention mask of a left-padded batch", _check_mask_from_lengths,
             "Position s is real when s >= T - length (the padding is on the left): "
             "real = np.arange(T)[None, :] >= T - lengths[:, None]. Combine it with "
             "np.tril(np.ones((T, T), dtype=bool)) as causal[None] & real[:, None, :]."),
    Question("q2", "NDCG@10 with one relevant item", _check_ndcg,
             "Find the 1-based rank of the relevant item in ranking[:10]; the answer is "
             "1 / math.log2(rank + 1), or 0.0 if it is not in the top 10. The ideal DCG is 1."),
    Question("q3", "left truncation and left padding", _check_left_pad,
             "kept = history[-max_len:] if max_len else []; start from np.zeros(max_len, "
             "dtype=int) and write kept into the last len(kept) positions."),
    Question("q4", "next-item inputs and targets", _check_next_item_window,
             "inputs = history[:-1] and targets = history[1:]; keep the last max_len of each "
             "and left-pad both, as in question 3."),
])
q1, q2, q3, q4 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
