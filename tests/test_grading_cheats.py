"""Each cheat of the issue "A grader that a student cannot fool" scores 0 and is reported.

Every test here runs kernels (seconds each), so all are in the slow tier (see conftest.py).
The ex99 notebooks come from test_grading.py (a throwaway lesson defined in their first
cell); the ex00 notebooks are built from the course's own source with
``recsys_lib.exercises.build``, so they match whatever the stored notebooks become when
they are regenerated.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nbformat
import pytest
from test_grading import Q3_ENVIRONMENT, resolve, statuses, write_notebook

from recsys_lib import grading, grading_scan, hidden_checks_example
from recsys_lib.data import load_movielens
from recsys_lib.exercises.build import build_notebook
from recsys_lib.exercises.core import source_file
from recsys_lib.exercises.ex00 import reference_top_items

# The cheats, one cell each, in an ex99 notebook (every question wants 42).
WRITE_RESULT_FILE = """\
import json
fake = {"ex99": [{"question": q, "status": "correct", "score": 9} for q in ("q1", "q2", "q3")]}
json.dump(fake, open(os.environ.get("RECSYS_GRADING_FILE", "grading.json"), "w"))"""
PATCH_CHECKERS = """\
for q in EXERCISES:
    q.checker = lambda a: None
q2.check(41)"""
PRINT_CORRECT = """\
q3.status = "correct"
print("[Correct] Third: Correct!")"""

# ex00 answer cells that are right, written differently from the worked solutions.
EX00_ANSWERS = {
    "q1": "n_users = len(set(ratings['user_id']))\nq1.check(n_users)",
    "q2": "density = len(ratings) / (len(set(ratings.user_id)) * len(set(ratings.item_id)))\n"
          "q2.check(density)",
    "q3": "def top_items(ratings, n):\n    c = ratings.groupby('item_id').size()\n"
          "    return sorted(c.index, key=lambda i: (-c[i], i))[:n]\n\nq3.check(top_items)",
    "q4": "c = ratings.item_id.value_counts()\n"
          "top10_share = c.iloc[:math.ceil(len(c) / 10)].sum() / len(ratings)\n"
          "q4.check(top10_share)",
}


def ex00_notebook(path: Path, variant: str = "exercise", **answers: str) -> Path:
    """Build lesson 00's notebook from its source and replace the given answer cells."""
    nb = build_notebook(source_file("ex00"), variant)
    cells = grading_scan.answer_cells(nb)
    for question, source in answers.items():
        nb.cells[cells[question]].source = source
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# ------------------------------------------------------------------ runs a kernel
def test_a_result_file_a_patched_checker_or_a_printed_correct_count_for_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the tampering scan switched off, the design alone gives these cheats 0."""
    monkeypatch.setattr(grading_scan, "find_tampering", lambda nb: [])
    path = write_notebook(tmp_path / "nb.ipynb", WRITE_RESULT_FILE, PATCH_CHECKERS,
                          PRINT_CORRECT)
    report = grading.grade_notebook(path, resolve=resolve)
    assert report.problems == [] and report.score == 0
    assert statuses(report) == {"q1": "not answered", "q2": "incorrect", "q3": "not answered"}
    messages = [q["message"] for q in report.questions]
    assert messages == ["Not answered: no cell calls q1.check(...)",
                        "Not quite. The answer is 42",
                        "Not answered: no cell calls q3.check(...)"]
    assert not (tmp_path / "grading.json").exists()  # it was written in the kernel's folder


def test_the_same_cheats_are_reported_as_tampering_in_the_csv(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(grading, "load_lesson", resolve)
    path = write_notebook(tmp_path / "99_cheat.ipynb", "q1.check(42)", WRITE_RESULT_FILE,
                          PATCH_CHECKERS, PRINT_CORRECT)
    csv_file, json_file = tmp_path / "grades.csv", tmp_path / "grades.json"
    assert grading.main([str(path), "--csv", str(csv_file), "--json", str(json_file)]) == 0
    with open(csv_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["question"], r["status"], r["score"]) for r in rows] == [
        (q, "tampering detected", "0.0") for q in ("q1", "q2", "q3")]
    message = rows[0]["message"]
    assert message.startswith("Tampering detected: Cell 4 (`json.dump(fake, open(os.environ")
    assert "uses the grader's environment variables" in message
    assert "Cell 5 (`q.checker = lambda a: None`) reaches into the exercise checks" in message
    assert "Cell 6 (`q3.status = \"correct\"`) changes the exercise checks" in message
    assert message.endswith("this scores 0")  # q1 itself was right: no "without it"
    assert "(without it: incorrect)" in rows[1]["message"]
    flags = json.loads(json_file.read_text())[0]["flags"]
    assert len(flags) == 3 and all(f.startswith("Tampering: Cell") for f in flags)
    assert "tampering detected" in capsys.readouterr().out


def test_a_submission_cannot_reach_or_delete_another(tmp_path: Path) -> None:
    """Alice's notebook deletes Bob's file: Bob is still graded; Alice is flagged."""
    bob = write_notebook(tmp_path / "bob" / "99_test.ipynb", "q1.check(42)", "q2.check(42)",
                         Q3_ENVIRONMENT)
    alice = write_notebook(
        tmp_path / "alice" / "99_test.ipynb", "q1.check(42)",
        'os.remove("../bob/99_test.ipynb")',  # relative: her folder is a private copy
        f"os.remove({str(bob)!r})")  # absolute: works, unsandboxed, but is caught
    alice_report, bob_report = grading.grade_notebooks([alice, bob], resolve=resolve)
    assert not bob.exists()
    assert (bob_report.error, bob_report.score) == (None, 4)  # graded from memory
    assert alice_report.score == 0
    assert {q["status"] for q in alice_report.questions} == {"tampering detected"}
    assert "files outside its folder changed or vanished" in alice_report.questions[0]["message"]
    assert str(bob.resolve()) in alice_report.flags[0]
    assert alice_report.problems[0].startswith("Cell 4 (`os.remove(\"../bob/99_test.ipynb\")`) "
                                               "raised FileNotFoundError")


def test_running_or_reading_the_worked_solutions_scores_zero(tmp_path: Path) -> None:
    """exec(solution_code(...)) and reading solutions/ from disk: tampering, 0 everywhere."""
    from_source = ('from recsys_lib.exercises.core import solution_code\n'
                   'exec(solution_code("ex00", "q1"))\nq1.check(n_users)')
    from_disk = ('import json\nfrom recsys_lib.config import REPO_ROOT\n'
                 'sol = json.load(open(REPO_ROOT / "solutions" / "00_setup_and_tour.ipynb"))\n'
                 'code = next("".join(c["source"]) for c in sol["cells"]\n'
                 '            if "density =" in "".join(c["source"]))\n'
                 'exec(code.replace("q2.check(density)", ""))\nq2.check(density)')
    path = ex00_notebook(tmp_path / "00_setup_and_tour.ipynb", q1=from_source, q2=from_disk)
    report = grading.grade_notebook(path)
    assert report.score == 0 and report.error is None
    assert {q["status"] for q in report.questions} == {"tampering detected"}
    assert any("reads the worked solutions" in f and "solution_code" in f
               for f in report.flags)
    assert any("reads the worked solutions" in f and "REPO_ROOT" in f for f in report.flags)
    # In the graded kernel solution_code() shows no code, so exec() had nothing to run.
    assert "(without it: raised)" in report.questions[0]["message"]
    assert any("raised SyntaxError" in p for p in report.problems)


def test_the_solutions_notebook_with_exercise_metadata_scores_zero(tmp_path: Path) -> None:
    path = ex00_notebook(tmp_path / "00_setup_and_tour.ipynb", variant="solution")
    nb = nbformat.read(path, as_version=4)
    nb.metadata["recsys_exercise"]["variant"] = "exercise"
    nbformat.write(nb, path)
    report = grading.grade_notebook(path)
    assert report.score == 0 and report.error is None
    assert {q["status"] for q in report.questions} == {"solution submitted"}
    assert report.questions[0]["message"].startswith(
        "Solution notebook submitted: every answer cell (4 of 4) is the worked solution")
    assert report.flags[0].startswith("Solution notebook submitted")


def test_hidden_checks_fail_a_function_that_only_fits_the_visible_check(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The README's example: ex00 q3 hard-coded for the notebook's two cases."""
    top10 = reference_top_items(load_movielens("bundled").ratings, 10)
    hard_coded = (f"def top_items(ratings, n):\n    return [10, 20, 30] if n == 3 else {top10}"
                  "\n\nq3.check(top_items)")
    path = ex00_notebook(tmp_path / "00_setup_and_tour.ipynb",
                         **{**EX00_ANSWERS, "q3": hard_coded})
    csv_file = tmp_path / "grades.csv"
    code = grading.main([str(path), "--csv", str(csv_file), "--timeout", "60",
                         "--hidden-checks", hidden_checks_example.__file__])
    assert code == 0
    with open(csv_file, newline="") as handle:
        rows = {r["question"]: r for r in csv.DictReader(handle)}
    assert {q: r["status"] for q, r in rows.items()} == {
        "q1": "correct", "q2": "correct", "q3": "incorrect", "q4": "correct"}
    assert rows["q3"]["message"].startswith("Hidden check ex00_q3_other_ratings: Not quite. "
                                            "On other ratings with n=1")
    assert f"{path}  ex00  3/4 points" in capsys.readouterr().out

