"""Checks for the exercises of notebook 11 (pre-training and fine-tuning: from BERT to BERT4Rec).

Used by ``exercises/11_pretraining_bert4rec.ipynb``:
``from recsys_lib.exercises.ex11 import *``. Every expected value is computed here, in the
checker's own process, on inputs it makes itself:

* question 1 (BERT's 80-10-10 masking) is random, so it is checked by what must hold for every
  draw on hand-made batches, and by its proportions on two large random batches, within
  :data:`TOLERANCE_SD` binomial standard deviations (a correct implementation fails with a
  probability of about 1e-9 per proportion);
* question 2 (the masked cross-entropy) against a log-sum-exp reference;
* questions 3 and 4 (attention masks and the leak) on hand-made sequences;
* question 5 (pre-trained vs from scratch) against :func:`recsys_lib.stats.paired_bootstrap`.

``tests/test_exercises_ex11.py`` checks the references against the library
(:func:`recsys_lib.models.transformer.cloze_mask`, Keras' cross-entropy, the attention of the
Transformer block). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from recsys_lib.exercises.core import ExerciseSet, Incorrect, Question, as_number, call_answer
from recsys_lib.stats import paired_bootstrap

__all__ = ["q1", "q2", "q3", "q4", "q5", "summary", "assert_all_correct", "EXERCISES",
           "PER_USER_NDCG"]

#: How many binomial standard deviations a proportion of question 1 may be off.
TOLERANCE_SD = 6.0


def _first(where: np.ndarray) -> tuple[int, ...]:
    """The first index (row, position) where a boolean array is True."""
    return tuple(int(i) for i in np.argwhere(where)[0])


# ----------------------------------------------------------------------------------- q1
#: (sequences, n_items, rate, seed): small hand-made batches, left-padded, 0 = padding
_Q1_SEQUENCES = np.array([[0, 0, 3, 1, 2], [4, 2, 5, 1, 3], [0, 0, 0, 0, 0], [0, 0, 0, 0, 6]])
_Q1_HAND = [
    (_Q1_SEQUENCES, 6, 0.5, 1),
    (_Q1_SEQUENCES, 6, 1.0, 2),
    (np.array([[7, 1, 5, 2, 4, 3, 6, 2], [0, 0, 0, 7, 7, 1, 1, 3]]), 7, 0.3, 3),
]
#: (n_items, rate, seed of the batch, seed of the masks): a large catalogue, then a tiny one
#: that makes the random replacements easy to count
_Q1_LARGE = (1000, 0.15, 20, 11)
_Q1_SMALL = (3, 0.5, 21, 13)


def random_batch(seed: int, n_items: int, batch: int = 1500, T: int = 64,
                 min_length: int = 30) -> np.ndarray:
    """A left-padded (batch, T) batch of random items, each history at least ``min_length``
    long (so that "at least one chosen item per sequence" barely moves the proportions)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, T + 1, batch)
    sequences = rng.integers(1, n_items + 1, (batch, T))
    sequences[np.arange(T)[None, :] < (T - lengths)[:, None]] = 0
    return sequences


def _q1_call(func, sequences: np.ndarray, n_items: int, rate: float, seed: int,
             case: str) -> tuple[np.ndarray, np.ndarray]:
    given = sequences.copy()
    result = call_answer(func, given, n_items, np.random.default_rng(seed), rate)
    if not np.array_equal(given, sequences):
        raise Incorrect(f"{case} your function changed the caller's sequences: work on a copy "
                        "(inputs = sequences.copy()). Training masks the same windows afresh "
                        "every epoch, so they must stay intact")
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise Incorrect(f"Return a tuple (inputs, targets) of two arrays, got "
                        f"{type(result).__name__}")
    for name, array in zip(("inputs", "targets"), result, strict=True):
        if not isinstance(array, np.ndarray):
            raise Incorrect(f"{case} {name} should be a NumPy array, got "
                            f"{type(array).__name__}")
        if array.shape != sequences.shape:
            raise Incorrect(f"{case} {name} should have the shape of the sequences, "
                            f"{sequences.shape}, got {array.shape}")
        if not np.issubdtype(array.dtype, np.integer):
            raise Incorrect(f"{case} {name} should hold integer item indices, got dtype "
                            f"{array.dtype} (an Embedding layer needs integers)")
    return result[0], result[1]


