"""The grader's parts that need no kernel: the wire format, the scan, the hidden checks.

``recsys_lib.grading_wire`` carries answers from the notebook's kernel to the grader as
plain data; ``recsys_lib.grading_scan`` reads a notebook for tampering and copied solutions;
``recsys_lib.hidden_checks_example`` is the README's example of hidden checks.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from recsys_lib import grading, grading_scan, grading_wire, hidden_checks_example
from recsys_lib.data import load_movielens
from recsys_lib.exercises import CORRECT, INCORRECT, LESSONS, Incorrect, load_lesson
from recsys_lib.exercises.build import build_notebook, sources
from recsys_lib.exercises.core import (
    GRADED_RUN_ENV_VAR,
    NOT_SHOWN_WHILE_GRADED,
    ExerciseSet,
    LearnerError,
    Question,
    call_answer,
    solution_code,
    source_file,
)
from recsys_lib.exercises.ex00 import reference_top_items

EXAMPLE = Path(hidden_checks_example.__file__)


def round_trip(value: object) -> object:
    """Encode in "the kernel", send as JSON text, decode in "the grader"."""
    text = grading_wire.dumps({"kind": "test", "v": grading_wire.encode(value, lambda f: 1)})
    return grading_wire.decode(grading_wire.loads(text)["v"], lambda h, name: (h, name))


# ------------------------------------------------------------------ the wire format
@pytest.mark.parametrize("value", [
    0, -3, 2**80, 1.5, "text", None, True, [1, (2, "x")], {"a": {1, 2}, (1, 2): frozenset()},
    range(2, 9, 3), b"\x00\xff", complex(1, -2), np.int64(7), np.float32(0.5), np.bool_(True),
], ids=repr)
def test_plain_values_come_back_equal_and_of_the_same_type(value: object) -> None:
    back = round_trip(value)
    assert back == value and type(back) is type(value)


def test_arrays_frames_and_sparse_matrices_come_back_equal() -> None:
    arr = np.arange(12, dtype=np.int32).reshape(3, 4)
    assert np.array_equal(round_trip(arr), arr) and round_trip(arr).dtype == np.int32
    words = np.array(["a", None, 3], dtype=object)
    assert round_trip(words).tolist() == words.tolist()
    nan = round_trip(float("nan"))
    assert isinstance(nan, float) and nan != nan
    frame = pd.DataFrame({"user_id": [1, 2], "rating": [4.0, 3.5], "title": ["x", "y"]},
                         index=[10, 12])
    back = round_trip(frame)
    assert back.equals(frame) and list(back.dtypes) == list(frame.dtypes)
    series = pd.Series([1, None], dtype="Int64", index=["u", "v"], name="r")
    assert round_trip(series).equals(series) and round_trip(series).name == "r"
    matrix = sp.csr_matrix(np.eye(3))
    back = round_trip(matrix)
    assert back.format == "csr" and (back != matrix).nnz == 0


def test_functions_become_handles_and_other_objects_inert_stand_ins() -> None:
    assert round_trip(len) == (1, "len")  # the grader's stand-in: (handle, name) here

    class Tensor:
        def __array__(self, dtype=None, copy=None):
            return np.ones(2)

    back = round_trip(Tensor())
    assert type(back).__name__ == "Tensor" and isinstance(back, grading_wire.Foreign)
    assert np.array_equal(np.asarray(back), np.ones(2)) and not callable(back)
    inert = grading_wire.decode(grading_wire.encode(print))  # no stand-in maker: inert
    assert isinstance(inert, grading_wire.Foreign) and not callable(inert)


@pytest.mark.parametrize("forged", [
    {"$": "ndarray", "dtype": "|O8", "shape": [1], "b64": ""},  # object pointers
    {"$": "ndarray", "dtype": "<f8", "shape": [10**9], "b64": ""},  # size mismatch
    {"$": "ndarray", "dtype": "<f8", "shape": [-1], "b64": ""},
    {"$": "pickle", "v": base64.b64encode(b"cos\nsystem\n").decode()},  # unknown kind
    {"$": "list", "v": "not a list"},
    ["a bare JSON list"],
], ids=lambda d: json.dumps(d)[:40])
def test_decoding_refuses_what_encode_never_writes(forged: object) -> None:
    with pytest.raises(grading_wire.WireError):
        grading_wire.decode(forged)


def test_a_message_from_the_kernel_must_be_json_text_with_a_kind() -> None:
    for bad in (b"bytes", "{", "[1]", '{"no": "kind"}'):
        with pytest.raises(grading_wire.WireError):
            grading_wire.loads(bad)
    assert grading_wire.loads('{"kind": "answers", "answers": []}')["kind"] == "answers"


# ------------------------------------------------------------------ the kernel's side of check
def test_in_a_graded_run_check_only_records_and_solutions_are_hidden(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(GRADED_RUN_ENV_VAR, "1")
    monkeypatch.setattr(grading_wire, "_PENDING", {})
    lesson = ExerciseSet("extest", [Question("q1", "one", lambda a: None, "hint")])
    lesson.q1.check(41)
    assert lesson.q1.status == "not answered"  # nothing judged in the kernel
    assert grading_wire._PENDING == {("extest", "q1"): 41}
    assert solution_code("ex00", "q1") == NOT_SHOWN_WHILE_GRADED
    load_lesson("ex00").q1.solution()
    out = capsys.readouterr().out
    assert "Answer recorded" in out and NOT_SHOWN_WHILE_GRADED in out
    assert "nunique" not in out


def test_a_learner_error_seen_by_the_grader_is_reported_like_the_original() -> None:
    def stand_in(*args):
        raise LearnerError("KeyError", "'user_id'", 3)

    with pytest.raises(Incorrect, match=r"Your function raised KeyError: 'user_id' \(line 3\)"):
        call_answer(stand_in, 1)


def test_the_kernel_environment_holds_no_grading_channel(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setenv("RECSYS_GRADING_FILE", "/tmp/grades.json")
    env = grading.kernel_environment()
    assert "RECSYS_GRADING_FILE" not in env
    assert env[GRADED_RUN_ENV_VAR] == "1" and env["RECSYS_QUICK"] == "1"


# ------------------------------------------------------------------ the scan
def notebook(*cells: str) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell("# Test")] + [new_code_cell(c) for c in cells]
    return nb


@pytest.mark.parametrize("code, reason", [
    ('json.dump({}, open(os.environ["RECSYS_GRADING_FILE"], "w"))', "environment variables"),
    ("for q in EXERCISES:\n    q.checker = lambda a: None", "reaches into the exercise checks"),
    ('q1.status = "correct"', "changes the exercise checks"),
    ('setattr(q1, "check", print)', "changes objects by name"),
    ('exec(solution_code("ex00", "q1"))', "reads the worked solutions"),
    ('exec(solution_code("ex00", "q1"))', "exec, eval or compile"),
    ('nb = json.load(open(Path("..") / "solutions" / "00_x.ipynb"))', "worked solutions"),
    ("!cat ../solutions/00_setup_and_tour.ipynb", "reads the worked solutions"),
    ('mod = importlib.import_module("recsys_lib.exercises.core")', "imports code"),
    ("from recsys_lib import grading_wire", "grader's own modules"),
])
def test_the_scan_names_each_kind_of_tampering(code: str, reason: str) -> None:
    findings = grading_scan.find_tampering(notebook("x = 1", code))
    assert any(reason in f.reason and f.cell == 2 for f in findings), findings
    assert findings[0].describe().startswith("Cell 3 (`")


def test_the_scan_ignores_comments_and_ordinary_code() -> None:
    nb = notebook("# q1.solution()\n# exec(solution_code('ex00', 'q1'))",
                  'if q4.status == "correct":\n    model.evaluate(x)\n    df.eval("a + b")',
                  "import re\npattern = re.compile('x')\nsolutions = [1, 2]")
    assert grading_scan.find_tampering(nb) == []
    assert grading_scan.find_solution_calls(nb) == []
    called = grading_scan.find_solution_calls(notebook("q2.solution()"))
    assert [f.reason for f in called] == ["calls q2.solution()"]


@pytest.mark.parametrize("source", sources(), ids=lambda p: p.stem)
def test_no_course_notebook_looks_like_tampering(source: Path) -> None:
    for variant in ("exercise", "solution"):
        assert grading_scan.find_tampering(build_notebook(source, variant)) == [], variant


def test_answer_cells_are_the_cells_that_call_check() -> None:
    nb = notebook("n = 1\nq1.check(n)", "# q2.check(3)", "q2.check(2)\nq3 .check(1)")
    assert grading_scan.answer_cells(nb) == {"q1": 1, "q2": 3, "q3": 3}


def exercise_and_solution(lesson: str) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    source = source_file(lesson)
    return build_notebook(source, "exercise"), build_notebook(source, "solution")


def test_the_solutions_notebook_is_found_by_content_whatever_its_metadata() -> None:
    reference = grading_scan.solution_reference("ex00")
    assert set(reference.answers) == {"q1", "q2", "q3", "q4"}
    exercise, solution = exercise_and_solution("ex00")
    solution.metadata["recsys_exercise"]["variant"] = "exercise"
    verdict = grading_scan.detect_solutions(solution, reference,
                                            grading_scan.answer_cells(solution))
    assert verdict.whole.startswith("every answer cell (4 of 4) is the worked solution")
    assert "Worked solutions" in verdict.whole

    # Title and assert_all_correct() removed, quotes and comments changed: still found.
    solution.cells = [c for c in solution.cells[1:] if "assert_all_correct" not in c.source]
    for cell in solution.cells:
        cell.source = cell.source.replace('"', "'") + "\n# my own work"
    verdict = grading_scan.detect_solutions(solution, reference,
                                            grading_scan.answer_cells(solution))
    assert verdict.whole and len(verdict.copied) == 4

    verdict = grading_scan.detect_solutions(exercise, reference,
                                            grading_scan.answer_cells(exercise))
    assert verdict.whole is None and verdict.copied == {}


def test_one_copied_answer_is_flagged_not_the_whole_notebook() -> None:
    exercise, solution = exercise_and_solution("ex00")
    answers = grading_scan.answer_cells(exercise)
    exercise.cells[answers["q1"]].source = solution.cells[
        grading_scan.answer_cells(solution)["q1"]].source
    verdict = grading_scan.detect_solutions(exercise, grading_scan.solution_reference("ex00"),
                                            answers)
    assert verdict.whole is None and verdict.copied == {"q1": answers["q1"]}
    assert grading_scan.solution_reference("ex99") is None  # no source: nothing to compare


# ------------------------------------------------------------------ hidden checks
def test_the_example_hidden_checks_load_by_name(tmp_path: Path) -> None:
    checks = grading.load_hidden_checks(EXAMPLE)
    assert sorted(checks) == [("ex00", "q3"), ("ex01", "q1"), ("ex01", "q2")]
    assert [name for name, _ in checks[("ex00", "q3")]] == ["ex00_q3_other_ratings"]
    folder = tmp_path / "checks"
    folder.mkdir()
    (folder / "ex00.py").write_text("def ex00_q1(answer):\n    pass\n"
                                    "def helper(answer):\n    pass\n")
    (folder / "_private.py").write_text("raise RuntimeError('not loaded')\n")
    assert list(grading.load_hidden_checks(folder)) == [("ex00", "q1")]


@pytest.mark.parametrize("content, words", [
    (None, "no such file"),
    ("def helper(x):\n    pass\n", "defines no function"),
    ("raise ValueError('broken')\n", "ValueError: broken"),
])
def test_hidden_checks_that_cannot_load_are_refused(tmp_path: Path, content: str | None,
                                                    words: str,
                                                    capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "checks.py"
    if content is not None:
        path.write_text(content)
    with pytest.raises(grading.HiddenChecksError, match=words):
        grading.load_hidden_checks(path)
    assert grading.main(["nb.ipynb", "--hidden-checks", str(path)]) == 2
    assert "--hidden-checks" in capsys.readouterr().err


def test_a_hidden_check_for_an_unknown_question_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "checks.py"
    path.write_text("def ex00_q9(answer):\n    pass\n")
    assert grading.main(["nb.ipynb", "--hidden-checks", str(path)]) == 2
    assert "ex00_q9 names no question" in capsys.readouterr().err


def test_a_hard_coded_answer_passes_the_visible_check_but_not_the_hidden_one() -> None:
    ratings = load_movielens("bundled").ratings
    top10 = reference_top_items(ratings, 10)

    def hard_coded(table, n):  # fits exactly the two cases the notebook's check tries
        return [10, 20, 30] if n == 3 else top10

    question = load_lesson("ex00").q3
    assert question.evaluate(hard_coded) == (CORRECT, "Correct!")
    hidden = grading.load_hidden_checks(EXAMPLE)[("ex00", "q3")]
    status, message = grading.grade_answer(question, hard_coded, hidden)
    assert status == INCORRECT
    assert message.startswith("Hidden check ex00_q3_other_ratings: Not quite. On other "
                              "ratings with n=1")
    assert grading.grade_answer(question, reference_top_items, hidden) == (CORRECT,
                                                                           "Correct!")


def test_the_example_hidden_checks_accept_the_library_answers() -> None:
    from recsys_lib.preprocessing import k_core, mean_center

    hidden_checks_example.ex01_q1_other_ratings(mean_center)
    hidden_checks_example.ex01_q2_other_ratings(lambda ratings, k: k_core(ratings, k, k))
    with pytest.raises(Incorrect, match="k=2"):
        hidden_checks_example.ex01_q2_other_ratings(lambda ratings, k: ratings)


def test_every_lesson_is_known_to_the_scan_reference() -> None:
    for lesson in LESSONS:
        reference = grading_scan.solution_reference(lesson)
        assert set(reference.answers) == {q.name for q in load_lesson(lesson)}, lesson
