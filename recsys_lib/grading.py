"""Grade learners' exercise notebooks: run each one in a fresh kernel and total the points.

Usage (explained in the README's "For teachers" section)::

    python -m recsys_lib.grading alice/01_preprocessing.ipynb bob/01_preprocessing.ipynb \\
        --csv grades.csv --json grades.json
    recsys-grade submissions/*.ipynb --timeout 60 --total-timeout 600 --lesson ex01

Each notebook is executed on an in-memory copy (the learner's file is never written), in
its own folder, in a fresh ``python3`` kernel with ``RECSYS_QUICK=1`` and
``RECSYS_GRADING_FILE`` pointing at a private temporary file. Every ``qN.check(...)`` in
the notebook records its result in that file (see
:meth:`recsys_lib.exercises.core.ExerciseSet._write_grading_file`); the grader then scores
every question of the lesson, so a question the notebook never checked counts as
"not answered". A cell that raises does not stop the run; a cell that runs past the
per-cell timeout, or past the notebook's total time limit, stops the kernel, and the
results recorded before it still count. A file that cannot be read as a notebook scores 0
with the reason, and grading goes on with the next file.

Exit status: 0 when grading ran (whatever the learners scored), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from recsys_lib.config import QUICK_ENV_VAR
from recsys_lib.exercises import CORRECT, NOT_ANSWERED, ExerciseSet, load_lesson
from recsys_lib.exercises.core import GRADING_FILE_ENV_VAR

#: Status of every question of a notebook that could not be graded at all.
NOT_GRADED = "not graded"
DEFAULT_CELL_TIMEOUT = 120
DEFAULT_TOTAL_TIMEOUT = 900
CSV_FIELDS = ("notebook", "lesson", "question", "title", "status", "points", "score", "message")

#: Looks up a lesson's questions by name (``"ex01"``); :func:`load_lesson` by default.
LessonResolver = Callable[[str], ExerciseSet]

_LESSON_NAME = re.compile(r"^ex\d{2}$")
_LESSON_IN_FILE_NAME = re.compile(r"(?<!\d)(\d{2})_")
_QUIET_LOG = logging.getLogger(__name__ + ".nbclient")
_QUIET_LOG.addHandler(logging.NullHandler())
_QUIET_LOG.propagate = False


class NotebookUnreadable(Exception):
    """Raised when a file cannot be graded as a notebook; the message says why."""


@dataclass
class NotebookReport:
    """The grade of one notebook.

    Attributes:
        notebook: the path as given on the command line.
        lesson: the lesson graded (``"ex01"``), or None when it could not be found.
        questions: one dict per question: lesson, question, title, status, points, score,
            message.
        problems: what went wrong while running (errors in cells, timeouts), for the teacher.
        error: why the notebook could not be graded at all (then every score is 0), or None.
    """

    notebook: str
    lesson: str | None
    questions: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def score(self) -> float:
        """Points earned."""
        return float(sum(q["score"] for q in self.questions))

    @property
    def max_points(self) -> float:
        """Points available in the lesson."""
        return float(sum(q["points"] for q in self.questions))

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data (what ``--json`` writes, one per notebook)."""
        return {"notebook": self.notebook, "lesson": self.lesson, "score": self.score,
                "max_points": self.max_points, "graded": self.error is None,
                "error": self.error, "problems": list(self.problems),
                "questions": [dict(q) for q in self.questions]}


# ---------------------------------------------------------------------------- finding things
def lesson_from_file_name(path: Path) -> str | None:
    """Guess the lesson from a notebook's file name: ``01_preprocessing.ipynb`` -> ``ex01``.

    Explained in the README's "For teachers" section.

    Args:
        path: the notebook's path; a prefix such as ``alice_01_x.ipynb`` is allowed.

    Returns:
        ``"exNN"`` for the first two-digit number followed by ``_``, or None.
    """
    match = _LESSON_IN_FILE_NAME.search(path.name)
    return f"ex{match.group(1)}" if match else None