def _q1_structure(sequences: np.ndarray, n_items: int, inputs: np.ndarray,
                  targets: np.ndarray, case: str) -> None:
    """What must hold for every draw of the masking."""
    token = n_items + 1
    padding = sequences == 0
    if (padding & (inputs != 0)).any():
        b, t = _first(padding & (inputs != 0))
        raise Incorrect(f"{case} the padding at row {b}, position {t} became {inputs[b, t]}: "
                        "padding (0) is never chosen; choose among the real positions only "
                        "(sequences > 0)")
    if (padding & (targets != 0)).any():
        b, t = _first(padding & (targets != 0))
        raise Incorrect(f"{case} the padding at row {b}, position {t} has the target "
                        f"{targets[b, t]}: padding is never chosen, its target is 0 (no loss)")
    chosen = targets != 0
    wrong = chosen & (targets != sequences)
    if wrong.any():
        b, t = _first(wrong)
        if np.array_equal(targets[chosen], inputs[chosen]):
            raise Incorrect(f"{case} your targets hold the corrupted inputs ([MASK] or the "
                            f"random item; row {b}, position {t} has {targets[b, t]}): a "
                            "target is the ORIGINAL item, taken from the sequences before "
                            "you change them")
        raise Incorrect(f"{case} row {b}, position {t} has the target {targets[b, t]}, but "
                        f"the original item there is {sequences[b, t]}: the target of a "
                        "chosen position is its original item")
    changed = ~chosen & (inputs != sequences)
    if changed.any():
        b, t = _first(changed)
        raise Incorrect(f"{case} the item {sequences[b, t]} at row {b}, position {t} became "
                        f"{inputs[b, t]}, but its target is 0: every position you change "
                        "must get a target (its original item), those that get a random item "
                        "too; and a position that is not chosen keeps its item")
    invalid = chosen & ((inputs < 1) | (inputs > token))
    if invalid.any():
        b, t = _first(invalid)
        if inputs[b, t] == 0:
            raise Incorrect(f"{case} the chosen item at row {b}, position {t} became 0, the "
                            "padding index: a random item is drawn from 1..n_items, "
                            "rng.integers(1, n_items + 1) (the upper bound is excluded)")
        raise Incorrect(f"{case} the chosen item at row {b}, position {t} became "
                        f"{inputs[b, t]}, which is neither an item (1..{n_items}) nor the mask "
                        f"token n_items + 1 = {token}")


def _share_ok(observed: float, p: float, n: int) -> bool:
    """Whether a proportion over n draws is within TOLERANCE_SD binomial sd of p."""
    return abs(observed - p) <= TOLERANCE_SD * math.sqrt(p * (1 - p) / n) + 1e-12


def _q1_proportions(sequences: np.ndarray, n_items: int, rate: float, inputs: np.ndarray,
                    targets: np.ndarray, case: str) -> None:
    """The shares of chosen positions, and of [MASK], random and unchanged among them."""
    real, chosen = sequences > 0, targets != 0
    n_real, n_chosen = int(real.sum()), int(chosen.sum())
    share = n_chosen / n_real
    if not _share_ok(share, rate, n_real):
        if share > 0.95:
            raise Incorrect(f"{case} {share:.0%} of the real positions have a target: only the "
                            f"chosen positions (a share rate = {rate:.0%}) get one, all the "
                            "others get 0 (no loss there, and nothing to predict)")
        raise Incorrect(f"{case} you chose {share:.2%} of the real positions (those with a "
                        f"target), expected about rate = {rate:.0%}: choose each real position "
                        "independently with probability rate, rng.random(shape) < rate")
    token = n_items + 1
    masked = float(np.mean(inputs[chosen] == token))
    same = float(np.mean(inputs[chosen] == sequences[chosen]))
    other = 1.0 - masked - same
    # a random item equals the original one 1 time in n_items; drawing it among the *other*
    # items only (never the original) is accepted too
    expected_same, expected_other = 0.1 + 0.1 / n_items, 0.1 * (1 - 1 / n_items)
    if _share_ok(masked, 0.8, n_chosen) and (
            (_share_ok(same, expected_same, n_chosen) and _share_ok(other, expected_other,
                                                                    n_chosen))
            or (_share_ok(same, 0.1, n_chosen) and _share_ok(other, 0.1, n_chosen))):
        return
    seen = (f"{case} of the {n_chosen} chosen positions {masked:.1%} became [MASK], "
            f"{other:.1%} another item and {same:.1%} kept their item")
    if masked == 0:
        if np.mean(inputs[chosen] == n_items) > 0.5:
            raise Incorrect(f"{seen}, and most became {n_items}: that is the last real item; "
                            f"the mask token is n_items + 1 = {token}")
        raise Incorrect(f"{seen}: 80% should become the mask token n_items + 1 = {token}")
    if masked == 1:
        raise Incorrect(f"{seen}: you replaced every chosen item by [MASK]. BERT's rule "
                        "replaces 80% by [MASK], 10% by a random item and leaves 10% as they "
                        "are: the model must also make sense of positions that hold a real "
                        "(possibly wrong) item, not learn that 'the answer is always behind "
                        "[MASK]'")
    if _share_ok(masked, 0.8 + 0.1 / (n_items + 1), n_chosen) and not _share_ok(
            masked, 0.8, n_chosen):
        raise Incorrect(f"{seen}: too many [MASK] tokens for 80%. Your random items seem to be "
                        f"drawn from 1..n_items + 1, which includes the mask token {token}: "
                        "draw them from 1..n_items, rng.integers(1, n_items + 1)")
    if same < 0.02:
        raise Incorrect(f"{seen}: none (or almost none) kept its item; BERT leaves 10% of the "
                        "chosen items unchanged (they still have their target)")
    raise Incorrect(f"{seen}; expected about 80%, 10% and 10% (BERT's rule: draw one "
                    "uniform number per chosen position, u < 0.8 gives [MASK], "
                    "0.8 <= u < 0.9 a random item, the rest stay)")


