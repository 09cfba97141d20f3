"""Tests of the teacher's grader, ``python -m recsys_lib.grading`` (``recsys-grade``).

The notebooks are built here with nbformat. Their first code cell defines a throwaway lesson
``ex99`` inline (every question wants the answer 42, or a function that turns 6 into 42);
the grader is given the same questions through its ``resolve`` argument (or a monkeypatched
``load_lesson`` for the CLI), so these tests do not depend on the course's real lessons.
Each kernel start costs seconds, so only the tests marked "runs a kernel" execute notebooks.
The cheats of the issue "A grader that a student cannot fool" are in test_grading_cheats.py,
the wire format and the notebook scan in test_grading_parts.py.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from recsys_lib import grading
from recsys_lib.exercises import ExerciseSet, Incorrect, Question, call_answer

LESSON = "ex99"

# The first code cell of every test notebook: the lesson, defined inline.
SETUP = """\
import os
from recsys_lib.config import is_quick_mode
from recsys_lib.exercises import ExerciseSet, Incorrect, Question, call_answer

def _is_42(answer):
    if callable(answer):
        answer = call_answer(answer, 6)
    if answer != 42:
        raise Incorrect("The answer is 42")

EXERCISES = ExerciseSet("ex99", [
    Question("q1", "First", _is_42, "think", points=1),
    Question("q2", "Second", _is_42, "think", points=2),
    Question("q3", "Third", _is_42, "think", points=1),
])
q1, q2, q3 = EXERCISES"""

# q3 is right only in quick mode, in a graded run whose kernel has no grading file to write,
# in a folder of its own that holds a copy of the notebook and nothing else (write_notebook
# puts marker.txt beside the learner's file: the kernel must not see it). The variable names
# are split so that the grader's scan for tampering does not flag this cell.
Q3_ENVIRONMENT = """\
alone = [name.endswith(".ipynb") for name in os.listdir(".")] == [True]
secret = any(key.startswith("RECSYS_" + "GRADING") for key in os.environ)
graded = os.environ.get("RECSYS_" + "GRADED_RUN") == "1"
q3.check(42 if is_quick_mode() and alone and graded and not secret else 0)"""


def _is_42(answer: object) -> None:
    if callable(answer):
        answer = call_answer(answer, 6)
    if answer != 42:
        raise Incorrect("The answer is 42")


def lesson_questions() -> ExerciseSet:
    """The grader's copy of the inline lesson (same names, titles and points)."""
    return ExerciseSet(LESSON, [Question("q1", "First", _is_42, "", points=1),
                                Question("q2", "Second", _is_42, "", points=2),
                                Question("q3", "Third", _is_42, "", points=1)])


def resolve(name: str) -> ExerciseSet:
    """Stands in for ``load_lesson``: knows only ex99."""
    if name != LESSON:
        raise ValueError(f"unknown lesson {name!r}")
    return lesson_questions()


