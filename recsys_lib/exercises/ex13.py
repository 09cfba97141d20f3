"""Checks for the exercises of notebook 13 (training at scale).

Used by ``exercises/13_training_at_scale.ipynb``: ``from recsys_lib.exercises.ex13 import *``.
Every expected value is computed here, on small hand-made inputs, from the rules the exercise
states:

* question 1 (global batch, per-replica batch and learning rate for N replicas) by the linear
  scaling rule, with a ``ValueError`` expected when a global batch does not split evenly;
* question 2 (the memory of an item-embedding table, and with Adam's two slots) from the bytes
  per number of the variables' dtype under each Keras dtype policy (float32 under the
  ``mixed_*`` policies, as Keras keeps them);
* question 3 (padding waste and attention cost, plain and bucketed) by counting positions;
* question 4 (a power law fitted to a scaling curve) with ``np.polyfit`` on natural logs.

Each wrong answer is compared with the usual mistakes, computed on the same inputs, so the
feedback can name the one that was made. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np
import pandas as pd

from recsys_lib.exercises.core import (
    ExerciseSet,
    Incorrect,
    LearnerError,
    NotAnswered,
    Question,
    call_answer,
)

__all__ = ["q1", "q2", "q3", "q4", "summary", "assert_all_correct", "EXERCISES",
           "SCALING_RUNS"]


def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-15)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _unwrap(value):
    """A one-element NumPy array or NumPy scalar as a plain Python number."""
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _first_match(got, variants: dict[str, object], same: Callable[[object, object], bool],
                 want) -> str | None:
    """The first named mistake whose value equals ``got`` (mistakes equal to ``want`` skipped)."""
    for name, value in variants.items():
        if value is not None and not same(value, want) and same(got, value):
            return name
    return None


# ----------------------------------------------------------------------------------- q1
def _q1_reference(batch: int, replicas: int, base_lr: float, base_batch: int,
                  keep: str) -> tuple[int, int, float]:
    if keep == "per_replica":
        per_replica, global_batch = batch, batch * replicas
    else:  # "global": the global batch is split across the replicas
        if batch % replicas:
            raise ValueError(f"a global batch of {batch} does not split evenly over "
                             f"{replicas} replicas")
        global_batch, per_replica = batch, batch // replicas
    return global_batch, per_replica, base_lr * global_batch / base_batch


#: (batch, replicas, base_lr, base_batch, keep): every batch splits evenly
_Q1_CASES = [
    (256, 4, 1e-3, 256, "per_replica"),
    (512, 8, 3e-4, 512, "global"),
    (128, 4, 1e-3, 256, "per_replica"),
    (128, 3, 1e-3, 256, "per_replica"),
    (1024, 4, 1e-3, 256, "global"),
    (96, 3, 5e-4, 96, "global"),
    (64, 1, 2e-3, 128, "per_replica"),
    (128, 2, 1e-3, 512, "global"),
]
#: global batches that do not split evenly over the replicas
_Q1_UNEVEN = [(100, 8, 1e-3, 100, "global"), (256, 3, 1e-3, 256, "global")]


def _q1_case(batch, replicas, base_lr, base_batch, keep) -> str:
    return (f"With batch={batch}, replicas={replicas}, base_lr={base_lr:g}, "
            f"base_batch={base_batch} and keep={keep!r}")


def _q1_lr_mistakes(batch, replicas, base_lr, base_batch, keep) -> dict[str, float]:
    global_batch, per_replica, _ = _q1_reference(batch, replicas, base_lr, base_batch, keep)
    return {
        "unscaled": base_lr,
        "times_replicas": base_lr * replicas,
        "divided": base_lr * base_batch / global_batch,
        "per_replica_ratio": base_lr * per_replica / base_batch,
        "floor_ratio": base_lr * (global_batch // base_batch),
        "sqrt": base_lr * math.sqrt(global_batch / base_batch),
        "over_replicas": base_lr / replicas,
    }


def _q1_lr_message(name: str, case: tuple) -> str:
    batch, replicas, base_lr, base_batch, keep = case
    global_batch, _, want = _q1_reference(*case)
    ratio = global_batch / base_batch
    rule = (f"the global batch is {global_batch} = {ratio:g} x base_batch, so the rate is "
            f"base_lr x {ratio:g} = {want:g}")
    messages = {
        "unscaled": f"you kept base_lr, but {rule}: the linear scaling rule multiplies the "
                    "learning rate by global_batch / base_batch",
        "times_replicas": (f"you multiplied the rate by the number of replicas; the linear "
                           f"scaling rule follows the global batch, not the replicas: {rule}"
                           + (". Here the global batch did not change, so neither does the "
                              "learning rate" if global_batch == base_batch else "")),
        "divided": f"you divided where the rule multiplies: a larger global batch averages "
                   f"more examples per step, so it takes a larger step: {rule}",
        "per_replica_ratio": f"you scaled with the per-replica batch; the all-reduce "
                             f"combines the gradients of every replica into one update over "
                             f"the global batch, so the rule uses the global batch: {rule}",
        "floor_ratio": f"global_batch // base_batch is integer division ({global_batch} // "
                       f"{base_batch} = {global_batch // base_batch}); the ratio is "
                       f"{ratio:g}: use / for it",
        "sqrt": f"that is the square-root scaling rule; the question asks for the linear "
                f"rule: {rule}",
        "over_replicas": f"you divided the rate by the number of replicas: {rule}",
    }
    return messages[name]


def _call(func, *args) -> tuple[str | None, object]:
    """Call the learner's function: ``(None, result)``, or ``(exception name, message)``."""
    if func is None or func is Ellipsis:
        raise NotAnswered()
    if not callable(func):
        raise Incorrect(f"Expected a function, got {type(func).__name__}")
    try:
        return None, func(*args)
    except NotImplementedError as err:
        raise NotAnswered() from err
    except LearnerError as err:  # raised in the kernel of a graded notebook
        return err.type_name, err.message
    except ValueError as err:
        return "ValueError", str(err)
    except Exception as err:  # noqa: BLE001 - we report any learner error back to them
        return type(err).__name__, str(err)