def _q1_random_items(sequences: np.ndarray, n_items: int, inputs: np.ndarray,
                     targets: np.ndarray, case: str) -> None:
    """On a tiny catalogue, every item should appear as a random replacement."""
    replaced = (targets != 0) & (inputs != sequences) & (inputs != n_items + 1)
    found = sorted(set(np.unique(inputs[replaced]).tolist()))
    expected = list(range(1, n_items + 1))
    if found == expected:
        return
    if found == expected[:-1]:
        raise Incorrect(f"{case} the item {n_items} never appears as a random replacement: "
                        "rng.integers(low, high) excludes high, so the random item is "
                        "rng.integers(1, n_items + 1)")
    raise Incorrect(f"{case} the random replacements are only the items {found}: draw each "
                    "one uniformly from 1..n_items, one draw per replaced position")


def _check_cloze_mask(func, seed_offset: int = 0) -> None:
    for sequences, n_items, rate, seed in _Q1_HAND:
        case = f"For the sequences {sequences.tolist()} with n_items={n_items} and rate={rate}"
        inputs, targets = _q1_call(func, sequences, n_items, rate, seed + seed_offset, case)
        _q1_structure(sequences, n_items, inputs, targets, case)
        if rate == 1.0 and not np.array_equal(targets, sequences):
            b, t = _first(targets != sequences)
            if (np.array_equal(targets != 0, inputs == n_items + 1)
                    and np.count_nonzero(targets) > np.count_nonzero(sequences) / 2):
                raise Incorrect(f"{case} only the positions that became [MASK] have a target "
                                f"(row {b}, position {t} kept its item {inputs[b, t]} and has "
                                "none): every chosen position must get a target, also those "
                                "that keep their item or get a random one")
            raise Incorrect(f"{case} row {b}, position {t} has no target: with rate=1.0 every "
                            "real position is chosen, so the targets equal the sequences")

    n_items, rate, batch_seed, seed = _Q1_LARGE
    seed += seed_offset
    sequences = random_batch(batch_seed, n_items)
    case = (f"For a random batch of {len(sequences)} sequences (n_items={n_items}, "
            f"rate={rate})")
    inputs, targets = _q1_call(func, sequences, n_items, rate, seed, case)
    _q1_structure(sequences, n_items, inputs, targets, case)
    again = _q1_call(func, sequences, n_items, rate, seed, case)
    if not (np.array_equal(inputs, again[0]) and np.array_equal(targets, again[1])):
        raise Incorrect(f"{case}, called twice with np.random.default_rng({seed}), your "
                        "function masked differently: draw every random number from the rng "
                        "argument (rng.random, rng.integers), not from np.random or a new "
                        "generator, so that a seeded run can be repeated")
    other = _q1_call(func, sequences, n_items, rate, seed + 1, case)
    if np.array_equal(inputs, other[0]) and np.array_equal(targets, other[1]):
        raise Incorrect(f"{case} your function masked the same way with "
                        f"np.random.default_rng({seed}) and default_rng({seed + 1}): use the "
                        "rng you are given, not a generator with a fixed seed of your own")
    _q1_proportions(sequences, n_items, rate, inputs, targets, case)

    n_items, rate, batch_seed, seed = _Q1_SMALL
    sequences = random_batch(batch_seed, n_items)
    case = (f"For a random batch of {len(sequences)} sequences over a catalogue of only "
            f"{n_items} items (rate={rate})")
    inputs, targets = _q1_call(func, sequences, n_items, rate, seed + seed_offset, case)
    _q1_structure(sequences, n_items, inputs, targets, case)
    _q1_proportions(sequences, n_items, rate, inputs, targets, case)
    _q1_random_items(sequences, n_items, inputs, targets, case)


