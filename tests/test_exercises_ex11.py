"""Checkers of ex11: a correct answer passes, wrong answers fail with a useful message.

Also: the checkers' references agree with the library (``cloze_mask``, Keras' cross-entropy,
the attention of the Transformer block, ``paired_bootstrap``), the statistical checks of
question 1 accept correct answers whatever the seed, the stored notebooks are up to date,
and (in the slow tier, it runs a kernel) a graded notebook is checked through the grader.
"""

from __future__ import annotations

import math

import nbformat
import numpy as np
import pandas as pd
from exercise_harness import make_case_tests

from recsys_lib.config import REPO_ROOT
from recsys_lib.exercises import ex11
from recsys_lib.exercises.build import drifted
from recsys_lib.exercises.core import source_file


# ------------------------------------------------------------------------------------ q1
def _mask(sequences, n_items, rng, rate, *, choose_padding=False, shares=(0.8, 0.1),
          low=1, high=None, token=None, targets="original", in_place=False, dtype=None):
    """BERT's masking, and its usual mistakes."""
    sequences = np.asarray(sequences)
    real = np.ones(sequences.shape, bool) if choose_padding else sequences > 0
    chosen = real & (rng.random(sequences.shape) < rate)
    action = rng.random(sequences.shape)
    inputs = sequences if in_place else sequences.copy()
    original = sequences.copy()
    token = n_items + 1 if token is None else token
    masked = chosen & (action < shares[0])
    inputs[masked] = token
    swap = chosen & (action >= shares[0]) & (action < shares[0] + shares[1])
    high = n_items + 1 if high is None else high
    inputs[swap] = rng.integers(low, high, size=int(swap.sum()))
    if targets == "original":
        out = np.where(chosen, original, 0)
    elif targets == "everywhere":
        out = original.copy()
    elif targets == "corrupted":
        out = np.where(chosen, inputs, 0)
    else:  # only where [MASK] went
        out = np.where(masked, original, 0)
    if dtype is not None:
        return inputs.astype(dtype), out.astype(dtype)
    return inputs, out


def _mask_other_item(sequences, n_items, rng, rate):
    """A correct variant: the random item is never the original one."""
    inputs, targets = _mask(sequences, n_items, rng, rate, shares=(0.8, 0.0))
    keep = (targets > 0) & (inputs != n_items + 1)
    swap = keep & (rng.random(inputs.shape) < 0.5)
    for b, t in np.argwhere(swap):
        inputs[b, t] = rng.choice([i for i in range(1, n_items + 1) if i != targets[b, t]])
    return inputs, targets


def _mask_global_random(sequences, n_items, rng, rate):
    return _mask(sequences, n_items, np.random.default_rng(), rate)


def _mask_fixed_seed(sequences, n_items, rng, rate):
    return _mask(sequences, n_items, np.random.default_rng(0), rate)


# ------------------------------------------------------------------------------------ q2
def _ce(logits, targets, how="right"):
    return ex11._q2_value(logits, targets, how)


def _ce_naive(logits, targets):
    with np.errstate(over="ignore", invalid="ignore"):  # it overflows: that is the point
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        picked = np.take_along_axis(probs, targets[..., None], -1)[..., 0]
        return float(-np.log(picked[targets > 0]).mean())


def _ce_per_position(logits, targets):
    shifted = logits - logits.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return -np.take_along_axis(log_p, targets[..., None], -1)[..., 0]


# ------------------------------------------------------------------------------------ q3
def _attention(sequence, causal, *, mode=None, pad_rows=False, pad_keys=True, upper=False):
    T = len(sequence)
    real = np.asarray(sequence) > 0
    causal = causal if mode is None else mode == "causal"
    allowed = np.ones((T, T), bool)
    if causal:
        allowed = np.triu(allowed) if upper else np.tril(allowed)
    if pad_keys:
        allowed &= real[None, :]
    if pad_rows:
        allowed &= real[:, None]
    return allowed


# ------------------------------------------------------------------------------------ q4
def _leak(inputs, targets, causal, *, visible=None):
    seen = _attention(inputs, causal) if visible is None else visible(inputs, causal)
    return bool((seen & (inputs[None, :] == targets[:, None]) & (targets[:, None] > 0)).any())