def find_lesson(metadata: Any, path: Path, override: str | None = None) -> str | None:
    """Which lesson a notebook belongs to.

    Explained in the README's "For teachers" section.

    Args:
        metadata: the notebook's metadata (``recsys_exercise.lesson`` wins), or None when
            the notebook could not be read.
        path: the notebook's path, the last resort (see :func:`lesson_from_file_name`).
        override: the ``--lesson`` option, used when the metadata has no lesson.

    Returns:
        The lesson name, or None when nothing tells.
    """
    info = metadata.get("recsys_exercise") if isinstance(metadata, dict) else None
    lesson = info.get("lesson") if isinstance(info, dict) else None
    if isinstance(lesson, str) and lesson:
        return lesson
    return override or lesson_from_file_name(path)


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read and validate a notebook file, converted to nbformat 4.

    Explained in the README's "For teachers" section.

    Args:
        path: the file.

    Returns:
        The notebook.

    Raises:
        NotebookUnreadable: missing file, not JSON, or not a valid notebook (the message
            is meant for the teacher and the learner).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotebookUnreadable("file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise NotebookUnreadable(f"cannot read the file: {err}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            nb = nbformat.convert(nbformat.reader.reads(text), 4)
            nbformat.validate(nb)
        except nbformat.reader.NotJSONError:
            raise NotebookUnreadable("the file is not valid JSON, so it is not a notebook "
                                     "(was it edited outside Jupyter?)") from None
        except Exception as err:  # noqa: BLE001 - any malformed file is reported, not raised
            reason = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            raise NotebookUnreadable(f"not a valid notebook: {reason}") from None
    return nb


# ---------------------------------------------------------------------------- running cells
def execute_notebook(nb: nbformat.NotebookNode, folder: Path, grading_file: Path,
                     cell_timeout: float = DEFAULT_CELL_TIMEOUT,
                     total_timeout: float = DEFAULT_TOTAL_TIMEOUT) -> list[str]:
    """Run every code cell of ``nb`` (in place, in memory) in a fresh kernel.

    Explained in the README's "For teachers" section. The kernel runs in ``folder`` with
    ``RECSYS_QUICK=1`` and ``RECSYS_GRADING_FILE=grading_file`` in its own environment;
    the grader's ``os.environ`` is not changed. Errors in cells do not stop the run; a
    timeout stops it and the kernel is killed.

    Args:
        nb: the notebook; its cells receive their outputs.
        folder: working directory of the kernel (the notebook's folder).
        grading_file: where the notebook's checks write their results.
        cell_timeout: seconds one cell may run.
        total_timeout: seconds the whole notebook may take, kernel start included.

    Returns:
        Problems found, one sentence each (errors in cells, timeouts, a dead kernel).
    """
    from nbclient import NotebookClient

    deadline = time.monotonic() + total_timeout
    env = {**os.environ, QUICK_ENV_VAR: "1", GRADING_FILE_ENV_VAR: str(grading_file)}
    client = NotebookClient(
        nb, kernel_name="python3", allow_errors=True, timeout=max(1, math.ceil(cell_timeout)),
        startup_timeout=max(1, math.ceil(min(60.0, total_timeout))),
        shutdown_kernel="immediate", interrupt_on_timeout=False, log=_QUIET_LOG,
        resources={"metadata": {"path": str(folder)}},
    )
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}  # kernel's own logs
    try:
        with client.setup_kernel(env=env, **quiet):
            return _run_cells(client, nb, cell_timeout, deadline, total_timeout)
    except Exception as err:  # noqa: BLE001 - a learner's notebook must never crash the grader
        return [f"the kernel could not be started or stopped: {type(err).__name__}: {err}"]