# ----------------------------------------------------------------------------------- q2
def _log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _picked(values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """values[b, t, targets[b, t]] as a (batch, T) array."""
    return np.take_along_axis(values, targets[..., None], axis=-1)[..., 0]


def _q2_value(logits: np.ndarray, targets: np.ndarray, how: str = "right") -> float:
    """The masked mean cross-entropy (``how="right"``) and its usual mistakes."""
    has = targets > 0
    log_p = _picked(_log_softmax(logits), targets)
    ce = -log_p
    if how == "right":
        return float(ce[has].mean())
    if how == "all_positions":
        return float(ce[has].sum() / targets.size)
    if how == "zero_targets":
        return float(ce.mean())
    if how == "sum":
        return float(ce[has].sum())
    if how == "per_sequence":
        rows = [ce[b][has[b]].mean() for b in range(len(targets)) if has[b].any()]
        return float(np.mean(rows))
    if how == "raw_logit":
        return float(-_picked(logits, targets)[has].mean())
    if how == "probability":
        return float(-np.exp(log_p)[has].mean())
    if how == "one_minus_p":
        return float((1 - np.exp(log_p))[has].mean())
    if how == "sign":
        return float(log_p[has].mean())
    if how == "time_axis":
        return float(-_picked(_log_softmax(logits, axis=1), targets)[has].mean())
    if how == "minus_one":
        return float(-_picked(_log_softmax(logits), np.maximum(targets - 1, 0))[has].mean())
    raise ValueError(how)


def _q2_cases() -> list[tuple[np.ndarray, np.ndarray, str]]:
    rng = np.random.default_rng(11)
    small = np.array([[[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0], [2.0, 1.0, 0.0, -1.0]]])
    logits = rng.normal(0.0, 2.0, (3, 6, 9))
    # rows with 1, 4 and 2 targets: a mean per sequence would weight them differently
    targets = np.array([[0, 0, 0, 0, 0, 4], [0, 3, 8, 1, 0, 2], [0, 0, 0, 5, 0, 7]])
    return [(small, np.array([[0, 2, 3]]), "the 1 x 3 x 4 logits "
                                           f"{small.tolist()} and targets [[0, 2, 3]]"),
            (logits, targets, f"random (3, 6, 9) logits and the targets {targets.tolist()}"),
            (logits + 1000.0, targets, "the same logits plus 1000 (which changes no softmax)")]


_Q2_MISTAKES = {
    "all_positions": "you divided by every position of the batch; divide by the number of "
                     "positions that have a target. Dividing by all of them multiplies the loss "
                     "by the share of positions with a target: it then changes with the mask "
                     "rate and with each batch's padding, and is no longer the cross-entropy "
                     "per prediction (compare it with log(n_items), a uniform guess)",
    "zero_targets": "you averaged over every position, those with target 0 included; a target "
                    "of 0 means 'nothing to predict here' (padding, or an item that was not "
                    "chosen): keep only the positions with targets > 0",
    "sum": "that is the sum over the positions with a target; take their mean",
    "per_sequence": "you averaged within each sequence, then over the sequences, which weights "
                    "a sequence with 1 target like one with 4; every target counts once: divide "
                    "the total by the number of targets in the batch",
    "raw_logit": "you used the raw logit of the target; the cross-entropy uses its "
                 "log-probability, the log-softmax: logit - log(sum(exp(logits)))",
    "probability": "you averaged minus the probability of the target; the cross-entropy is "
                   "minus its LOG-probability",
    "one_minus_p": "you averaged 1 - p(target); the cross-entropy is -log p(target)",
    "sign": "your loss is negative: the cross-entropy is MINUS the mean log-probability of the "
            "targets",
    "time_axis": "you took the softmax over the positions (axis 1); a position's "
                 "distribution is over the items, the last axis (axis=-1)",
    "minus_one": "column j of the logits is item j (column 0 is padding and is never a "
                 "target): index them with the targets as they are, without - 1",
}


def _check_masked_cross_entropy(func) -> None:
    cases = _q2_cases()
    answers = []
    for logits, targets, described in cases:
        got = as_number(call_answer(func, logits.copy(), targets.copy()))
        if not math.isfinite(got):
            raise Incorrect(f"For {described} you returned {got}: np.exp overflows for large "
                            "logits. Subtract each position's largest logit before np.exp "
                            "(the log-sum-exp trick): the softmax is unchanged")
        answers.append(got)
    wants = [_q2_value(logits, targets) for logits, targets, _ in cases]
    wrong = [i for i, (got, want) in enumerate(zip(answers, wants, strict=True))
             if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)]
    if not wrong:
        return
    index = wrong[0]
    logits, targets, described = cases[index]
    case = (f"For {described} you returned {answers[index]:.6g}, expected "
            f"{wants[index]:.6g}")
    for how, message in _Q2_MISTAKES.items():
        if all(math.isclose(got, _q2_value(lg, tg, how), rel_tol=1e-6, abs_tol=1e-9)
               for got, (lg, tg, _) in zip(answers, cases, strict=True)):
            raise Incorrect(f"{case}: {message}")
    if wrong == [2]:
        raise Incorrect(f"{case}: adding the same number to every logit of a position changes "
                        "no softmax, so the loss must not change; compute the log-softmax as "
                        "x - max(x) - log(sum(exp(x - max(x))))")
    raise Incorrect(f"{case}. Compute the log-softmax over the last axis, pick each target's "
                    "log-probability, and average minus it over the positions with "
                    "targets > 0")