def _leak_diagonal_only(inputs, targets, causal):
    return bool(((inputs == targets) & (targets > 0)).any())


def _leak_not_itself(inputs, targets, causal):
    T = len(inputs)
    return _leak(inputs, targets, causal,
                 visible=lambda x, c: _attention(x, c) & ~np.eye(T, dtype=bool))


def _leak_with_zero_targets(inputs, targets, causal):
    seen = _attention(inputs, causal, pad_keys=False)
    return bool((seen & (inputs[None, :] == targets[:, None])).any())


# ------------------------------------------------------------------------------------ q5
def _gains(table, seed=0, *, how="right", sign=1, rule=None, frame=True):
    rows = {}
    shared = np.random.default_rng(seed)
    for fraction, group in table.groupby("fraction"):
        a, b = group["pretrained"].to_numpy(), group["scratch"].to_numpy()
        diff, n = sign * (a - b), len(a)
        rng = shared if how == "shared_rng" else np.random.default_rng(seed)
        if how == "unpaired":
            means = (a[rng.integers(0, n, (2000, n))].mean(1)
                     - b[rng.integers(0, n, (2000, n))].mean(1))
        elif how == "loop":  # one resample at a time: the same draws
            means = np.array([diff[rng.integers(0, n, n)].mean() for _ in range(2000)])
        elif how == "transposed":
            means = diff[rng.integers(0, n, (n, 2000))].mean(0)
        else:
            means = diff[rng.integers(0, n, (2000, n))].mean(1)
        tails = [0.05, 0.95] if how == "ninety" else [0.025, 0.975]
        low, high = np.quantile(diff if how == "spread" else means, tails)
        excludes = (low > 0 or high < 0) if rule is None else rule(low, high)
        rows[fraction] = {"difference": diff.mean(), "low": low, "high": high,
                          "excludes_zero": bool(excludes)}
    if not frame:
        return rows
    return pd.DataFrame.from_dict(rows, orient="index")


def _gains_normal(table, seed=0):
    rows = []
    for fraction, group in table.groupby("fraction"):
        diff = (group["pretrained"] - group["scratch"]).to_numpy()
        half = 1.959963984540054 * diff.std(ddof=1) / math.sqrt(len(diff))
        rows.append({"fraction": fraction, "difference": diff.mean(),
                     "low": diff.mean() - half, "high": diff.mean() + half,
                     "excludes_zero": abs(diff.mean()) > half})
    return pd.DataFrame(rows)  # "fraction" as a column is accepted too


# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (_mask,
           [(lambda s, n, g, r: _mask(s, n, g, r, choose_padding=True), "padding (0) is never"),
            (lambda s, n, g, r: _mask(s, n, g, r, shares=(1.0, 0.0)), "every chosen item by"),
            (lambda s, n, g, r: _mask(s, n, g, r, low=0), "the padding index"),
            (lambda s, n, g, r: _mask(s, n, g, r, high=n + 2), "includes the mask token"),
            (lambda s, n, g, r: _mask(s, n, g, r, high=n), "never appears as a random"),
            (lambda s, n, g, r: _mask(s, n, g, r, targets="everywhere"), "only the chosen"),
            (lambda s, n, g, r: _mask(s, n, g, r, targets="corrupted"), "ORIGINAL item"),
            (lambda s, n, g, r: _mask(s, n, g, r, targets="masked"), "must get a target"),
            (lambda s, n, g, r: _mask(s, n, g, r, token=n), "last real item"),
            (lambda s, n, g, r: _mask(s, n, g, r, shares=(0.8, 0.2)), "kept"),
            (lambda s, n, g, r: _mask(s, n, g, r, shares=(0.5, 0.25)), "expected about 80%"),
            (lambda s, n, g, r: _mask(s, n, g, 0.15), "rate=1.0 every real position"),
            (lambda s, n, g, r: _mask(s, n, g, r if r == 1 else r / 2), "expected about rate"),
            (lambda s, n, g, r: _mask(s, n, g, r, in_place=True), "changed the caller's"),
            (_mask_global_random, "masked differently"),
            (_mask_fixed_seed, "fixed seed"),
            (lambda s, n, g, r: _mask(s, n, g, r, dtype=float), "integer"),
            (lambda s, n, g, r: list(_mask(s, n, g, r)[0]), "tuple (inputs, targets)"),
            (lambda s, n, g, r: (_mask(s, n, g, r)[0].tolist(), _mask(s, n, g, r)[1]),
             "NumPy array"),
            (lambda s, n, g, r: (_mask(s, n, g, r)[0][:, 1:], _mask(s, n, g, r)[1]),
             "shape")]),
    "q2": (lambda lg, tg: _ce(lg, tg),
           [(lambda lg, tg: _ce(lg, tg, "all_positions"), "log(n_items)"),
            (lambda lg, tg: _ce(lg, tg, "zero_targets"), "targets > 0"),
            (lambda lg, tg: _ce(lg, tg, "sum"), "that is the sum"),
            (lambda lg, tg: _ce(lg, tg, "per_sequence"), "weights a sequence"),
            (lambda lg, tg: _ce(lg, tg, "raw_logit"), "raw logit"),
            (lambda lg, tg: _ce(lg, tg, "probability"), "LOG-probability"),
            (lambda lg, tg: _ce(lg, tg, "one_minus_p"), "1 - p(target)"),
            (lambda lg, tg: _ce(lg, tg, "sign"), "MINUS"),
            (lambda lg, tg: _ce(lg, tg, "time_axis"), "last axis"),
            (lambda lg, tg: _ce(lg, tg, "minus_one"), "without - 1"),
            (_ce_naive, "log-sum-exp"),
            (lambda lg, tg: _ce_per_position(lg, tg)[tg > 0], "one number"),
            (lambda lg, tg: _ce(lg, tg) + 0.1, "log-softmax over the last axis")]),
    "q3": (_attention,
           [(lambda s, c: ~_attention(s, c), "inverted"),
            (lambda s, c: _attention(s, c, mode="causal"), "causal triangle"),
            (lambda s, c: _attention(s, c, mode="bidirectional"), "bidirectional mask"),
            (lambda s, c: _attention(s, c, upper=True), "future"),
            (lambda s, c: _attention(s, c, pad_keys=False), "does not hide the padding"),
            (lambda s, c: _attention(s, c, pad_rows=True), "also hid the rows"),
            (lambda s, c: _attention(s, c, pad_rows=True, pad_keys=False), "instead of"),
            (lambda s, c: _attention(s, c).astype(int), "boolean"),
            (lambda s, c: _attention(s, c).tolist(), "NumPy array"),
            (lambda s, c: _attention(s, c)[:, 1:], "shape (T, T)"),
            (lambda s, c: _attention(s, c) & ~np.eye(len(s), dtype=bool), "expected")]),
    "q4": (_leak,
           [(lambda x, t, c: False, "copy its right neighbour"),
            (lambda x, t, c: True, "not visible yet"),
            (lambda x, t, c: _leak(x, t, False), "not visible yet"),
            (_leak_diagonal_only, "copy its right neighbour"),
            (_leak_not_itself, "sees itself"),
            (_leak_with_zero_targets, "a target of 0 means nothing"),
            (lambda x, t, c: int(_leak(x, t, c)), "True (a leak) or False")]),
    "q5": (_gains,
           [(lambda t, s: _gains(t, s, sign=-1), "pre-trained minus"),
            (lambda t, s: _gains(t, s, how="unpaired"), "PAIRED"),
            (lambda t, s: _gains(t, s, how="spread"), "spread of the per-user"),
            (lambda t, s: _gains(t, s, how="ninety"), "90%"),
            (lambda t, s: _gains(t, s, how="shared_rng"), "fresh"),
            (lambda t, s: _gains(t, s, how="transposed"), "size=(2000, n_users)"),
            (lambda t, s: _gains(t, 0), "size=(2000, n_users)"),
            (_gains_normal, "normal-approximation"),
            (lambda t, s: _gains(t, s, rule=lambda lo, hi: lo > 0), "entirely below 0"),
            (lambda t, s: _gains(t, s, rule=lambda lo, hi: lo > 0 or hi > 0), "contains 0"),
            (lambda t, s: _gains(t, s, frame=False), "DataFrame"),
            (lambda t, s: _gains(t, s).rename(columns={"low": "lower"}), "no column 'low'"),
            (lambda t, s: _gains(t, s).reset_index(drop=True), "one row per fraction"),
            (lambda t, s: _gains(t, s).assign(excludes_zero="yes"), "True or False")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex11", CASES)


def _status(question, answer) -> tuple[str, str]:
    return question.evaluate(answer)


def test_q1_accepts_the_library_and_other_correct_draw_orders():
    from recsys_lib.models.transformer import cloze_mask

    for answer in (cloze_mask, _mask_other_item,
                   lambda s, n, g, r: _mask(s, n, g, r, dtype=np.int32)):
        assert _status(ex11.q1, answer) == ("correct", "Correct!")


def test_q1_statistical_checks_pass_a_correct_answer_whatever_the_seed():
    from recsys_lib.models.transformer import cloze_mask

    for offset in range(1, 61):
        ex11._check_cloze_mask(_mask, seed_offset=offset)
    for offset in range(1, 11):
        ex11._check_cloze_mask(cloze_mask, seed_offset=1000 + offset)


def test_q2_reference_is_keras_cross_entropy_over_the_targets():
    """Keras with sample_weight = (targets > 0) divides by all positions (the course's loop)."""
    import keras

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for logits, targets, _ in ex11._q2_cases()[:2]:
        weights = (targets > 0).astype("float32")
        keras_value = float(loss(targets, logits.astype("float32"), sample_weight=weights))
        assert math.isclose(keras_value, ex11._q2_value(logits, targets, "all_positions"),
                            rel_tol=1e-5)
        assert math.isclose(keras_value * targets.size / weights.sum(),
                            ex11._q2_value(logits, targets), rel_tol=1e-5)


def test_q3_reference_is_the_mask_of_the_transformer_block():
    """Attention weights of the library's block are > 0 exactly where the reference allows."""
    import keras

    from recsys_lib.models.transformer import CausalTransformerBlock

    keras.utils.set_random_seed(0)
    sequence = np.array([0, 0, 3, 1, 2, 5])
    x = np.random.default_rng(0).normal(size=(1, 6, 8)).astype("float32")
    for causal in (True, False):
        block = CausalTransformerBlock(8, 2, 16, causal=causal)
        _, scores = block(x, sequence[None] > 0, return_attention_scores=True)
        weights = keras.ops.convert_to_numpy(scores)[0]  # (heads, T, T)
        want = ex11._q3_reference(sequence, causal)
        rows = want.any(axis=1)  # queries that see at least one key
        for head in weights:
            np.testing.assert_array_equal(head[rows] > 0, want[rows])


def test_q4_cases_agree_with_the_reference():
    for inputs, targets, causal, leak, _ in ex11._Q4_CASES:
        assert _leak(np.array(inputs), np.array(targets), causal) == leak
    assert {leak for *_, leak, _ in ex11._Q4_CASES} == {True, False}


def test_q5_reference_is_paired_bootstrap_and_every_decision_is_clear():
    from recsys_lib.stats import paired_bootstrap

    for table, seed, _ in ex11._q5_cases():
        ours = _gains(table, seed)
        for fraction, row in ours.iterrows():
            group = table[table["fraction"] == fraction]
            lib = paired_bootstrap(group["pretrained"], group["scratch"], seed=seed)
            assert math.isclose(row["low"], lib.low, rel_tol=1e-12, abs_tol=1e-15)
            assert math.isclose(row["high"], lib.high, rel_tol=1e-12, abs_tol=1e-15)
            # no interval ends within 20% of its width of 0: no rounding can flip a decision
            assert min(abs(lib.low), abs(lib.high)) > 0.2 * (lib.high - lib.low), fraction
        assert ours["excludes_zero"].any() and not ours["excludes_zero"].all()
    shown = ex11._q5_cases()[0][0]
    pd.testing.assert_frame_equal(shown, ex11.PER_USER_NDCG)
    assert ex11._q5_cases()[1][0].pipe(_gains, 7)["high"].min() < 0  # pre-training hurts once


def test_q5_accepts_a_loop_over_resamples():
    assert _status(ex11.q5, lambda t, s: _gains(t, s, how="loop")) == ("correct", "Correct!")


def test_the_notebooks_are_built_from_the_source_and_the_solutions_all_pass():
    source = source_file("ex11")
    assert drifted(source) == [], "run python -m recsys_lib.exercises.build --only ex11 --execute"
    solutions = nbformat.read(REPO_ROOT / "solutions" / "11_pretraining_bert4rec.ipynb", 4)
    texts = ["".join(o.get("text", "")) for c in solutions.cells if c.cell_type == "code"
             for o in c.get("outputs", [])]
    assert any("ex11: 5 of 5 questions correct" in t for t in texts)


# ------------------------------------------------------------------ runs a kernel
ALTERNATIVE_ANSWERS = {
    "q1": ("from recsys_lib.models.transformer import cloze_mask as library_mask\n\n"
           "def masking(batch, n, generator, share):\n"
           "    return library_mask(batch, n, generator, share)\n\nq1.check(masking)"),
    "q2": ("def loss(scores, wanted):\n"
           "    top = scores.max(axis=2, keepdims=True)\n"
           "    lse = top[..., 0] + np.log(np.exp(scores - top).sum(axis=2))\n"
           "    rows, cols = np.nonzero(wanted)\n"
           "    return float(np.mean(lse[rows, cols] - scores[rows, cols, wanted[rows, cols]]))"
           "\n\nq2.check(loss)"),
    "q3": ("def mask(seq, causal):\n"
           "    n = len(seq)\n"
           "    keys = np.asarray(seq) != 0\n"
           "    t, s = np.indices((n, n))\n"
           "    return keys[s] & ((s <= t) | (not causal))\n\nq3.check(mask)"),
    "q4": ("def leak(x, y, causal):\n"
           "    m = mask(x, causal)\n"
           "    return any(m[t, s] and y[t] > 0 and x[s] == y[t]\n"
           "               for t in range(len(x)) for s in range(len(x)))\n\nq4.check(leak)"),
    "q5": ("def gains(table, seed=0):\n"
           "    out = []\n"
           "    for f, g in table.groupby('fraction'):\n"
           "        d = g.pretrained.to_numpy() - g.scratch.to_numpy()\n"
           "        r = np.random.default_rng(seed)\n"
           "        m = np.array([d[r.integers(0, len(d), len(d))].mean() for _ in range(2000)])\n"
           "        lo, hi = np.quantile(m, [0.025, 0.975])\n"
           "        out.append(dict(fraction=f, difference=d.mean(), low=lo, high=hi,\n"
           "                        excludes_zero=bool(lo > 0 or hi < 0)))\n"
           "    return pd.DataFrame(out).set_index('fraction')\n\nq5.check(gains)"),
}


def test_a_graded_notebook_is_checked_through_the_grader(tmp_path):
    """The answers travel from the kernel (a seeded Generator to it, arrays and a DataFrame
    back); answers written differently from the worked ones score, a wrong one says why."""
    from recsys_lib import grading, grading_scan
    from recsys_lib.exercises.build import build_notebook

    nb = build_notebook(source_file("ex11"), "exercise")
    cells = grading_scan.answer_cells(nb)
    answers = {**ALTERNATIVE_ANSWERS,
               "q2": ALTERNATIVE_ANSWERS["q2"].replace("np.mean(", "1 / wanted.size * np.sum(")}
    for question, code in answers.items():
        nb.cells[cells[question]].source = code
    path = tmp_path / "11_pretraining_bert4rec.ipynb"
    nbformat.write(nb, path)
    report = grading.grade_notebook(path, cell_timeout=120)
    statuses = {q["question"]: q["status"] for q in report.questions}
    assert statuses == {"q1": "correct", "q2": "incorrect", "q3": "correct", "q4": "correct",
                        "q5": "correct"}, report.questions
    q2 = next(q for q in report.questions if q["question"] == "q2")
    assert "you divided by every position" in q2["message"]