def _run_cells(client: Any, nb: nbformat.NotebookNode, cell_timeout: float, deadline: float,
               total_timeout: float) -> list[str]:
    """Execute the code cells one by one until the end, a timeout or a dead kernel."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    problems: list[str] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        where = _describe_cell(index, cell)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            problems.append(f"the total time limit of {total_timeout:g} s ran out before "
                            f"{where}; it and the cells after it did not run")
            break
        limited_by_total = remaining < cell_timeout
        client.timeout = max(1, math.ceil(min(cell_timeout, remaining)))
        try:
            client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
        except CellTimeoutError:
            limit = (f"the total time limit of {total_timeout:g} s ran out" if limited_by_total
                     else f"timed out after {cell_timeout:g} s")
            problems.append(f"{where}: {limit}; the kernel was stopped and the cells after "
                            "it did not run (results checked before it still count)")
            break
        except DeadKernelError:
            problems.append(f"{where}: the kernel died (crashed or exited); the cells after "
                            "it did not run")
            break
        problems += [f"{where} raised {error}" for error in _cell_errors(cell)]
    return problems


def _describe_cell(index: int, cell: nbformat.NotebookNode) -> str:
    """``cell 7 (`x = 1 / 0`)``: the 1-based position among all cells and its first line."""
    first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
    if len(first) > 40:
        first = first[:37] + "..."
    return f"cell {index + 1} (`{first}`)"


def _cell_errors(cell: nbformat.NotebookNode) -> list[str]:
    """``"NameError: name 'x' is not defined"`` for each error output of an executed cell."""
    errors = []
    for output in cell.get("outputs", []):
        if output.get("output_type") != "error":
            continue
        name, value = output.get("ename", "Error"), str(output.get("evalue", ""))
        text = f"{name}: {value}" if value else name
        if name == "NotImplementedError":
            text += " (a question not answered yet)"
        errors.append(text)
    return errors


# ---------------------------------------------------------------------------- grading
def read_grading_file(path: Path) -> tuple[dict[str, Any], str | None]:
    """Read the results the notebook's checks wrote.

    Explained in the README's "For teachers" section.

    Args:
        path: the ``RECSYS_GRADING_FILE`` of the run.

    Returns:
        ``({lesson: [result, ...]}, None)``; an empty dict when no check ran. When the file
        is damaged: ``({}, reason)``.
    """
    if not path.is_file():
        return {}, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return {}, f"the grading file could not be read ({err}); no answer counted"
    if not isinstance(data, dict):
        return {}, "the grading file was not a JSON object; no answer counted"
    return data, None


def grade_results(exercise_set: ExerciseSet, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Score every question of a lesson from the recorded results.

    Explained in the README's "For teachers" section. Titles and points come from the
    lesson itself, never from the file; a question without a recorded result is
    "not answered".

    Args:
        exercise_set: the lesson's questions.
        data: ``{lesson: [result, ...]}`` as written by the checks.

    Returns:
        One dict per question, in order: lesson, question, title, status, points, score,
        message.
    """
    entries = data.get(exercise_set.name)
    recorded = {e.get("question"): e for e in entries if isinstance(e, dict)} \
        if isinstance(entries, list) else {}
    rows = []
    for q in exercise_set:
        entry = recorded.get(q.name, {})
        status = str(entry.get("status", NOT_ANSWERED))
        rows.append({"lesson": exercise_set.name, "question": q.name, "title": q.title,
                     "status": status, "points": float(q.points),
                     "score": float(q.points) if status == CORRECT else 0.0,
                     "message": str(entry.get("message", ""))})
    return rows


def _not_graded(exercise_set: ExerciseSet | None, reason: str) -> list[dict[str, Any]]:
    """Rows scoring 0 for every question of a notebook that could not be graded."""
    if exercise_set is None:
        return []
    return [{"lesson": exercise_set.name, "question": q.name, "title": q.title,
             "status": NOT_GRADED, "points": float(q.points), "score": 0.0, "message": reason}
            for q in exercise_set]


def _resolve(lesson: str | None, resolve: LessonResolver) -> tuple[ExerciseSet | None, str]:
    """The lesson's questions, or None and the reason they cannot be found."""
    if lesson is None:
        return None, ("cannot tell which lesson this is: no recsys_exercise metadata, no "
                      "--lesson and no NN_ in the file name")
    try:
        return resolve(lesson), ""
    except Exception as err:  # noqa: BLE001 - unknown or broken lesson module
        return None, f"cannot load lesson {lesson}: {type(err).__name__}: {err}"