# ----------------------------------------------------------------------------------- q3
_Q3_SEQUENCES = [np.array([0, 0, 3, 1, 2]), np.array([0, 6, 4, 2]), np.array([4, 2, 7]),
                 np.array([0, 0, 0])]


def _q3_reference(sequence: np.ndarray, causal: bool) -> np.ndarray:
    T = len(sequence)
    allowed = np.tril(np.ones((T, T), dtype=bool)) if causal else np.ones((T, T), dtype=bool)
    return allowed & (np.asarray(sequence) > 0)[None, :]


def _check_attention_mask(func) -> None:
    for sequence in _Q3_SEQUENCES:
        for causal in (True, False):
            got = call_answer(func, sequence.copy(), causal)
            T = len(sequence)
            case = f"For the sequence {sequence.tolist()} with causal={causal}"
            if not isinstance(got, np.ndarray):
                raise Incorrect(f"{case} return a NumPy array, got {type(got).__name__}")
            if got.shape != (T, T):
                raise Incorrect(f"{case} return shape (T, T) = {(T, T)}, got {got.shape}")
            if got.dtype != bool:
                raise Incorrect(f"{case} return a boolean array (True = may attend), got "
                                f"dtype {got.dtype}")
            want = _q3_reference(sequence, causal)
            if np.array_equal(got, want):
                continue
            real = sequence > 0
            tril, ones = np.tril(np.ones((T, T), dtype=bool)), np.ones((T, T), dtype=bool)
            if np.array_equal(got, ~want):
                raise Incorrect(f"{case} your mask is inverted: True must mean 'may attend'")
            if causal and np.array_equal(got, _q3_reference(sequence, False)):
                raise Incorrect(f"{case} you returned the bidirectional mask: with causal=True "
                                "query t may attend only to keys s <= t (np.tril)")
            if not causal and np.array_equal(got, _q3_reference(sequence, True)):
                raise Incorrect(f"{case} you kept the causal triangle: with causal=False (BERT, "
                                "BERT4Rec) every query may attend to every real key, the "
                                "future included")
            if causal and np.array_equal(got, np.triu(ones) & real[None, :]):
                raise Incorrect(f"{case} your mask lets a query see the future: query t (row) "
                                "may attend to keys s <= t (np.tril), not s >= t")
            if np.array_equal(got, tril if causal else ones):
                raise Incorrect(f"{case} your mask does not hide the padding: the columns of "
                                "the padding keys (sequence == 0) must be False in every row")
            if np.array_equal(got, want & real[:, None]):
                raise Incorrect(f"{case} you also hid the rows of the padding queries; hide "
                                "only the padding KEYS (columns). The block sets the outputs "
                                "at padding positions to 0 afterwards")
            if np.array_equal(got, (tril if causal else ones) & real[:, None]):
                raise Incorrect(f"{case} you hid the padding queries (rows) instead of the "
                                "padding keys (columns): the key axis is the last one, "
                                "real[None, :]")
            t, s = (int(v) for v in np.argwhere(got != want)[0])
            raise Incorrect(f"{case}: query {t}, key {s}: expected {bool(want[t, s])}, got "
                            f"{bool(got[t, s])}")


