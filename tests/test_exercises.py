"""Every exercise checker accepts a correct answer and rejects wrong ones with a useful message.

Also: exercise and solution notebooks are generated from one source and cannot drift apart.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from recsys_lib.data import load_movielens
from recsys_lib.exercises import (
    CORRECT,
    INCORRECT,
    LESSONS,
    NOT_ANSWERED,
    ExerciseSet,
    Question,
    load_lesson,
)
from recsys_lib.exercises import build as build_mod
from recsys_lib.exercises.core import solution_code
from recsys_lib.exercises.ex00 import reference_top_items
from recsys_lib.preprocessing import k_core
from recsys_lib.splits import leave_last_out

RATINGS = load_movielens().ratings
N_USERS = RATINGS["user_id"].nunique()
DENSITY = len(RATINGS) / (N_USERS * RATINGS["item_id"].nunique())
_counts = RATINGS.groupby("item_id").size().sort_values(ascending=False)
TOP10 = _counts.head(math.ceil(0.1 * len(_counts))).sum() / len(RATINGS)


def _one_pass_k_core(r, k):
    users = r.groupby("user_id")["user_id"].transform("size")
    items = r.groupby("item_id")["item_id"].transform("size")
    return r[(users >= k) & (items >= k)]


def _split_unstable(r):
    ordered = r.sort_values(["user_id", "timestamp"], ascending=[True, False])
    test = ordered[~ordered.duplicated("user_id", keep="first")]
    test = test[test["user_id"].map(r.groupby("user_id").size()) >= 2]
    return r.drop(index=test.index), test


def _leaky_global(train, test):
    return bool(train["timestamp"].max() > test["timestamp"].min())


# (correct answer, [(wrong answer, words the message must contain), ...]) per question
CASES = {
    ("ex00", "q1"): (N_USERS, [(len(RATINGS), "number of ratings"), (N_USERS + 1, "not the"),
                               ("671", "should be a number")]),
    ("ex00", "q2"): (DENSITY, [(100 * DENSITY, "percentage"), (1 - DENSITY, "sparsity"),
                               (DENSITY * 1.1, "is off")]),
    ("ex00", "q3"): (reference_top_items,
                     [(lambda r, n: reference_top_items(r, n)[::-1], "wrong order"),
                      (lambda r, n: reference_top_items(r, n + 1), "asked for n="),
                      (lambda r, n: r["item_id"].value_counts().index[:n].tolist()[::-1],
                       "wrong order"),
                      (lambda r, n: 1 / 0, "ZeroDivisionError")]),
    ("ex00", "q4"): (TOP10, [(100 * TOP10, "percentage"), (0.5, "is off")]),
    ("ex01", "q1"): (lambda r: r["rating"] - r.groupby("user_id")["rating"].transform("mean"),
                     [(lambda r: r["rating"] - r["rating"].mean(), "global mean"),
                      (lambda r: (r["rating"] - r.groupby("user_id")["rating"]
                                  .transform("mean")).reset_index(drop=True), "index"),
                      (lambda r: r["rating"].to_numpy(), "Series")]),
    ("ex01", "q2"): (lambda r, k: k_core(r, k, k),
                     [(_one_pass_k_core, "repeat"), (lambda r, k: r, "expected the rows")]),
    ("ex01", "q3"): (lambda r: (lambda s: (s.train, s.test))(leave_last_out(r, False)),
                     [(_split_unstable, "stable sort"),
                      (lambda r: (r, r), "both train and test"),
                      (lambda r: leave_last_out(r, False).train, "tuple")]),
    ("ex01", "q4"): (lambda tr, te: bool(
        (pd.concat([tr.groupby("user_id")["timestamp"].max(),
                    te.groupby("user_id")["timestamp"].min()], axis=1, keys=["a", "b"])
         .dropna().pipe(lambda d: d["a"] > d["b"])).any()),
                     [(_leaky_global, "another user"), (lambda tr, te: "no", "True or False")]),
}


@pytest.fixture(autouse=True)
def _fresh_results():
    for lesson in LESSONS:
        load_lesson(lesson).reset()


def test_every_question_has_cases():
    questions = {(lesson, q.name) for lesson in LESSONS for q in load_lesson(lesson)}
    assert questions == set(CASES)


@pytest.mark.parametrize("key", sorted(CASES))
def test_checker_accepts_the_correct_answer(key, capsys):
    question = getattr(load_lesson(key[0]), key[1])
    question.check(CASES[key][0])
    assert question.status == CORRECT, question.message
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("key", sorted(CASES))
def test_checker_rejects_wrong_answers_with_a_reason(key, capsys):
    question = getattr(load_lesson(key[0]), key[1])
    for wrong, words in CASES[key][1]:
        question.check(wrong)
        assert question.status == INCORRECT, (wrong, question.message)
        assert words in question.message, question.message
        assert words in capsys.readouterr().out


@pytest.mark.parametrize("key", sorted(CASES))
def test_unanswered_questions_are_reported_not_crashed(key):
    question = getattr(load_lesson(key[0]), key[1])
    placeholders = [None, ...]
    if callable(CASES[key][0]):  # a function whose body still raises NotImplementedError
        placeholders.append(lambda *a: (_ for _ in ()).throw(NotImplementedError()))
    for placeholder in placeholders:
        question.check(placeholder)
        assert question.status == NOT_ANSWERED, question.message


def test_hint_and_solution_print_something(capsys):
    for lesson in LESSONS:
        for q in load_lesson(lesson):
            q.hint()
            q.solution()
            out = capsys.readouterr().out
            assert q.hint_text in out
            assert solution_code(lesson, q.name) in out
            assert "No worked solution" not in out


def test_summary_and_assert_all_correct(capsys):
    lesson = load_lesson("ex00")
    lesson.q1.check(N_USERS)
    lesson.summary()
    out = capsys.readouterr().out
    assert "1 of 4 questions correct" in out and "not answered" in out
    with pytest.raises(AssertionError, match="q2"):
        lesson.assert_all_correct()


def test_checks_write_the_grading_file(tmp_path, monkeypatch):
    target = tmp_path / "grades.json"
    monkeypatch.setenv("RECSYS_GRADING_FILE", str(target))
    lesson = ExerciseSet("extest", [Question("q1", "answer", lambda a: None, "hint")])
    lesson.q1.check(42)
    data = json.loads(target.read_text())
    assert data["extest"][0]["status"] == CORRECT and data["extest"][0]["score"] == 1.0


def test_checker_that_breaks_is_reported_as_error():
    lesson = ExerciseSet("extest", [Question("q1", "x", lambda a: 1 / 0, "hint")])
    lesson.q1.check(1)
    assert lesson.q1.status == "error" and "ZeroDivisionError" in lesson.q1.message


def test_duplicate_question_names_are_refused():
    with pytest.raises(ValueError, match="duplicate"):
        ExerciseSet("extest", [Question("q1", "a", print, ""), Question("q1", "b", print, "")])


@pytest.mark.parametrize("source", build_mod.sources(), ids=lambda p: p.name)
def test_exercise_and_solution_notebooks_match_their_source(source):
    assert build_mod.drifted(source) == [], (
        "run `python -m recsys_lib.exercises.build --execute` and commit the notebooks"
    )


def test_build_strips_solutions_from_exercises():
    source = build_mod.sources()[0]
    exercise = build_mod.build_notebook(source, "exercise")
    solution = build_mod.build_notebook(source, "solution")
    ex_code = "\n".join(c.source for c in exercise.cells if c.cell_type == "code")
    sol_code = "\n".join(c.source for c in solution.cells if c.cell_type == "code")
    assert "BEGIN SOLUTION" not in ex_code + sol_code and "BEGIN EXERCISE" not in sol_code
    assert "assert_all_correct()" in sol_code and "assert_all_correct()" not in ex_code
    assert "q1.hint()" in ex_code and "q1.hint()" not in sol_code
    for q in load_lesson(source.stem.split("_")[0]):
        assert solution_code(source.stem.split("_")[0], q.name) not in ex_code


def test_parse_source_rejects_unknown_cell_kinds():
    with pytest.raises(ValueError, match="unknown cell kind"):
        build_mod.parse_source("# %% [teacher]\nx = 1\n")


def test_numpy_answers_count_as_numbers():
    lesson = load_lesson("ex00")
    lesson.q1.check(np.int64(N_USERS))
    assert lesson.q1.status == CORRECT