def write_notebook(path: Path, *cells: str, lesson: str | None = LESSON) -> Path:
    """Write an exercise notebook: title, the SETUP cell, then ``cells`` as code cells."""
    nb = new_notebook()
    if lesson is not None:
        nb.metadata["recsys_exercise"] = {"lesson": lesson, "variant": "exercise"}
    nb.cells = [new_markdown_cell("# Test"), new_code_cell(SETUP)]
    nb.cells += [new_code_cell(source) for source in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    (path.parent / "marker.txt").write_text("here")
    return path


def statuses(report: grading.NotebookReport) -> dict[str, str]:
    return {q["question"]: q["status"] for q in report.questions}


# ------------------------------------------------------------------ no kernel needed
def test_lesson_comes_from_the_option_then_metadata_then_file_name() -> None:
    meta = {"recsys_exercise": {"lesson": "ex01"}}
    assert grading.find_lesson(meta, Path("03_x.ipynb"), "ex02") == "ex02"  # the teacher's
    assert grading.find_lesson(meta, Path("03_x.ipynb")) == "ex01"
    assert grading.find_lesson({}, Path("d/alice_03_x.ipynb")) == "ex03"
    assert grading.find_lesson(None, Path("notes.ipynb")) is None
    assert grading.lesson_from_file_name(Path("01_preprocessing.ipynb")) == "ex01"


def test_question_rows_use_the_lessons_points_and_give_a_reason_for_every_lost_point() -> None:
    execution = grading.Execution(
        results={"q1": ("correct", "Correct!", 2), "q2": ("incorrect", "Not quite. No", 3)})
    rows = grading.question_rows(lesson_questions(), execution, {"q1": 2, "q2": 3})
    assert [(r["question"], r["status"], r["score"], r["points"]) for r in rows] == [
        ("q1", "correct", 1.0, 1.0), ("q2", "incorrect", 0.0, 2.0),
        ("q3", "not answered", 0.0, 1.0)]
    assert rows[2]["message"] == "Not answered: no cell calls q3.check(...)"

    stopped = grading.Execution(ran={2}, errors={2: ["NameError: name 'x' is not defined"]},
                                stopped=(4, "timed out after 3 s"))
    rows = grading.question_rows(lesson_questions(), stopped, {"q1": 2, "q2": 4, "q3": 5})
    assert [r["status"] for r in rows] == ["raised", "timeout", "timeout"]
    assert rows[0]["message"].startswith("The answer cell (cell 3) raised NameError")
    assert "timed out after 3 s" in rows[1]["message"] and "cell 5" in rows[2]["message"]
    assert all(r["message"][0].isupper() for r in rows)


def test_a_file_that_is_not_json_scores_zero(tmp_path: Path) -> None:
    path = tmp_path / "99_broken.ipynb"
    path.write_text("{ this is not JSON")
    report = grading.grade_notebook(path, resolve=resolve)
    assert report.lesson == LESSON  # from the file name
    assert "not valid JSON" in report.error
    assert report.score == 0 and report.max_points == 4
    assert set(statuses(report).values()) == {grading.NOT_GRADED}


@pytest.mark.parametrize("deleted", ["cells", "metadata"])
def test_a_notebook_with_a_key_deleted_scores_zero(tmp_path: Path, deleted: str) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", "q1.check(42)")
    data = json.loads(path.read_text())
    del data[deleted]
    path.write_text(json.dumps(data))
    report = grading.grade_notebook(path, lesson=LESSON, resolve=resolve)
    assert report.error.startswith("Not a valid notebook") and deleted in report.error
    assert report.score == 0


def test_a_notebook_whose_cells_were_all_deleted_answers_nothing(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "nb.ipynb")
    nb = nbformat.read(path, as_version=4)
    nb.cells = []
    nbformat.write(nb, path)
    report = grading.grade_notebook(path, resolve=resolve)  # no kernel is started
    assert report.error is None and report.score == 0
    assert set(statuses(report).values()) == {"not answered"}
    assert "no code cells" in report.problems[0]
    assert {q["message"] for q in report.questions} == {
        f"Not answered: no cell calls {q}.check(...)" for q in ("q1", "q2", "q3")}


def test_a_cell_edited_out_of_shape_scores_zero(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", "q1.check(42)")
    data = json.loads(path.read_text())
    del data["cells"][1]["source"]
    path.write_text(json.dumps(data))
    report = grading.grade_notebook(path, resolve=resolve)
    assert "'source' is a required property" in report.error


def test_a_missing_file_and_an_unknown_lesson_are_reported(tmp_path: Path) -> None:
    missing = grading.grade_notebook(tmp_path / "99_gone.ipynb", resolve=resolve)
    assert missing.error == "File not found" and missing.lesson == LESSON
    assert {q["message"] for q in missing.questions} == {"File not found"}
    unknown = grading.grade_notebook(write_notebook(tmp_path / "nb.ipynb", lesson="ex98"),
                                     resolve=resolve)
    assert "Cannot load lesson ex98" in unknown.error and unknown.questions == []
    nameless = grading.grade_notebook(write_notebook(tmp_path / "nb.ipynb", lesson=None),
                                      resolve=resolve)
    assert nameless.error.startswith("Cannot tell which lesson nb.ipynb is for")
    assert "no NN_ prefix" in nameless.error and "pass --lesson exNN" in nameless.error


def test_the_teachers_lesson_option_wins_over_the_metadata(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", lesson="ex98")  # the learner's metadata
    nb = nbformat.read(path, as_version=4)
    nb.cells = []
    nbformat.write(nb, path)
    report = grading.grade_notebook(path, lesson=LESSON, resolve=resolve)
    assert report.error is None and report.lesson == LESSON
    assert "The notebook's metadata says ex98; graded as ex99 (--lesson)" in report.problems


@pytest.mark.parametrize("argv", [
    [],
    ["nb.ipynb", "--timeout", "0"],
    ["nb.ipynb", "--timeout", "soon"],
    ["nb.ipynb", "--lesson", "lesson1"],
    ["nb.ipynb", "--csv", "no/such/folder/grades.csv"],
])
def test_bad_usage_exits_with_2(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert grading.main(argv) == 2
    assert "error" in capsys.readouterr().err


def test_the_module_runs_from_the_command_line(tmp_path: Path) -> None:
    """The real ``python -m`` entry point: a missing file is not graded, so the status is 1."""
    done = subprocess.run([sys.executable, "-m", "recsys_lib.grading", "00_gone.ipynb"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "00_gone.ipynb  ex00  0/4 points" in done.stdout
    assert "NOT GRADED: File not found" in done.stdout
    assert "1 notebook(s) not graded" in done.stderr


def test_a_notebook_without_a_lesson_hints_at_the_option(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_notebook(tmp_path / "homework.ipynb", lesson=None)
    assert grading.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "NOT GRADED: Cannot tell which lesson homework.ipynb is for" in out
    assert "pass --lesson exNN" in out


def test_help_exits_with_0(capsys: pytest.CaptureFixture) -> None:
    assert grading.main(["--help"]) == 0
    assert "--total-timeout" in capsys.readouterr().out


# ------------------------------------------------------------------ runs a kernel
def test_a_correct_notebook_gets_full_marks_in_quick_mode_in_its_folder(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", "q1.check(42)", "q2.check(6 * 7)",
                          Q3_ENVIRONMENT)
    before = path.read_bytes()
    report = grading.grade_notebook(path, resolve=resolve)
    assert report.error is None and report.problems == [] and report.flags == []
    assert (report.score, report.max_points) == (4, 4)
    assert path.read_bytes() == before  # the learner's file is never rewritten
    assert "nb.ipynb  ex99  4/4 points" in grading.format_report(report)


def test_a_cell_that_raises_is_reported_and_later_checks_still_count(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", "q1.check(41)", "x = 1 / 0",
                          "q2.check(42)", 'raise NotImplementedError("Write your answer")')
    report = grading.grade_notebook(path, resolve=resolve)
    assert statuses(report) == {"q1": "incorrect", "q2": "correct", "q3": "not answered"}
    assert report.score == 2
    assert report.problems[0] == "Cell 4 (`x = 1 / 0`) raised ZeroDivisionError: division by zero"
    assert "not answered yet" in report.problems[1]
    assert "Not quite. The answer is 42" in grading.format_report(report)


def test_function_answers_run_in_the_kernel_and_are_checked_here(tmp_path: Path) -> None:
    """q1 right, q2 raises in the learner's code, q3 never returns: a timeout for q3 only."""
    path = write_notebook(
        tmp_path / "nb.ipynb", "q1.check(lambda x: 7 * x)",
        "def broken(x):\n    return x / 0\n\nq2.check(broken)",
        "def endless(x):\n    while True:\n        pass\n\nq3.check(endless)", "q1.check(41)")
    report = grading.grade_notebook(path, cell_timeout=3, resolve=resolve)
    assert statuses(report) == {"q1": "correct", "q2": "incorrect", "q3": "timeout"}
    messages = {q["question"]: q["message"] for q in report.questions}
    assert messages["q2"] == ("Not quite. Your function raised ZeroDivisionError: division by "
                              "zero (line 2)")
    assert messages["q3"].startswith("While q3 was checked, the learner's code timed out")
    assert report.problems[-1].startswith("Cell 5 (`def endless(x):`): timed out after 3 s "
                                          "while its answer was checked")


def test_an_endless_loop_times_out_and_earlier_results_count(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", "q1.check(42)", "while True: pass",
                          "q2.check(42)")
    start = time.monotonic()
    report = grading.grade_notebook(path, cell_timeout=3, resolve=resolve)
    assert time.monotonic() - start < 20
    assert statuses(report) == {"q1": "correct", "q2": "timeout", "q3": "not answered"}
    assert len(report.problems) == 1
    assert report.problems[0].startswith("Cell 4 (`while True: pass`): timed out after 3 s")
    assert [q["message"] for q in report.questions][1:] == [
        "Not run: cell 4 timed out after 3 s before the answer cell (cell 5) ran",
        "Not answered: no cell calls q3.check(...)"]


def test_the_total_time_limit_stops_a_notebook(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", "q1.check(42)", "import time\ntime.sleep(60)")
    start = time.monotonic()
    report = grading.grade_notebook(path, cell_timeout=60, total_timeout=3, resolve=resolve)
    assert time.monotonic() - start < 20
    assert statuses(report)["q1"] == "correct"
    assert "the total time limit of 3 s ran out" in report.problems[0]


def test_the_command_grades_every_notebook_and_writes_csv_and_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(grading, "load_lesson", resolve)
    good = write_notebook(tmp_path / "alice" / "99_test.ipynb", "q1.check(42)",
                          "q2.check(42)", Q3_ENVIRONMENT)
    partial = write_notebook(tmp_path / "bob" / "99_test.ipynb", "q1.check(42)",
                             "q2.check(0)", lesson=None)  # lesson from the file name
    broken = tmp_path / "carol" / "99_test.ipynb"
    broken.parent.mkdir()
    broken.write_text("not a notebook")
    missing = tmp_path / "dave" / "99_test.ipynb"
    csv_file, json_file = tmp_path / "grades.csv", tmp_path / "grades.json"
    argv = [str(p) for p in (good, partial, broken, missing)]
    code = grading.main(argv + ["--csv", str(csv_file), "--json", str(json_file),
                                "--timeout", "30"])
    assert code == 1  # two files were not graded
    out = capsys.readouterr().out
    assert f"{good}  ex99  4/4 points" in out and f"{partial}  ex99  1/4 points" in out
    assert "not valid JSON" in out and "NOT GRADED: File not found" in out
    assert "graded 2 of 4 notebooks" in out

    with open(csv_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == grading.CSV_FIELDS
    assert len(rows) == 4 * 3
    assert [(r["question"], r["status"], r["score"]) for r in rows if r["notebook"] == str(
        partial)] == [("q1", "correct", "1.0"), ("q2", "incorrect", "0.0"),
                      ("q3", "not answered", "0.0")]
    assert {r["status"] for r in rows if r["notebook"] == str(missing)} == {"not graded"}
    assert all(r["message"] for r in rows if r["status"] != "correct")

    reports = json.loads(json_file.read_text())
    assert [(r["notebook"], r["score"], r["max_points"], r["graded"]) for r in reports] == [
        (str(good), 4, 4, True), (str(partial), 1, 4, True),
        (str(broken), 0, 4, False), (str(missing), 0, 4, False)]
    assert reports[3]["error"] == "File not found"
    assert reports[1]["questions"][1]["message"] == "Not quite. The answer is 42"