# ----------------------------------------------------------------------------------- q4
_M = 9  # the mask token of a catalogue of 8 items
#: (inputs, targets, causal, leak?, why)
_Q4_CASES = [
    ([0, 0, 3, 1, 5, 2], [0, 0, 1, 5, 2, 7], True, False,
     "the next-item layout with the causal mask: position t sees the inputs up to t, and its "
     "target is the item at t + 1, not visible yet (a target of 0 means nothing to predict, "
     "and padding keys are hidden)"),
    ([0, 0, 3, 1, 5, 2], [0, 0, 1, 5, 2, 7], False, True,
     "the next-item layout WITHOUT the causal mask: position t also sees position t + 1, "
     "whose input is its target, so the model can copy its right neighbour"),
    ([0, 0, 3, _M, 5, _M], [0, 0, 0, 1, 0, 2], False, False,
     "the cloze layout: every item to predict was replaced by [MASK], so although every "
     "position sees every other one, no target is among the inputs"),
    ([0, 0, 3, 1, 5, 2], [0, 0, 0, 1, 0, 2], False, True,
     "the cloze layout with the items left in place: a position always sees itself, and its "
     "input is its target"),
    ([0, 0, 3, 1, 5, 2], [0, 0, 0, 1, 0, 2], True, True,
     "the items to predict are still in the inputs; even with the causal mask a position "
     "sees itself (key s = t)"),
    ([0, 0, 3, 1, 5, 2], [0, 0, 3, 1, 5, 2], True, True,
     "targets equal to the inputs (the shift forgotten): each position sees its own input, "
     "on the diagonal of the causal mask"),
    ([0, 0, 3, 1, 5, 2], [0, 0, 0, 3, 1, 5], True, True,
     "each target is the item BEFORE its position, which a causal position sees (it is in "
     "its past)"),
    ([0, 4, 3, _M, 5, 2], [0, 0, 0, 1, 0, 2], False, True,
     "one chosen item (2, at the last position) was left unchanged, BERT's 10%: its target is "
     "visible, a leak by design"),
    ([0, 0, 3, 6, 5, _M], [0, 0, 0, 1, 0, 2], False, False,
     "the chosen items were replaced by another item (6) and by [MASK]: neither target is "
     "among the inputs"),
    ([0, 3, 1, 5, 2, _M], [0, 0, 0, 0, 0, 7], False, False,
     "BERT4Rec's prediction layout: [MASK] appended after the history; the item to predict "
     "is not in the inputs at all"),
    ([0, 0, 0, 4], [0, 0, 0, 7], False, False,
     "one real item and one target that is not among the inputs"),
]


def _check_has_leak(func) -> None:
    for inputs, targets, causal, leak, why in _Q4_CASES:
        got = call_answer(func, np.array(inputs), np.array(targets), causal)
        case = f"For inputs {inputs}, targets {targets} and causal={causal}"
        if not isinstance(got, bool | np.bool_):
            raise Incorrect(f"{case} return True (a leak) or False, got {type(got).__name__} "
                            f"{got!r}")
        if bool(got) != leak:
            raise Incorrect(f"{case} you returned {bool(got)}, expected {leak}: {why}")


# ----------------------------------------------------------------------------------- q5
_Q5_COLUMNS = ["difference", "low", "high", "excludes_zero"]
_Q5_RESAMPLES = 2000