def grade_notebook(path: Path | str, *, lesson: str | None = None,
                   cell_timeout: float = DEFAULT_CELL_TIMEOUT,
                   total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
                   resolve: LessonResolver | None = None) -> NotebookReport:
    """Grade one learner notebook; never raises for a learner's mistake.

    Explained in the README's "For teachers" section.

    Args:
        path: the notebook file.
        lesson: the ``--lesson`` option: used when the notebook's metadata has no lesson.
        cell_timeout: seconds one cell may run.
        total_timeout: seconds the whole notebook may take.
        resolve: looks up a lesson's :class:`ExerciseSet`; :func:`load_lesson` when None
            (tests pass their own).

    Returns:
        The report; ``report.error`` says why a notebook could not be graded (score 0).
    """
    path = Path(path)
    resolve = resolve or load_lesson
    try:
        nb = read_notebook(path)
    except NotebookUnreadable as err:
        name = find_lesson(None, path, lesson)
        exercise_set, _ = _resolve(name, resolve)
        return NotebookReport(str(path), name, _not_graded(exercise_set, str(err)), [], str(err))
    name = find_lesson(nb.metadata, path, lesson)
    exercise_set, reason = _resolve(name, resolve)
    if exercise_set is None:
        return NotebookReport(str(path), name, [], [], reason)
    report = NotebookReport(str(path), name, problems=_metadata_notes(nb, name, lesson))
    data: dict[str, Any] = {}
    if _has_code(nb):
        with tempfile.TemporaryDirectory(prefix="recsys-grade-") as tmp:
            grading_file = Path(tmp) / "grading.json"
            report.problems += execute_notebook(nb, path.resolve().parent, grading_file,
                                                cell_timeout, total_timeout)
            data, damaged = read_grading_file(grading_file)
        report.problems += [damaged] if damaged else []
    report.questions = grade_results(exercise_set, data)
    return report


def _has_code(nb: nbformat.NotebookNode) -> bool:
    """Whether any cell has code to run (if not, no kernel is started)."""
    return any(c.cell_type == "code" and c.source.strip() for c in nb.cells)


def _metadata_notes(nb: nbformat.NotebookNode, lesson: str, override: str | None) -> list[str]:
    """Warnings about the notebook itself: a solutions notebook, a --lesson mismatch, no code."""
    notes = []
    info = nb.metadata.get("recsys_exercise")
    if isinstance(info, dict) and info.get("variant") == "solution":
        notes.append("this is the worked-solutions notebook, not the exercise notebook")
    if override and override != lesson:
        notes.append(f"--lesson {override} ignored: the notebook's metadata says {lesson}")
    if not _has_code(nb):
        notes.append("the notebook has no code cells: nothing was run")
    return notes


def grade_notebooks(paths: list[Path | str], *, lesson: str | None = None,
                    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
                    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
                    resolve: LessonResolver | None = None,
                    progress: Callable[[NotebookReport], None] | None = None,
                    ) -> list[NotebookReport]:
    """Grade several notebooks one after the other (see :func:`grade_notebook`).

    Explained in the README's "For teachers" section.

    Args:
        paths: the notebook files.
        lesson, cell_timeout, total_timeout, resolve: as in :func:`grade_notebook`.
        progress: called with each report as soon as it is ready (the CLI prints it).

    Returns:
        One report per path, in order.
    """
    reports = []
    for path in paths:
        report = grade_notebook(path, lesson=lesson, cell_timeout=cell_timeout,
                                total_timeout=total_timeout, resolve=resolve)
        if progress is not None:
            progress(report)
        reports.append(report)
    return reports


# ---------------------------------------------------------------------------- output
def format_report(report: NotebookReport) -> str:
    """The per-notebook text the CLI prints: total line, one line per question, problems.

    Explained in the README's "For teachers" section.

    Args:
        report: a notebook's grade.

    Returns:
        Several lines, e.g. starting ``01_preprocessing.ipynb  ex01  3/4 points``.
    """
    lines = [f"{report.notebook}  {report.lesson or '?'}  "
             f"{report.score:g}/{report.max_points:g} points"]
    if report.error:
        lines.append(f"  NOT GRADED: {report.error}")
    width = max((len(q["question"]) for q in report.questions), default=2)
    for q in report.questions:
        quiet = report.error or q["status"] in (CORRECT, NOT_ANSWERED)
        message = "" if quiet else _shorten(q["message"], 70)
        lines.append(f"  {q['question']:<{width}}  {q['status']:<12}  "
                     f"{q['score']:g}/{q['points']:g}  {q['title']}"
                     + (f"  -- {message}" if message else ""))
    if report.problems:
        lines.append("  problems:")
        lines += [f"    - {problem}" for problem in report.problems]
    return "\n".join(lines)


