"""Checkers of ex13: a correct answer passes, wrong answers fail with a useful message.

Also: the references agree with the library and with hand counts (the embedding table's rows,
Keras' dtype policies), answers written differently from the worked ones pass, the stored
notebooks are up to date, and (in the slow tier, it runs a kernel) a graded notebook is
checked through the grader, a ``ValueError`` raised in the kernel included.
"""

from __future__ import annotations

import math

import nbformat
import numpy as np
import pytest
from exercise_harness import make_case_tests

from recsys_lib.config import REPO_ROOT
from recsys_lib.exercises import CORRECT, INCORRECT, ex13
from recsys_lib.exercises.build import drifted
from recsys_lib.exercises.core import source_file


# ------------------------------------------------------------------------------------ q1
def _scale(batch, replicas, base_lr, base_batch, keep, *, lr="linear", check=True,
           per_replica_always=False, global_always=False, swap=False, float_batch=False,
           error=ValueError):
    """The worked answer of q1, and its usual mistakes."""
    if keep == "per_replica" and not global_always or per_replica_always:
        per, glob = batch, batch * replicas
    else:
        if check and batch % replicas:
            raise error(f"{batch} does not split over {replicas} replicas")
        glob, per = batch, (batch / replicas if float_batch else batch // replicas)
    rate = {"linear": base_lr * glob / base_batch,
            "replicas": base_lr * replicas,
            "unscaled": base_lr,
            "divided": base_lr * base_batch / glob,
            "per_replica": base_lr * per / base_batch,
            "floor": base_lr * (glob // base_batch),
            "sqrt": base_lr * math.sqrt(glob / base_batch)}[lr]
    return (per, glob, rate) if swap else (glob, per, rate)


def _scale_assert(batch, replicas, base_lr, base_batch, keep):
    if keep == "global":
        assert batch % replicas == 0, "uneven"
    return _scale(batch, replicas, base_lr, base_batch, keep)


def _scale_raises_for_global(batch, replicas, base_lr, base_batch, keep):
    if keep == "global":
        raise ValueError("cannot split")
    return _scale(batch, replicas, base_lr, base_batch, keep)


def _scale_alternative(batch, replicas, base_lr, base_batch, keep):
    """Written differently: divmod, a list, NumPy integers."""
    per, rest = divmod(batch, replicas)
    if keep == "global" and rest:
        raise ValueError("uneven split")
    glob = np.int64(batch * replicas if keep == "per_replica" else batch)
    per = np.int64(batch if keep == "per_replica" else per)
    return [glob, per, np.float64(base_lr) * (glob / base_batch)]


# ------------------------------------------------------------------------------------ q2
def _memory(n_items, d_model, policy, *, mixed_16=False, bits=False, padding=True, slots=2,
            slots_float32=False, pure_32=False, unit=1):
    """The worked answer of q2, and its usual mistakes."""
    size = 2 if policy in ("bfloat16", "float16") else 4
    if mixed_16 and policy.startswith("mixed"):
        size = 2
    if pure_32:
        size = 4
    rows = n_items + 1 if padding else n_items
    table = rows * d_model * size * (8 if bits else 1)
    slot_size = 4 if slots_float32 else size
    training = table + slots * rows * d_model * slot_size * (8 if bits else 1)
    return table / unit, training / unit


# ------------------------------------------------------------------------------------ q3
def _waste(lengths, max_len, boundaries, *, per_real=False, exclusive=False, longest=False,
           bucket_denominator="bucketed", attention="square", percent=False, in_place=False):
    """The worked answer of q3, and its usual mistakes."""
    if in_place:
        lengths.sort()
    lengths = np.asarray(lengths)
    bounds = np.asarray(boundaries)
    index = np.searchsorted(bounds, lengths, side="right" if exclusive else "left")
    padded = bounds[np.minimum(index, len(bounds) - 1)]
    if longest:
        padded = np.array([lengths[padded == b].max() for b in padded])
    n, real = len(lengths), lengths.sum()
    plain = (n * max_len - real) / (real if per_real else n * max_len)
    denominator = padded.sum() if bucket_denominator == "bucketed" else n * max_len
    bucketed = (padded.sum() - real) / (real if per_real else denominator)
    cost = {"square": (padded.astype(float) ** 2).sum() / (n * max_len**2),
            "linear": padded.sum() / (n * max_len),
            "real": (lengths.astype(float) ** 2).sum() / (n * max_len**2),
            "inverse": (n * max_len**2) / (padded.astype(float) ** 2).sum()}[attention]
    scale = 100 if percent else 1
    return scale * float(plain), scale * float(bucketed), float(cost)


def _waste_loop(lengths, max_len, boundaries):
    """Written differently: a plain loop over the windows."""
    total_plain = total_bucketed = padding_plain = padding_bucketed = cost = 0
    for length in lengths.tolist():
        bound = next(b for b in boundaries if b >= length)
        total_plain += max_len
        padding_plain += max_len - length
        total_bucketed += bound
        padding_bucketed += bound - length
        cost += bound * bound
    return (padding_plain / total_plain, padding_bucketed / total_bucketed,
            cost / (len(lengths) * max_len * max_len))


# ------------------------------------------------------------------------------------ q4
def _fit(sizes, values, new_size, *, how="loglog"):
    """The worked answer of q4, and its usual mistakes."""
    x, y = np.asarray(sizes, float), np.asarray(values, float)
    if how == "linear":
        b, c = np.polyfit(x, y, 1)
        return float(b), float(c + b * new_size)
    if how == "log10_exp":
        b, c = np.polyfit(np.log10(x), np.log10(y), 1)
        return float(b), float(np.exp(c) * new_size**b)
    if how == "ln_pow10":
        b, c = np.polyfit(np.log(x), np.log(y), 1)
        return float(b), float(10**c * new_size**b)
    if how == "swapped_axes":
        b, _ = np.polyfit(np.log(y), np.log(x), 1)
        return float(b), _fit(x, y, new_size)[1]
    if how == "two_points":
        b = (np.log(y[-1]) - np.log(y[0])) / (np.log(x[-1]) - np.log(x[0]))
        return float(b), float(y[-1] * (new_size / x[-1]) ** b)
    if how == "semilog_y":
        b, c = np.polyfit(x, np.log(y), 1)
        return float(b), float(np.exp(c + b * new_size))
    b, c = np.polyfit(np.log(x), np.log(y), 1)
    if how == "coefficients":
        return float(c), float(np.exp(c + b * np.log(new_size)))
    if how == "log_prediction":
        return float(b), float(c + b * np.log(new_size))
    return float(b), float(np.exp(c + b * np.log(new_size)))


def _fit_log10(sizes, values, new_size):
    """Written differently, and right: log10 throughout, back with 10 **."""
    b, c = np.polyfit(np.log10(sizes), np.log10(values), 1)
    return b, 10 ** (c + b * np.log10(new_size))


def _fit_lstsq(sizes, values, new_size):
    """Written differently, and right: the normal equations by np.linalg.lstsq."""
    design = np.column_stack([np.ones(len(sizes)), np.log(sizes)])
    (c, b), *_ = np.linalg.lstsq(design, np.log(values), rcond=None)
    return np.array([b]), math.exp(c) * new_size**b


# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (_scale,
           [(lambda *a: _scale(*a, lr="replicas"), "not the replicas"),
            (lambda *a: _scale(*a, lr="unscaled"), "you kept base_lr"),
            (lambda *a: _scale(*a, lr="divided"), "you divided where the rule multiplies"),
            (lambda *a: _scale(*a, lr="per_replica"), "the rule uses the global batch"),
            (lambda *a: _scale(*a, lr="floor"), "integer division"),
            (lambda *a: _scale(*a, lr="sqrt"), "square-root"),
            (lambda *a: _scale(*a, per_replica_always=True), "not multiplied by them"),
            (lambda *a: _scale(*a, global_always=True), "what EACH replica takes"),
            (lambda *a: _scale(*a, swap=True), "swapped"),
            (lambda *a: _scale(*a, float_batch=True), "use //"),
            (lambda *a: _scale(*a, check=False), "Raise ValueError"),
            (lambda *a: _scale(*a, check=False), "silently train on a global batch of 96"),
            (lambda *a: _scale(*a, error=ZeroDivisionError), "raised ZeroDivisionError"),
            (_scale_assert, "python -O"),
            (_scale_raises_for_global, "split evenly over 8 replicas (64 each)"),
            (lambda *a: _scale(*a)[:2], "tuple of three values"),
            (lambda *a: (*_scale(*a)[:2], str(_scale(*a)[2])), "should be a number"),
            (lambda *a: (_scale(*a)[0], _scale(*a)[1], _scale(*a)[2] * 1.1), "linear scaling")]),
    "q2": (_memory,
           [(lambda *a: _memory(*a, mixed_16=True), "keeps the variables in float32"),
            (lambda *a: _memory(*a, bits=True), "that is in bits"),
            (lambda *a: _memory(*a, padding=False), "row 0 is the padding"),
            (lambda *a: _memory(*a, slots=0), "Adam's two slots"),
            (lambda *a: _memory(*a, slots=1), "TWO slots"),
            (lambda *a: _memory(*a, slots=3), "leave out the gradient"),
            (lambda *a: _memory(*a, slots_float32=True), "16-bit too"),
            (lambda *a: _memory(*a, pure_32=True), "the variables themselves are 16-bit"),
            (lambda *a: _memory(*a, unit=1e6), "not megabytes"),
            (lambda *a: _memory(*a, unit=2**20), "not mebibytes"),
            (lambda *a: _memory(*a)[0], "tuple of two"),
            (lambda *a: (str(_memory(*a)[0]), _memory(*a)[1]), "two numbers"),
            (lambda *a: (_memory(*a)[0], _memory(*a)[1] + 8), "The table is right"),
            (lambda *a: (_memory(*a)[0] + 8, _memory(*a)[1]), "(n_items + 1) rows")]),
    "q3": (_waste,
           [(lambda *a: _waste(*a, per_real=True), "not padding divided by the real items"),
            (lambda *a: _waste(*a, exclusive=True), "inclusive upper limits"),
            (lambda *a: _waste(*a, longest=True), "its longest window"),
            (lambda *a: _waste(*a, bucket_denominator="plain"), "not by n_windows * max_len"),
            (lambda *a: _waste(*a, attention="linear"), "SQUARE"),
            (lambda *a: _waste(*a, attention="real"), "PADDED length"),
            (lambda *a: _waste(*a, attention="inverse"), "not the other way round"),
            (lambda *a: _waste(*a, percent=True), "not percentages"),
            (lambda *a: tuple(1 - v for v in _waste(*a)[:2]) + _waste(*a)[2:],
             "fraction of real items"),
            (lambda *a: _waste(*a, in_place=True), "changed the caller's array"),
            (lambda *a: _waste(*a)[:2], "tuple of three numbers"),
            (lambda *a: (*_waste(*a)[:2], 1 - _waste(*a)[2]), "not the fraction saved"),
            (lambda *a: (*_waste(*a)[:2], None), "three numbers"),
            (lambda *a: (_waste(*a)[0] + 0.01, *_waste(*a)[1:]), "padded to max_len")]),
    "q4": (_fit,
           [(lambda *a: _fit(*a, how="linear"), "straight line to the sizes and values"),
            (lambda *a: _fit(*a, how="log10_exp"), "fitted with log10 but went back with exp"),
            (lambda *a: _fit(*a, how="ln_pow10"), "went back with 10 **"),
            (lambda *a: _fit(*a, how="swapped_axes"), "the size is x"),
            (lambda *a: _fit(*a, how="two_points"), "first and last points"),
            (lambda *a: _fit(*a, how="semilog_y"), "exponential"),
            (lambda *a: _fit(*a, how="coefficients"), "[slope, intercept]"),
            (lambda *a: _fit(*a, how="log_prediction"), "go back with np.exp"),
            (lambda *a: _fit(*a)[0], "tuple of two numbers"),
            (lambda *a: (_fit(*a)[0], str(_fit(*a)[1])), "two numbers"),
            (lambda *a: (_fit(*a)[0], 2 * _fit(*a)[1]), "np.exp(c + b * np.log(new_size))"),
            (lambda x, y, n: _fit(np.log(x, out=x), y, n), "changed the caller's arrays")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex13", CASES)


def _status(question, answer):
    question.check(answer)
    return question.status, question.message


@pytest.mark.parametrize("question, answer", [
    (ex13.q1, _scale_alternative),
    (ex13.q3, _waste_loop),
    (ex13.q4, _fit_log10),
    (ex13.q4, _fit_lstsq),
], ids=["q1_divmod_numpy", "q3_loop", "q4_log10", "q4_lstsq"])
def test_answers_written_differently_pass(question, answer):
    assert _status(question, answer) == (CORRECT, "Correct!")


def test_q1_other_error_for_a_divisible_batch_is_reported_plainly():
    def answer(batch, replicas, base_lr, base_batch, keep):
        raise KeyError(keep)

    status, message = _status(ex13.q1, answer)
    assert status == INCORRECT and "raised KeyError" in message


def test_q1_reference_follows_the_rule_and_refuses_uneven_splits():
    assert ex13._q1_reference(128, 4, 1e-3, 256, "per_replica") == (512, 128, 2e-3)
    assert ex13._q1_reference(512, 8, 3e-4, 512, "global") == (512, 64, 3e-4)
    for case in ex13._Q1_UNEVEN:
        with pytest.raises(ValueError):
            ex13._q1_reference(*case)
    for case in ex13._Q1_CASES:  # every case tells the common lr mistakes apart
        want = ex13._q1_reference(*case)[2]
        wrong = [v for v in ex13._q1_lr_mistakes(*case).values() if not math.isclose(v, want)]
        assert wrong


def test_q2_variables_and_adam_slots_have_the_dtypes_keras_gives_them():
    """Each policy's variable dtype, and Adam's two slots like the variable (imports Keras)."""
    keras = pytest.importorskip("keras")
    for policy, bits in ex13.VARIABLE_BITS.items():
        layer = keras.layers.Embedding(11, 4, dtype=policy)
        layer.build((None,))
        table = layer.embeddings
        assert np.dtype(str(table.dtype).replace("bfloat16", "float16")).itemsize * 8 == bits
        optimizer = keras.optimizers.Adam()
        optimizer.build([table])
        slots = [v for v in optimizer.variables if tuple(v.shape) == (11, 4)]
        assert len(slots) == 2 and all(v.dtype == table.dtype for v in slots), policy


def test_q2_table_has_a_row_per_item_and_one_for_padding():
    table, training = ex13._q2_reference(3706, 64, "mixed_bfloat16")
    assert table == 3707 * 64 * 4 and training == 3 * table


def test_q3_reference_counts_positions_by_hand():
    lengths = np.array([3, 10, 7, 12, 20, 1, 25, 48, 11, 9])
    plain, bucketed, attention = ex13._q3_reference(lengths, 50, [10, 20, 50])
    padded = [10, 10, 10, 20, 20, 10, 50, 50, 20, 10]
    assert math.isclose(plain, 1 - lengths.sum() / 500)
    assert math.isclose(bucketed, 1 - lengths.sum() / sum(padded))
    assert math.isclose(attention, sum(p * p for p in padded) / (10 * 50 * 50))


def test_q4_reference_recovers_an_exact_power_law():
    sizes = np.array([10.0, 100.0, 1000.0])
    exponent, prediction = ex13._q4_reference(sizes, 2.5 * sizes**-0.3, 1e5)
    assert math.isclose(exponent, -0.3) and math.isclose(prediction, 2.5 * 1e5**-0.3)


def test_scaling_runs_saturate_so_a_small_fit_overshoots():
    x = ex13.SCALING_RUNS["interactions"].to_numpy()
    y = ex13.SCALING_RUNS["ndcg"].to_numpy()
    small, predicted = ex13._q4_reference(x[:4], y[:4], x[-1])
    every, _ = ex13._q4_reference(x, y, x[-1])
    assert predicted > 1.5 * y[-1] and every < small


def test_the_notebooks_are_built_from_the_source_and_the_solutions_all_pass():
    source = source_file("ex13")
    assert drifted(source) == [], "run python -m recsys_lib.exercises.build --only ex13 --execute"
    solutions = nbformat.read(REPO_ROOT / "solutions" / "13_training_at_scale.ipynb", 4)
    texts = ["".join(o.get("text", "")) for c in solutions.cells if c.cell_type == "code"
             for o in c.get("outputs", [])]
    assert any("ex13: 4 of 4 questions correct" in t for t in texts)


# ------------------------------------------------------------------ runs a kernel
ALTERNATIVE_ANSWERS = {
    "q1": ("def scale(batch, replicas, base_lr, base_batch, keep):\n"
           "    per, rest = divmod(batch, replicas)\n"
           "    if keep == 'per_replica':\n"
           "        per, glob = batch, batch * replicas\n"
           "    elif rest:\n"
           "        raise ValueError('uneven split')\n"
           "    else:\n"
           "        glob = batch\n"
           "    return glob, per, base_lr * glob / base_batch\n\nq1.check(scale)"),
    "q2": ("def memory(n, d, policy):\n"
           "    table = (n + 1) * d * (2 if policy in ('bfloat16', 'float16') else 4)\n"
           "    return table, table + 2 * table\n\nq2.check(memory)"),
    "q3": ("def waste(lengths, max_len, boundaries):\n"
           "    padded = np.array([min(b for b in boundaries if b >= n) for n in lengths])\n"
           "    return (1 - lengths.sum() / (len(lengths) * max_len),\n"
           "            1 - lengths.sum() / padded.sum(),\n"
           "            float((padded ** 2).sum()) / len(lengths) / max_len ** 2)\n\n"
           "q3.check(waste)"),
    "q4": ("def fit(sizes, values, new_size):\n"
           "    b, c = np.polyfit(sizes, values, 1)\n"
           "    return b, c + b * new_size\n\nq4.check(fit)"),
}


def test_a_graded_notebook_is_checked_through_the_grader(tmp_path):
    """The answers travel from the kernel (tuples, a ValueError raised there) to the
    grader; answers written differently from the worked ones score, a wrong one says why."""
    from recsys_lib import grading, grading_scan
    from recsys_lib.exercises.build import build_notebook

    nb = build_notebook(source_file("ex13"), "exercise")
    cells = grading_scan.answer_cells(nb)
    for question, code in ALTERNATIVE_ANSWERS.items():
        nb.cells[cells[question]].source = code
    path = tmp_path / "13_training_at_scale.ipynb"
    nbformat.write(nb, path)
    report = grading.grade_notebook(path, cell_timeout=120)
    statuses = {q["question"]: q["status"] for q in report.questions}
    assert statuses == {"q1": "correct", "q2": "correct", "q3": "correct",
                        "q4": "incorrect"}, report.questions
    q4 = next(q for q in report.questions if q["question"] == "q4")
    assert "straight line to the sizes and values" in q4["message"]