def ndcg_table(seed: int, n_users: int, models: dict[float, tuple[float, float]]
               ) -> pd.DataFrame:
    """Simulated per-user NDCG@10 of a pre-trained and a from-scratch model.

    Args:
        seed: seeds the simulation.
        n_users: test users (the same at every fraction).
        models: fraction of the fine-tuning data -> (hit rate from scratch, gain of the
            pre-trained model in hit rate).

    Returns:
        Columns ``fraction, user, pretrained, scratch``, sorted by fraction then user.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for fraction, (hit_rate, gain) in models.items():
        luck = rng.random(n_users)  # the same users are easy for both models
        rank_scratch = rng.integers(1, 11, n_users)
        rank_pre = np.clip(rank_scratch + rng.integers(-3, 4, n_users), 1, 10)
        scratch = np.where(luck < hit_rate, 1 / np.log2(rank_scratch + 1), 0.0)
        pretrained = np.where(luck < hit_rate + gain, 1 / np.log2(rank_pre + 1), 0.0)
        rows.append(pd.DataFrame({"fraction": fraction, "user": np.arange(1, n_users + 1),
                                  "pretrained": pretrained.round(4),
                                  "scratch": scratch.round(4)}))
    return pd.concat(rows, ignore_index=True)


#: fraction -> (hit rate from scratch, gain of pre-training): the gain shrinks with more data
_Q5_SHOWN = (3, 500, {0.05: (0.10, 0.10), 0.1: (0.16, 0.07), 0.25: (0.24, 0.04),
                      0.5: (0.30, 0.0), 1.0: (0.33, -0.005)})
_Q5_OTHER = (7, 400, {0.1: (0.15, 0.08), 0.3: (0.25, 0.0), 1.0: (0.35, -0.09)})

#: The table question 5 shows (the checker builds its own copy).
PER_USER_NDCG = ndcg_table(*_Q5_SHOWN)


def _q5_cases() -> list[tuple[pd.DataFrame, int, str]]:
    tiny = pd.DataFrame({"fraction": [0.5] * 6 + [1.0] * 6, "user": list(range(1, 7)) * 2,
                         "pretrained": [0.5, 0.0, 1.0, 0.63, 0.0, 0.39,
                                        0.0, 0.0, 1.0, 0.43, 0.39, 0.5],
                         "scratch": [0.0, 0.0, 0.63, 0.5, 0.0, 0.0,
                                     0.0, 0.33, 1.0, 0.5, 0.0, 0.5]})
    return [(ndcg_table(*_Q5_SHOWN), 0, "For PER_USER_NDCG with seed=0"),
            (ndcg_table(*_Q5_OTHER), 7, "For another table of 400 users with seed=7"),
            (tiny, 3, "For a hand-made table of 6 users at fractions 0.5 and 1.0 with seed=3")]


def _q5_reference(table: pd.DataFrame, seed: int) -> dict[float, tuple[float, float, float]]:
    out = {}
    for fraction, group in table.groupby("fraction"):
        result = paired_bootstrap(group["pretrained"].to_numpy(), group["scratch"].to_numpy(),
                                  n_resamples=_Q5_RESAMPLES, confidence=0.95, seed=seed)
        out[float(fraction)] = (result.difference, result.low, result.high)
    return out


def _q5_intervals(table: pd.DataFrame, seed: int, how: str) -> dict[float, tuple[float, float]]:
    """The intervals of the usual mistakes, fraction by fraction."""
    out = {}
    shared = np.random.default_rng(seed)
    for fraction, group in table.groupby("fraction"):
        a, b = group["pretrained"].to_numpy(), group["scratch"].to_numpy()
        diff, n = a - b, len(a)
        rng = shared if how == "shared_rng" else np.random.default_rng(seed)
        tail = 0.05 if how == "ninety" else 0.025
        if how == "unpaired":
            first = rng.integers(0, n, (_Q5_RESAMPLES, n))
            second = rng.integers(0, n, (_Q5_RESAMPLES, n))
            means = a[first].mean(1) - b[second].mean(1)
        elif how == "spread":
            means = diff
        elif how == "normal":
            half = 1.959963984540054 * diff.std(ddof=1) / math.sqrt(n)
            out[float(fraction)] = (diff.mean() - half, diff.mean() + half)
            continue
        else:
            means = diff[rng.integers(0, n, (_Q5_RESAMPLES, n))].mean(1)
        low, high = np.quantile(means, [tail, 1 - tail])
        out[float(fraction)] = (float(low), float(high))
    return out


_Q5_MISTAKES = {
    "shared_rng": "your first fraction is right and the next ones are not: start a fresh "
                  "generator, np.random.default_rng(seed), for EACH fraction (as "
                  "paired_bootstrap(..., seed=seed) does), so that every row can be "
                  "reproduced on its own",
    "unpaired": "you resampled the two models' users independently; a PAIRED bootstrap draws "
                "one set of users per resample and takes both models' scores of those same "
                "users (resample the per-user differences)",
    "spread": "that is the spread of the per-user differences; the interval is for their MEAN: "
              "take the mean of each resample, then the quantiles of those means",
    "normal": "that is the normal-approximation interval (mean +- 1.96 standard errors); the "
              "question asks for the percentile bootstrap",
    "ninety": "that is a 90% interval (quantiles 0.05 and 0.95); a 95% interval takes the "
              "quantiles 0.025 and 0.975",
}


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _q5_frame(got, case: str) -> pd.DataFrame:
    if not isinstance(got, pd.DataFrame):
        raise Incorrect(f"{case} return a pandas DataFrame with one row per fraction, got "
                        f"{type(got).__name__}")
    if "fraction" in got.columns:
        got = got.set_index("fraction")
    missing = [c for c in _Q5_COLUMNS if c not in got.columns]
    if missing:
        raise Incorrect(f"{case} your DataFrame has no column {missing[0]!r}: it needs the "
                        f"columns {_Q5_COLUMNS}, indexed by fraction")
    return got


def _check_pretraining_gains(func) -> None:
    for table, seed, case in _q5_cases():
        got = _q5_frame(call_answer(func, table.copy(), seed), case)
        want = _q5_reference(table, seed)
        index = [float(f) for f in got.index] if all(
            isinstance(f, int | float | np.integer | np.floating) for f in got.index) else None
        if index is None or sorted(index) != sorted(want) or len(index) != len(want):
            raise Incorrect(f"{case} your rows are {list(got.index)}; expected one row per "
                            f"fraction, indexed by the fraction: {sorted(want)}")
        rows = {f: got.iloc[i] for i, f in enumerate(index)}
        for fraction in sorted(want):
            row, (difference, low, high) = rows[fraction], want[fraction]
            where = f"{case}, at fraction {fraction}"
            values = []
            for column in _Q5_COLUMNS[:3]:
                try:
                    values.append(float(row[column]))
                except (TypeError, ValueError):
                    raise Incorrect(f"{where} the {column!r} is {row[column]!r}, not a "
                                    "number") from None
            got_diff, got_low, got_high = values
            if not _same(got_diff, difference):
                if _same(got_diff, -difference):
                    raise Incorrect(f"{where} your difference is {got_diff:+.4f}, expected "
                                    f"{difference:+.4f}: the difference is pre-trained minus "
                                    "from scratch (positive = pre-training helps)")
                raise Incorrect(f"{where} your difference is {got_diff:+.4f}, expected "
                                f"{difference:+.4f}: the mean over the users of pretrained - "
                                "scratch")
            if not (_same(got_low, low) and _same(got_high, high)):
                if _same(got_low, -high) and _same(got_high, -low):
                    raise Incorrect(f"{where} your interval is [{got_low:+.4f}, "
                                    f"{got_high:+.4f}], expected [{low:+.4f}, {high:+.4f}]: "
                                    "resample pretrained - scratch, not scratch - pretrained")
                for how, message in _Q5_MISTAKES.items():
                    other_low, other_high = _q5_intervals(table, seed, how)[fraction]
                    if _same(got_low, other_low) and _same(got_high, other_high):
                        raise Incorrect(f"{where} your interval is [{got_low:+.4f}, "
                                        f"{got_high:+.4f}], expected [{low:+.4f}, "
                                        f"{high:+.4f}]: {message}")
                raise Incorrect(
                    f"{where} your interval is [{got_low:+.4f}, {got_high:+.4f}], expected "
                    f"[{low:+.4f}, {high:+.4f}]. With rng = np.random.default_rng(seed) (a "
                    "fresh one per fraction), draw the users of all resamples at once, "
                    "rng.integers(0, n_users, size=(2000, n_users)), take the mean difference "
                    "of each resample, then np.quantile(means, [0.025, 0.975])")
            flag = row["excludes_zero"]
            if not isinstance(flag, bool | np.bool_):
                raise Incorrect(f"{where} 'excludes_zero' should be True or False, got "
                                f"{type(flag).__name__} {flag!r}")
            excludes = low > 0 or high < 0
            if bool(flag) != excludes:
                side = ("lies entirely below 0 (pre-training is worse there): that excludes 0 "
                        "too" if high < 0 else
                        "lies entirely above 0" if low > 0 else "contains 0")
                raise Incorrect(f"{where} the interval [{low:+.4f}, {high:+.4f}] {side}, so "
                                f"excludes_zero is {excludes}, got {bool(flag)}: it is True "
                                "when low > 0 or high < 0")


EXERCISES = ExerciseSet("ex11", [
    Question("q1", "BERT's 80-10-10 masking of a batch", _check_cloze_mask,
             "real = sequences > 0; chosen = real & (rng.random(sequences.shape) < rate). "
             "Draw u = rng.random(sequences.shape): where chosen and u < 0.8 put n_items + 1, "
             "where chosen and 0.8 <= u < 0.9 put rng.integers(1, n_items + 1, size=count). "
             "Start from inputs = sequences.copy(); targets = np.where(chosen, sequences, 0)."),
    Question("q2", "the cross-entropy over the masked positions only",
             _check_masked_cross_entropy,
             "shifted = logits - logits.max(-1, keepdims=True); log_p = shifted - "
             "log(exp(shifted).sum(-1, keepdims=True)). Pick each target's column with "
             "np.take_along_axis(log_p, targets[..., None], -1)[..., 0], then average minus it "
             "over targets > 0 only."),
    Question("q3", "causal and bidirectional attention masks", _check_attention_mask,
             "Start from np.tril(np.ones((T, T), dtype=bool)) (causal) or np.ones((T, T), "
             "dtype=bool), then hide the padding keys: & (sequence > 0)[None, :]."),
    Question("q4", "does a training layout leak its answer?", _check_has_leak,
             "visible = attention_mask(inputs, causal) says which keys s each position t sees; "
             "t's answer is at s when inputs[s] == targets[t] (and targets[t] > 0). A leak is "
             "any t, s with both: combine them with [:, None] and [None, :] and use .any()."),
    Question("q5", "pre-trained vs from scratch: paired bootstrap per fraction",
             _check_pretraining_gains,
             "For each fraction (table.groupby('fraction')): diff = pretrained - scratch; "
             "rng = np.random.default_rng(seed); idx = rng.integers(0, len(diff), size=(2000, "
             "len(diff))); means = diff[idx].mean(axis=1); low, high = np.quantile(means, "
             "[0.025, 0.975]); excludes_zero = low > 0 or high < 0."),
])
q1, q2, q3, q4, q5 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