def _shorten(text: str, width: int) -> str:
    """The first line of ``text``, cut to ``width`` characters."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= width else first[: width - 3] + "..."


def csv_rows(reports: list[NotebookReport]) -> list[dict[str, Any]]:
    """One row per notebook and question (a single row for a notebook without a lesson).

    Explained in the README's "For teachers" section.

    Args:
        reports: the grades.

    Returns:
        Dicts with the keys of :data:`CSV_FIELDS`.
    """
    rows = []
    for report in reports:
        questions = report.questions or [{
            "question": "", "title": "", "status": NOT_GRADED, "points": 0.0, "score": 0.0,
            "message": report.error or "the lesson has no questions"}]
        for q in questions:
            rows.append({"notebook": report.notebook, "lesson": report.lesson or "",
                         **{key: q[key] for key in CSV_FIELDS[2:]}})
    return rows


def write_csv(reports: list[NotebookReport], path: Path) -> None:
    """Write :func:`csv_rows` to ``path`` (explained in the README's "For teachers" section).

    Raises:
        OSError: the file cannot be written.
    """
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(csv_rows(reports))


def write_json(reports: list[NotebookReport], path: Path) -> None:
    """Write the list of :meth:`NotebookReport.to_dict` to ``path`` (see the README).

    Raises:
        OSError: the file cannot be written.
    """
    path.write_text(json.dumps([r.to_dict() for r in reports], indent=1) + "\n",
                    encoding="utf-8")


# ---------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``python -m recsys_lib.grading`` / ``recsys-grade``."""
    parser = argparse.ArgumentParser(
        prog="recsys-grade",
        description="Grade learners' exercise notebooks (see the README, 'For teachers').")
    parser.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK")
    parser.add_argument("--csv", type=Path, metavar="FILE",
                        help="write one row per notebook and question")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="write a list of per-notebook reports")
    parser.add_argument("--timeout", type=float, default=DEFAULT_CELL_TIMEOUT,
                        metavar="SECONDS", help="seconds one cell may run (default: %(default)s)")
    parser.add_argument("--total-timeout", type=float, default=DEFAULT_TOTAL_TIMEOUT,
                        metavar="SECONDS",
                        help="seconds one notebook may run in all (default: %(default)s)")
    parser.add_argument("--lesson", metavar="exNN",
                        help="lesson of notebooks whose metadata does not name one")
    return parser


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject bad options before any notebook runs (``parser.error`` exits with status 2)."""
    if not args.timeout > 0 or not args.total_timeout > 0:
        parser.error("--timeout and --total-timeout must be positive numbers of seconds")
    if args.lesson is not None and not _LESSON_NAME.match(args.lesson):
        parser.error(f"--lesson must look like ex01, got {args.lesson!r}")
    for option, target in (("--csv", args.csv), ("--json", args.json)):
        if target is not None and not target.resolve().parent.is_dir():
            parser.error(f"{option}: folder {target.parent} does not exist")


def main(argv: list[str] | None = None) -> int:
    """Run the grader from the command line.

    Explained in the README's "For teachers" section.

    Args:
        argv: the arguments (``sys.argv[1:]`` when None).

    Returns:
        0 when grading ran (whatever the scores), 2 for bad usage (also when an output
        file cannot be written).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _check_arguments(parser, args)
    except SystemExit as stop:  # argparse exits on errors (2) and --help (0)
        return int(stop.code or 0)
    reports = grade_notebooks(args.notebooks, lesson=args.lesson, cell_timeout=args.timeout,
                              total_timeout=args.total_timeout,
                              progress=lambda r: print(format_report(r) + "\n", flush=True))
    graded = sum(r.error is None for r in reports)
    print(f"graded {graded} of {len(reports)} notebooks")
    try:
        if args.csv is not None:
            write_csv(reports, args.csv)
        if args.json is not None:
            write_json(reports, args.json)
    except OSError as err:
        print(f"recsys-grade: error: cannot write the report: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