def _q1_rates(results: list) -> list[float | None]:
    """The learning rate of each answer that is a tuple of three numbers (else None)."""
    rates = []
    for raised, got in results:
        lr = (_unwrap(got[2]) if raised is None and isinstance(got, tuple | list)
              and len(got) == 3 else None)
        rates.append(float(lr) if _is_number(lr) else None)
    return rates


def _check_scale_for_replicas(func) -> None:
    results = [_call(func, *case) for case in _Q1_CASES]
    rates = _q1_rates(results)  # to find a mistake made in every case
    for case, (raised, got) in zip(_Q1_CASES, results, strict=True):
        batch, replicas, base_lr, base_batch, keep = case
        where = _q1_case(*case)
        if raised == "ValueError":
            why = (f"{batch} examples split evenly over {replicas} replicas "
                   f"({batch // replicas} each)" if keep == "global" else
                   f"with keep='per_replica' every replica takes batch={batch} examples, "
                   "so there is nothing to split")
            raise Incorrect(f"{where} your function raised ValueError ({got}), but {why}. "
                            "Raise it only when keep='global' and batch % replicas != 0")
        if raised is not None:
            raise Incorrect(f"{where} your function raised {raised}: {got}")
        if not isinstance(got, tuple | list) or len(got) != 3:
            raise Incorrect(f"{where} return a tuple of three values (global_batch, "
                            f"per_replica_batch, learning_rate), got {got!r}")
        global_batch, per_replica, lr = (_unwrap(v) for v in got)
        for name, value in (("global_batch", global_batch), ("per_replica_batch", per_replica)):
            if _is_integer(value):
                continue
            if _is_number(value) and float(value).is_integer():
                raise Incorrect(f"{where} your {name} is {value!r}, a float: a batch size is "
                                "a whole number of examples (tf.data's batch() wants an int). "
                                "In Python 3, / always gives a float, even for 96 / 3; use // "
                                "once you know that the division is exact")
            raise Incorrect(f"{where} your {name} is {value!r}; a batch size is an int")
        if not _is_number(lr):
            raise Incorrect(f"{where} the learning rate should be a number, got "
                            f"{type(lr).__name__}")
        global_batch, per_replica, lr = int(global_batch), int(per_replica), float(lr)
        want_global, want_per, want_lr = _q1_reference(*case)
        got_text = f"you returned ({global_batch}, {per_replica}, {lr:g})"
        want_text = f"expected ({want_global}, {want_per}, {want_lr:g})"
        if (global_batch, per_replica) != (want_global, want_per):
            if (global_batch, per_replica) == (want_per, want_global):
                why = ("the global batch and the per-replica batch are swapped: return "
                       "(global_batch, per_replica_batch, learning_rate), in that order")
            elif keep == "global" and global_batch == batch * replicas:
                why = ("with keep='global', batch is the global batch: it is split across "
                       "the replicas (batch // replicas each), not multiplied by them")
            elif keep == "per_replica" and global_batch == batch:
                why = ("with keep='per_replica', batch is what EACH replica takes: the "
                       "global batch, one step's examples over all replicas, is "
                       "batch * replicas")
            else:
                why = ("keep='per_replica': per-replica batch = batch, global batch = "
                       "batch * replicas; keep='global': global batch = batch, per-replica "
                       "batch = batch // replicas")
            raise Incorrect(f"{where} {got_text}, {want_text}: {why}")
        if _close(lr, want_lr):
            continue
        mistakes = _q1_lr_mistakes(*case)
        name = next((n for n in mistakes  # a mistake made in every case first
                     if all(rate is None or _close(rate, _q1_lr_mistakes(*c)[n])
                            for c, rate in zip(_Q1_CASES, rates, strict=True))), None)
        name = name or _first_match(lr, mistakes, _close, want_lr)
        why = (_q1_lr_message(name, case) if name else
               "the linear scaling rule gives learning_rate = base_lr * global_batch / "
               "base_batch")
        raise Incorrect(f"{where} {got_text}, {want_text}: {why}")

    for case in _Q1_UNEVEN:
        batch, replicas = case[:2]
        raised, got = _call(func, *case)
        where = _q1_case(*case)
        if raised == "ValueError":
            continue
        if raised is None:
            floor = (f": {batch} // {replicas} = {batch // replicas} per replica would "
                     f"silently train on a global batch of {batch // replicas * replicas}, "
                     f"not {batch}" if isinstance(got, tuple | list) and len(got) == 3
                     and _unwrap(got[1]) == batch // replicas else "")
            raise Incorrect(f"{where} you returned {got!r}, but {batch} examples do not split "
                            f"evenly over {replicas} replicas ({batch} / {replicas} = "
                            f"{batch / replicas:g}){floor}. Raise ValueError with a message "
                            "that says so")
        raise Incorrect(f"{where} your function raised {raised} ({got}); raise ValueError "
                        "(raise ValueError('...')) when the batch does not split evenly"
                        + (": an assert is not an error check, and python -O removes it"
                           if raised == "AssertionError" else ""))


# ----------------------------------------------------------------------------------- q2
#: Keras dtype policy -> bits of one number of the variables (what is stored and updated)
VARIABLE_BITS = {"float32": 32, "mixed_bfloat16": 32, "mixed_float16": 32,
                 "bfloat16": 16, "float16": 16}
#: Bits of one number in the computations
_COMPUTE_BITS = {"float32": 32, "mixed_bfloat16": 16, "mixed_float16": 16,
                 "bfloat16": 16, "float16": 16}


def _q2_reference(n_items: int, d_model: int, policy: str) -> tuple[int, int]:
    table = (n_items + 1) * d_model * VARIABLE_BITS[policy] // 8
    return table, 3 * table  # Adam's two slots have the variable's shape and dtype


def _q2_mistakes(n_items: int, d_model: int, policy: str) -> dict[str, tuple[float, float]]:
    rows = n_items + 1
    size = VARIABLE_BITS[policy] // 8
    compute = _COMPUTE_BITS[policy] // 8
    table, _ = _q2_reference(n_items, d_model, policy)
    return {
        "compute_dtype": (rows * d_model * compute, 3 * rows * d_model * compute),
        "bits": (table * 8, 3 * table * 8),
        "no_padding_row": (n_items * d_model * size, 3 * n_items * d_model * size),
        "no_adam": (table, table),
        "one_slot": (table, 2 * table),
        "slots_float32": (table, table + 2 * rows * d_model * 4),
        "all_float32": (rows * d_model * 4, 3 * rows * d_model * 4),
        "with_gradient": (table, 4 * table),
        "megabytes": (table / 1e6, 3 * table / 1e6),
        "mebibytes": (table / 2**20, 3 * table / 2**20),
    }


_Q2_MESSAGES = {
    "compute_dtype": "under a mixed policy ('mixed_bfloat16', 'mixed_float16') Keras keeps the "
                     "variables in float32 (4 bytes a number) and casts them to 16 bits only "
                     "for the computations; the table, and Adam's slots, are as large as "
                     "with 'float32'. Only the 'bfloat16' and 'float16' policies (not mixed) "
                     "store 16-bit variables",
    "bits": "that is in bits; a byte is 8 bits, so a float32 number takes 4 bytes and a "
            "bfloat16 or float16 number 2",
    "no_padding_row": "the table has n_items + 1 rows: row 0 is the padding item, as well as "
                      "the items 1..n_items",
    "no_adam": "the memory for training includes Adam's two slots (the moving averages m and "
               "v), each as large as the table: 3 times the table in all",
    "one_slot": "Adam keeps TWO slots per weight, m (the mean of the gradients) and v (the "
                "mean of their squares): 3 times the table in all",
    "slots_float32": "Keras creates Adam's slots with the dtype of the variable they follow, "
                     "so under the 'bfloat16' or 'float16' policy (not mixed) the slots are "
                     "16-bit too: 3 times the table",
    "all_float32": "under the 'bfloat16' and 'float16' policies (not mixed) the variables "
                   "themselves are 16-bit: 2 bytes a number. (Only the mixed policies keep "
                   "float32 variables)",
    "with_gradient": "leave out the gradient, as the question says (for an embedding it holds "
                     "only the rows of a batch): the table and Adam's two slots, 3 times the "
                     "table",
    "megabytes": "return bytes, not megabytes",
    "mebibytes": "return bytes, not mebibytes",
}

#: (n_items, d_model, policy)
_Q2_CASES = [
    (3706, 64, "float32"),
    (3706, 64, "mixed_bfloat16"),
    (1_000_000, 128, "mixed_float16"),
    (1_000_000, 128, "bfloat16"),
    (50_000, 256, "float16"),
    (10, 8, "float32"),
]


def _bytes(value: float) -> str:
    """A number of bytes with thousands separators (an integer shown as one)."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.6g}"


def _check_embedding_memory(func) -> None:
    for case in _Q2_CASES:
        n_items, d_model, policy = case
        got = call_answer(func, *case)
        where = f"For n_items={n_items}, d_model={d_model} and policy={policy!r}"
        if not isinstance(got, tuple | list) or len(got) != 2:
            raise Incorrect(f"{where} return a tuple of two numbers of bytes (table_bytes, "
                            f"training_bytes), got {got!r}")
        got = tuple(_unwrap(v) for v in got)
        if not all(_is_number(v) for v in got):
            raise Incorrect(f"{where} return two numbers of bytes, got {got!r}")
        want = _q2_reference(*case)
        if all(_close(g, w) for g, w in zip(got, want, strict=True)):
            continue
        mistakes = _q2_mistakes(*case)
        same = lambda a, b: all(_close(x, y) for x, y in zip(a, b, strict=True))  # noqa: E731
        name = _first_match(got, mistakes, same, want)
        text = (f"{where} you returned ({_bytes(got[0])}, {_bytes(got[1])}) bytes, expected "
                f"({want[0]:,}, {want[1]:,})")
        if name:
            raise Incorrect(f"{text}: {_Q2_MESSAGES[name]}")
        if _close(got[0], want[0]):
            raise Incorrect(f"{text}. The table is right; with Adam, add its two slots, each "
                            "of the table's shape and of the variable's dtype")
        raise Incorrect(f"{text}: (n_items + 1) rows x d_model numbers x the bytes of one "
                        "number of the variables' dtype")


# ----------------------------------------------------------------------------------- q3
def _bucket_lengths(lengths: np.ndarray, boundaries, inclusive: bool = True) -> np.ndarray:
    bounds = np.asarray(boundaries)
    index = np.searchsorted(bounds, lengths, side="left" if inclusive else "right")
    return bounds[np.minimum(index, len(bounds) - 1)]


def _q3_reference(lengths, max_len: int, boundaries) -> tuple[float, float, float]:
    lengths = np.asarray(lengths)
    padded = _bucket_lengths(lengths, boundaries)  # the first boundary >= the length
    plain = 1 - lengths.sum() / (len(lengths) * max_len)
    bucketed = 1 - lengths.sum() / padded.sum()
    attention = float((padded.astype(float) ** 2).sum() / (len(lengths) * max_len**2))
    return float(plain), float(bucketed), attention


def _longest_in_bucket(lengths: np.ndarray, boundaries) -> np.ndarray:
    bucket = _bucket_lengths(lengths, boundaries)
    return np.array([lengths[bucket == b].max() for b in bucket])


def _q3_mistakes(lengths, max_len: int, boundaries) -> dict[str, tuple[float, float, float]]:
    lengths = np.asarray(lengths)
    n, real = len(lengths), lengths.sum()
    plain, bucketed, attention = _q3_reference(lengths, max_len, boundaries)
    padded = _bucket_lengths(lengths, boundaries)
    exclusive = _bucket_lengths(lengths, boundaries, inclusive=False)
    longest = _longest_in_bucket(lengths, boundaries)
    square = lambda x: float((x.astype(float) ** 2).sum())  # noqa: E731
    return {
        "per_real": ((n * max_len - real) / real, (padded.sum() - real) / real, attention),
        "kept": (1 - plain, 1 - bucketed, attention),
        "percent": (100 * plain, 100 * bucketed, attention),
        "bucket_over_plain": (plain, (padded.sum() - real) / (n * max_len), attention),
        "exclusive": (plain, 1 - real / exclusive.sum(),
                      square(exclusive) / (n * max_len**2)),
        "longest": (plain, 1 - real / longest.sum(), square(longest) / (n * max_len**2)),
        "linear": (plain, bucketed, padded.sum() / (n * max_len)),
        "inverse": (plain, bucketed, 1 / attention),
        "real_only": (plain, bucketed, square(lengths) / (n * max_len**2)),
        "real_only_ratio": (plain, bucketed, square(lengths) / square(padded)),
        "not_ratio": (plain, bucketed, square(padded)),
        "saved": (plain, bucketed, 1 - attention),
    }


_Q3_MESSAGES = {
    "per_real": "the waste is a fraction of ALL the positions of the padded windows (real "
                "items and padding), not padding divided by the real items",
    "kept": "you returned the fraction of real items; the question asks for the fraction of "
            "padding, 1 minus that",
    "percent": "return fractions between 0 and 1, not percentages",
    "bucket_over_plain": "with bucketing the windows are shorter: divide the padding by the "
                         "positions the bucketed windows hold (the sum of their padded "
                         "lengths), not by n_windows * max_len",
    "exclusive": "a window whose length equals a boundary fits in that bucket: the boundaries "
                 "are inclusive upper limits (a window of length 20 with boundaries "
                 "[10, 20, 50] is padded to 20, not 50)",
    "longest": "you padded each bucket to its longest window; the question pads every window "
               "to its bucket's boundary, which a compiled model prefers (a few fixed "
               "shapes, no new trace for each batch)",
    "linear": "attention's cost grows with the SQUARE of the padded length (the T x T score "
              "matrix): sum the squares of the padded lengths, and divide by "
              "n_windows * max_len ** 2",
    "inverse": "return the cost with bucketing divided by the cost with plain padding (below "
               "1 when bucketing saves), not the other way round",
    "real_only": "the padded positions cost as much as the real ones (the mask hides them "
                 "from the softmax, but the scores are computed all the same): square each "
                 "window's PADDED length",
    "real_only_ratio": "the padded positions cost as much as the real ones: compare the "
                       "bucketed cost, the sum of the squared bucket boundaries, with plain "
                       "padding's, n_windows * max_len ** 2",
    "not_ratio": "return the ratio of the two costs (bucketed over plain), not the bucketed "
                 "cost itself",
    "saved": "return the cost with bucketing divided by the cost with plain padding, not the "
             "fraction saved",
}

_RNG_LENGTHS = np.minimum(np.random.default_rng(13).geometric(1 / 40, size=64), 200)
#: (window lengths, max_len, bucket boundaries)
_Q3_CASES = [
    (np.array([3, 10, 7, 12, 20, 1, 25, 48, 11, 9]), 50, [10, 20, 50]),
    (np.array([5, 5, 5, 5]), 20, [5, 10, 20]),
    (np.array([20, 20, 20, 1]), 20, [8, 20]),
    (np.array([2, 9, 30, 17]), 30, [30]),
    (_RNG_LENGTHS, 200, [25, 50, 100, 200]),
]

_Q3_NAMES = ("waste_plain", "waste_bucketed", "attention_ratio")


def _check_padding_waste(func) -> None:
    for lengths, max_len, boundaries in _Q3_CASES:
        given = lengths.copy()
        got = call_answer(func, given, max_len, list(boundaries))
        where = (f"For the window lengths {lengths.tolist() if len(lengths) <= 12 else '...'}, "
                 f"max_len={max_len} and boundaries={boundaries}")
        if not np.array_equal(given, lengths):
            raise Incorrect(f"{where} your function changed the caller's array of lengths")
        if not isinstance(got, tuple | list) or len(got) != 3:
            raise Incorrect(f"{where} return a tuple of three numbers (waste_plain, "
                            f"waste_bucketed, attention_ratio), got {got!r}")
        got = tuple(_unwrap(v) for v in got)
        if not all(_is_number(v) for v in got):
            raise Incorrect(f"{where} return three numbers, got {got!r}")
        got = tuple(float(v) for v in got)
        want = _q3_reference(lengths, max_len, boundaries)
        wrong = [i for i in range(3) if not _close(got[i], want[i])]
        if not wrong:
            continue
        i = wrong[0]
        mistakes = {name: value[i] for name, value in
                    _q3_mistakes(lengths, max_len, boundaries).items()}
        name = _first_match(got[i], mistakes, _close, want[i])
        text = (f"{where} your {_Q3_NAMES[i]} is {got[i]:.6g}, expected {want[i]:.6g}")
        if name:
            raise Incorrect(f"{text}: {_Q3_MESSAGES[name]}")
        raise Incorrect(text + (
            ": padded positions / all positions, with every window padded to max_len",
            ": padded positions / all positions, with each window padded to the first "
            "boundary at least as long as it",
            ": the sum of the squared padded lengths with bucketing, divided by "
            "n_windows * max_len ** 2")[i])


# ----------------------------------------------------------------------------------- q4
def _q4_reference(sizes, values, new_size: float) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.log(sizes), np.log(values), 1)
    return float(slope), float(np.exp(intercept + slope * np.log(new_size)))


def _q4_mistakes(sizes, values, new_size: float) -> dict[str, tuple[float, float]]:
    x, y = np.asarray(sizes, dtype=float), np.asarray(values, dtype=float)
    b, c = np.polyfit(np.log(x), np.log(y), 1)
    b10, c10 = np.polyfit(np.log10(x), np.log10(y), 1)
    lin_b, lin_c = np.polyfit(x, y, 1)
    semi_x_b, semi_x_c = np.polyfit(np.log(x), y, 1)
    semi_y_b, semi_y_c = np.polyfit(x, np.log(y), 1)
    swap_b, _ = np.polyfit(np.log(y), np.log(x), 1)
    two_b = (np.log(y[-1]) - np.log(y[0])) / (np.log(x[-1]) - np.log(x[0]))
    t = np.log(new_size)
    with np.errstate(over="ignore"):  # an exponential fit can overflow far away
        semilog_y = np.exp(semi_y_c + semi_y_b * new_size)
    return {
        "linear": (lin_b, lin_c + lin_b * new_size),
        "coefficients": (c, np.exp(b + c * t)),
        "log10_then_exp": (b10, np.exp(c10) * new_size**b10),
        "ln_then_pow10": (b, 10**c * new_size**b),
        "log10_fit_ln_new": (b10, 10 ** (c10 + b10 * t)),
        "ln_fit_log10_new": (b, np.exp(c + b * np.log10(new_size))),
        "log_prediction": (b, c + b * t),
        "log10_prediction": (b10, c10 + b10 * np.log10(new_size)),
        "swapped_axes": (swap_b, np.exp(c + b * t)),
        "two_points": (two_b, y[-1] * (new_size / x[-1]) ** two_b),
        "semilog_x": (semi_x_b, semi_x_c + semi_x_b * t),
        "semilog_y": (semi_y_b, semilog_y),
    }


_Q4_MESSAGES = {
    "linear": "you fitted a straight line to the sizes and values themselves; a power law "
              "value = a * size ** b is a straight line in log-log space: "
              "np.polyfit(np.log(sizes), np.log(values), 1), whose slope is the exponent b",
    "coefficients": "np.polyfit(x, y, 1) returns [slope, intercept], highest power first: "
                    "the exponent is the first coefficient",
    "log10_then_exp": "you fitted with log10 but went back with exp: the intercept is "
                      "log10(a), so a = 10 ** intercept (or fit and go back with np.log and "
                      "np.exp)",
    "ln_then_pow10": "you fitted with np.log (natural log) but went back with 10 ** : the "
                     "intercept is ln(a), so a = np.exp(intercept)",
    "log10_fit_ln_new": "you mixed the bases: the fit used log10 but you took np.log of "
                        "new_size. Use one base throughout (np.log, then np.exp)",
    "ln_fit_log10_new": "you mixed the bases: the fit used np.log but you took np.log10 of "
                        "new_size. Use one base throughout (np.log, then np.exp)",
    "log_prediction": "your prediction is the log of the value: go back with np.exp",
    "log10_prediction": "your prediction is log10 of the value: go back with 10 ** it",
    "swapped_axes": "you regressed log(size) on log(value): the size is x, the value is y, "
                    "np.polyfit(np.log(sizes), np.log(values), 1)",
    "two_points": "you drew the line through the first and last points only; fit all the "
                  "points by least squares (np.polyfit), so every measurement counts",
    "semilog_x": "you took the log of the sizes only; a power law is a line when BOTH axes "
                 "are logarithmic: np.polyfit(np.log(sizes), np.log(values), 1)",
    "semilog_y": "you took the log of the values only (that fits an exponential); a power law "
                 "is a line when BOTH axes are logarithmic",
}

#: (sizes, values, new size): simulated measurements shaped like scaling curves
_Q4_CASES = [
    (np.array([1e4, 3e4, 1e5, 3e5, 1e6]), np.array([0.031, 0.046, 0.069, 0.094, 0.127]), 1e7),
    (np.array([1.2e5, 4.8e5, 1.9e6, 7.7e6, 3.1e7]),
     np.array([6.91, 6.47, 6.24, 5.89, 5.66]), 1.2e8),
    (np.array([2e3, 8e3, 3.2e4, 1.28e5]), np.array([0.012, 0.021, 0.043, 0.061]), 5e5),
    (np.array([2.0, 4.0, 8.0, 16.0]), 3 * np.array([2.0, 4.0, 8.0, 16.0]) ** 0.5, 100.0),
]


def _check_fit_power_law(func) -> None:
    for sizes, values, new_size in _Q4_CASES:
        given_x, given_y = sizes.copy(), values.copy()
        got = call_answer(func, given_x, given_y, new_size)
        where = (f"For sizes={sizes.tolist()}, values={values.tolist()} and "
                 f"new_size={new_size:g}")
        if not (np.array_equal(given_x, sizes) and np.array_equal(given_y, values)):
            raise Incorrect(f"{where} your function changed the caller's arrays")
        if not isinstance(got, tuple | list) or len(got) != 2:
            raise Incorrect(f"{where} return a tuple of two numbers (exponent, prediction), "
                            f"got {got!r}")
        got = tuple(_unwrap(v) for v in got)
        if not all(_is_number(v) for v in got):
            raise Incorrect(f"{where} return two numbers, got {got!r}")
        got = tuple(float(v) for v in got)
        want = _q4_reference(sizes, values, new_size)
        if all(_close(g, w, 1e-6) for g, w in zip(got, want, strict=True)):
            continue
        mistakes = _q4_mistakes(sizes, values, new_size)
        i = 0 if not _close(got[0], want[0], 1e-6) else 1
        name = _first_match(got[i], {k: v[i] for k, v in mistakes.items()},
                            lambda a, b: _close(a, b, 1e-6), want[i])
        what = ("exponent", "prediction")[i]
        text = f"{where} your {what} is {got[i]:.6g}, expected {want[i]:.6g}"
        if name:
            raise Incorrect(f"{text}: {_Q4_MESSAGES[name]}")
        raise Incorrect(text + (
            ": the exponent is the slope of np.polyfit(np.log(sizes), np.log(values), 1)",
            ": with slope b and intercept c of the fit in natural logs, the prediction is "
            "np.exp(c + b * np.log(new_size))")[i])


def _scaling_runs() -> pd.DataFrame:
    """Simulated NDCG@10 of one model trained on growing samples of interactions.

    A saturating curve, 0.28 - 2 * size ** -0.25 (it levels off towards 0.28), with a little
    noise: its first points look like a power law, which then overshoots the larger samples.
    """
    interactions = 12_500 * 2 ** np.arange(8)
    noise = np.array([1.00, 1.01, 0.99, 1.00, 1.01, 0.99, 1.00, 1.01])
    ndcg = (0.28 - 2.0 * interactions.astype(float) ** -0.25) * noise
    return pd.DataFrame({"interactions": interactions, "ndcg": np.round(ndcg, 4)})


#: The table after question 4: NDCG@10 against the number of training interactions.
SCALING_RUNS = _scaling_runs()


EXERCISES = ExerciseSet("ex13", [
    Question("q1", "global batch and learning rate for N replicas", _check_scale_for_replicas,
             "First the two batches: keep='per_replica' gives (batch * replicas, batch); "
             "keep='global' gives (batch, batch // replicas), after checking "
             "batch % replicas == 0 (raise ValueError otherwise). Then the rate: "
             "base_lr * global_batch / base_batch."),
    Question("q2", "memory of an embedding table, with Adam", _check_embedding_memory,
             "Bytes per number: 4 for 'float32', 'mixed_bfloat16' and 'mixed_float16' (mixed "
             "policies keep float32 variables), 2 for 'bfloat16' and 'float16'. "
             "table = (n_items + 1) * d_model * bytes; with Adam's two slots, 3 * table."),
    Question("q3", "padding waste and attention cost, plain and bucketed",
             _check_padding_waste,
             "padded = np.asarray(boundaries)[np.searchsorted(boundaries, lengths)] gives each "
             "window's bucket boundary (the first one >= its length). Waste = 1 - real "
             "positions / all positions; attention ratio = sum(padded ** 2) / "
             "(len(lengths) * max_len ** 2)."),
    Question("q4", "a power law fitted to a scaling curve", _check_fit_power_law,
             "b, c = np.polyfit(np.log(sizes), np.log(values), 1) fits log(value) = c + "
             "b * log(size): b is the exponent, and the prediction is "
             "np.exp(c + b * np.log(new_size))."),
])
q1, q2, q3, q4 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
