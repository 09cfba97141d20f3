"""Exercise machinery: hints, solutions, summaries, the grading file, and the generator that
builds exercise and solution notebooks from one source so they cannot drift apart.

Each lesson's checkers are tested with correct and wrong answers in tests/test_exercises_exNN.py.
"""

import json

import numpy as np
import pytest

from recsys_lib.config import REPO_ROOT
from recsys_lib.exercises import CORRECT, LESSONS, ExerciseSet, Question, load_lesson
from recsys_lib.exercises import build as build_mod
from recsys_lib.exercises.core import solution_code


@pytest.fixture(autouse=True)
def _fresh_results():
    for lesson in LESSONS:
        load_lesson(lesson).reset()


def test_every_lesson_has_a_case_file_and_a_source():
    for lesson in LESSONS:
        assert (REPO_ROOT / "tests" / f"test_exercises_{lesson}.py").is_file(), lesson
        assert list((REPO_ROOT / "exercises" / "source").glob(f"{lesson}_*.py")), lesson


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
    lesson.q1.check(671)
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
    lesson.q1.check(np.int64(671))
    assert lesson.q1.status == CORRECT
