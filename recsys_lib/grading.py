"""Grade learners' exercise notebooks: run each one in a fresh kernel, check the answers here.

Usage (explained in the README's "For teachers: grading" section)::

    python -m recsys_lib.grading alice/01_preprocessing.ipynb bob/01_preprocessing.ipynb \\
        --csv grades.csv --json grades.json
    recsys-grade submissions/*.ipynb --timeout 60 --total-timeout 600 --lesson ex01 \\
        --hidden-checks ~/teaching/hidden_checks.py

How a notebook is graded:

* every file is read into memory first, and every lesson's checkers and the hidden checks
  are imported in this process, before any learner code runs;
* each notebook runs in a fresh ``python3`` kernel, in its own temporary folder that holds
  only a copy of that notebook, with ``RECSYS_QUICK=1`` and ``RECSYS_GRADED_RUN=1``; no
  grading secret is in its folder or its environment;
* in that kernel ``qN.check(answer)`` judges nothing: it records the answer. After each cell
  the grader asks the kernel for the answers recorded, which travel as plain data (see
  :mod:`recsys_lib.grading_wire`); a function travels as a handle that the grader's checker
  calls in the kernel, getting plain data back. The checkers run here, loaded from the
  course's own modules (plus ``--hidden-checks``), so a patched checker, a written file or a
  printed "Correct!" counts for nothing;
* before running, the notebook is read for tampering and compared with the worked solutions
  by content (:mod:`recsys_lib.grading_scan`); afterwards the grader makes sure the other
  submissions and the course's files are unchanged.

A cell that raises does not stop the run; a cell that runs past the per-cell timeout, or
past the notebook's total time limit, stops the kernel, and answers checked before it still
count. A file that cannot be read as a notebook scores 0 with the reason.

Exit status: 0 when every notebook was graded, 1 when one was not (missing, unreadable, no
lesson, grading stopped), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import base64
import copy
import csv
import hashlib
import importlib.util
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from recsys_lib import grading_scan, grading_wire
from recsys_lib.config import QUICK_ENV_VAR, REPO_ROOT
from recsys_lib.exercises import CORRECT, ERROR, NOT_ANSWERED, ExerciseSet, Question, load_lesson
from recsys_lib.exercises.core import (
    GRADED_RUN_ENV_VAR,
    GRADING_FILE_ENV_VAR,
    SOURCE_DIR,
    LearnerError,
    evaluate,
)

#: Status of every question of a notebook that could not be graded at all.
NOT_GRADED = "not graded"
#: Status of a question whose cell, or whose check, ran out of time (or killed the kernel).
TIMEOUT = "timeout"
#: Status of a question whose answer cell raised before ``qN.check(...)`` ran.
RAISED = "raised"
#: Status of every question of a notebook that reaches for the grading machinery.
TAMPERING = "tampering detected"
#: Status of every question of a notebook found to be the worked solutions.
SOLUTION_SUBMITTED = "solution submitted"

DEFAULT_CELL_TIMEOUT = 120
DEFAULT_TOTAL_TIMEOUT = 900
CSV_FIELDS = ("notebook", "lesson", "question", "title", "status", "points", "score", "message")

#: Looks up a lesson's questions by name (``"ex01"``); :func:`load_lesson` by default.
LessonResolver = Callable[[str], ExerciseSet]
#: ``{(lesson, question): [(name, checker), ...]}``, from :func:`load_hidden_checks`.
HiddenChecks = dict[tuple[str, str], list[tuple[str, Callable[[Any], None]]]]

_LESSON_NAME = re.compile(r"^ex\d{2}$")
_LESSON_IN_FILE_NAME = re.compile(r"(?<!\d)(\d{2})_")
_INLINE_ARGUMENTS = 64_000  # characters of pickled arguments sent inside the request itself
_HIDDEN_NAME = re.compile(r"^(ex\d{2})_(q\d+)(?:_\w*)?$")
_QUIET_LOG = logging.getLogger(__name__ + ".nbclient")
_QUIET_LOG.addHandler(logging.NullHandler())
_QUIET_LOG.propagate = False


class NotebookUnreadable(Exception):
    """Raised when a file cannot be graded as a notebook; the message says why.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """


class HiddenChecksError(Exception):
    """Raised when ``--hidden-checks`` cannot be loaded; the message says why.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """


class KernelStopped(BaseException):
    """The kernel ran out of time or died; nothing more can run in it.

    A ``BaseException``, so that a checker's ``except Exception`` cannot swallow it while
    it calls a learner's function.

    Args:
        reason: what happened, e.g. ``"timed out after 3 s"``.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _CheckFailed(BaseException):
    """The kernel's reply to the grader could not be used; the question gets an error."""


@dataclass
class NotebookReport:
    """The grade of one notebook.

    Attributes:
        notebook: the path as given on the command line.
        lesson: the lesson graded (``"ex01"``), or None when it could not be found.
        questions: one dict per question: lesson, question, title, status, points, score,
            message (every lost point has its reason in the message).
        problems: what went wrong while running (errors in cells, timeouts), for the teacher.
        flags: tampering, a submitted solutions notebook, copied solutions, files changed.
        error: why the notebook could not be graded at all (then every score is 0), or None.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """

    notebook: str
    lesson: str | None
    questions: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
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
                "flags": list(self.flags), "questions": [dict(q) for q in self.questions]}


# ---------------------------------------------------------------------------- finding things
def lesson_from_file_name(path: Path) -> str | None:
    """Guess the lesson from a notebook's file name: ``01_preprocessing.ipynb`` -> ``ex01``.

    Explained in the README's "For teachers: grading" section.

    Args:
        path: the notebook's path; a prefix such as ``alice_01_x.ipynb`` is allowed.

    Returns:
        ``"exNN"`` for the first two-digit number followed by ``_``, or None.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    match = _LESSON_IN_FILE_NAME.search(path.name)
    return f"ex{match.group(1)}" if match else None


def find_lesson(metadata: Any, path: Path, override: str | None = None) -> str | None:
    """Which lesson a notebook belongs to.

    Explained in the README's "For teachers: grading" section. The teacher's ``--lesson``
    wins; then the notebook's metadata, then its file name (both are the learner's).

    Args:
        metadata: the notebook's metadata (``recsys_exercise.lesson``), or None when the
            notebook could not be read.
        path: the notebook's path, the last resort (see :func:`lesson_from_file_name`).
        override: the ``--lesson`` option.

    Returns:
        The lesson name, or None when nothing tells.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    if override:
        return override
    lesson = _metadata_lesson(metadata)
    return lesson or lesson_from_file_name(path)


def _metadata_lesson(metadata: Any) -> str | None:
    info = metadata.get("recsys_exercise") if isinstance(metadata, dict) else None
    lesson = info.get("lesson") if isinstance(info, dict) else None
    return lesson if isinstance(lesson, str) and lesson else None


def read_notebook(path: Path, data: bytes | None = None) -> nbformat.NotebookNode:
    """Read and validate a notebook file, converted to nbformat 4.

    Explained in the README's "For teachers: grading" section.

    Args:
        path: the file.
        data: its bytes, already read (then ``path`` only names it).

    Returns:
        The notebook.

    Raises:
        NotebookUnreadable: missing file, not JSON, or not a valid notebook (the message
            is meant for the teacher and the learner).

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    try:
        raw = path.read_bytes() if data is None else data
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise NotebookUnreadable("File not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise NotebookUnreadable(f"Cannot read the file: {err}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            nb = nbformat.convert(nbformat.reader.reads(text), 4)
            nbformat.validate(nb)
        except nbformat.reader.NotJSONError:
            raise NotebookUnreadable("The file is not valid JSON, so it is not a notebook "
                                     "(was it edited outside Jupyter?)") from None
        except Exception as err:  # noqa: BLE001 - any malformed file is reported, not raised
            reason = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            raise NotebookUnreadable(f"Not a valid notebook: {reason}") from None
    return nb


# ---------------------------------------------------------------------------- hidden checks
def load_hidden_checks(path: Path | str) -> HiddenChecks:
    """Load the teacher's extra checkers, run by the grader only (``--hidden-checks``).

    Explained in the README's "For teachers: grading" section. ``path`` is a Python file,
    or a folder whose ``*.py`` files (not starting with ``_``) are all loaded. Every
    function defined there whose name is ``exNN_qM`` or starts with ``exNN_qM_`` is a hidden
    check of question ``qM`` of lesson ``exNN``: it receives the learner's answer like the
    lesson's own checker and raises :class:`recsys_lib.exercises.Incorrect` when it is
    wrong. See ``recsys_lib/hidden_checks_example.py``.

    Args:
        path: the file or folder.

    Returns:
        ``{(lesson, question): [(function name, function), ...]}``, names sorted.

    Raises:
        HiddenChecksError: no such file, no Python file, a file that fails to import, or
            no function with such a name.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
    elif path.is_file():
        files = [path]
    else:
        raise HiddenChecksError(f"{path}: no such file or folder")
    if not files:
        raise HiddenChecksError(f"{path}: the folder has no .py file")
    checks: HiddenChecks = {}
    for number, file in enumerate(files):
        stem = re.sub(r"\W", "_", file.stem)
        name = f"recsys_hidden_checks_{number}_{stem}"
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise HiddenChecksError(f"{file}: cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # noqa: BLE001 - the teacher's file, reported as such
            raise HiddenChecksError(f"{file}: {type(err).__name__}: {err}") from None
        for attribute, value in sorted(vars(module).items()):
            match = _HIDDEN_NAME.match(attribute)
            if match and callable(value) and getattr(value, "__module__", None) == name:
                checks.setdefault((match.group(1), match.group(2)), []).append(
                    (attribute, value))
    if not checks:
        raise HiddenChecksError(f"{path}: defines no function named like ex01_q2 or "
                                "ex01_q2_other_seed")
    return checks


def grade_answer(question: Question, answer: Any,
                 hidden: Iterable[tuple[str, Callable[[Any], None]]] = ()) -> tuple[str, str]:
    """Check one answer in this process: the lesson's checker, then the hidden checks.

    Explained in the README's "For teachers: grading" section.

    Args:
        question: the grader's own copy of the question.
        answer: the learner's answer, as decoded by :mod:`recsys_lib.grading_wire`
            (a learner function is a stand-in that runs it in the kernel).
        hidden: the hidden checks of this question.

    Returns:
        ``(status, message)``: the visible check's result, or the first hidden check that
        fails, its message starting with ``Hidden check <name>:``.

    Raises:
        KernelStopped: the kernel ran out of time or died while a learner function ran.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    try:
        status, message = question.evaluate(answer)
        if status != CORRECT:
            return status, message
        for name, check in hidden:
            hidden_status, hidden_message = evaluate(check, answer)
            if hidden_status != CORRECT:
                return hidden_status, f"Hidden check {name}: {hidden_message}"
        return status, message
    except _CheckFailed as err:
        return ERROR, f"The answer could not be checked: {err}"


# ---------------------------------------------------------------------------- the kernel
class _LearnerFunction:
    """The grader's stand-in for a function defined in the notebook: calls it in the kernel."""

    def __init__(self, session: _KernelSession, handle: int, name: str) -> None:
        self._session, self._handle, self.__name__ = session, handle, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.call(self._handle, args, kwargs)

    def __repr__(self) -> str:
        return f"<learner function {self.__name__}>"


class _KernelSession:
    """Runs cells, and the grader's own requests, in one kernel within the time limits."""

    def __init__(self, client: Any, scratch_index: int, cell_timeout: float, deadline: float,
                 total_timeout: float, exchange: Path | None = None) -> None:
        self.client, self.scratch_index, self.exchange = client, scratch_index, exchange
        self.cell_timeout, self.deadline, self.total_timeout = cell_timeout, deadline, \
            total_timeout
        self.executed = self.calls = 0

    def _arm(self) -> bool:
        """Set the client's timeout for the next request; True when the total limit binds."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise KernelStopped(f"the total time limit of {self.total_timeout:g} s ran out")
        self.client.timeout = max(1, math.ceil(min(self.cell_timeout, remaining)))
        return remaining < self.cell_timeout

    def _execute(self, cell: nbformat.NotebookNode, index: int, **kwargs: Any) -> None:
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        by_total = self._arm()
        try:
            self.client.execute_cell(cell, index, **kwargs)
        except CellTimeoutError:
            raise KernelStopped(f"the total time limit of {self.total_timeout:g} s ran out"
                                if by_total else
                                f"timed out after {self.cell_timeout:g} s") from None
        except DeadKernelError:
            raise KernelStopped("the kernel died (crashed or exited)") from None

    def run(self, cell: nbformat.NotebookNode, index: int) -> None:
        """Execute one of the notebook's cells (its outputs land in ``cell``).

        Raises:
            KernelStopped: timeout or dead kernel.
        """
        self.executed += 1
        self._execute(cell, index, execution_count=self.executed)

    def request(self, code: str) -> dict[str, Any]:
        """Run the grader's own code in the kernel and read the message it displays.

        Raises:
            KernelStopped: timeout or dead kernel.
            _CheckFailed: no message, or one that cannot be read.
        """
        cell = nbformat.v4.new_code_cell(code)
        self._execute(cell, self.scratch_index, store_history=False)
        messages, errors = [], []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if grading_wire.MIME_TYPE in data:
                messages.append(data[grading_wire.MIME_TYPE])
            if output.get("output_type") == "error":
                errors.append(f"{output.get('ename')}: {output.get('evalue')}")
        if not messages:
            reason = f" ({errors[-1]})" if errors else ""
            raise _CheckFailed(f"the kernel sent no reply to the grader{reason}")
        try:
            return grading_wire.loads(messages[-1])
        except grading_wire.WireError as err:
            raise _CheckFailed(str(err)) from None

    def collect(self) -> list[dict[str, Any]]:
        """The answers recorded by ``qN.check(...)`` since the last call.

        Raises:
            KernelStopped: timeout or dead kernel.
            _CheckFailed: the kernel's reply cannot be read.
        """
        message = self.request(f"__import__({grading_wire.__name__!r}, "
                               "fromlist=['emit_pending']).emit_pending()")
        answers = message.get("answers")
        if message.get("kind") != "answers" or not isinstance(answers, list):
            raise _CheckFailed("the kernel's list of answers is malformed")
        return [a for a in answers if isinstance(a, dict)]

    def decode(self, data: Any) -> Any:
        """A value sent by the kernel; learner functions become stand-ins calling back."""
        try:
            return grading_wire.decode(data, lambda handle, name: _LearnerFunction(
                self, handle, name))
        except (grading_wire.WireError, RecursionError) as err:
            raise _CheckFailed(f"the kernel sent a value the grader cannot read ({err})") \
                from None

    def call(self, handle: int, args: tuple, kwargs: dict[str, Any]) -> Any:
        """Call a learner's function in the kernel and return its result as plain data.

        Raises:
            NotImplementedError: the function still raises it (not answered).
            LearnerError: the function raised something else.
            KernelStopped: timeout or dead kernel.
            _CheckFailed: the arguments or the reply cannot be sent.
        """
        try:
            blob = grading_wire.encode_call(args, kwargs)
        except Exception as err:  # noqa: BLE001 - the grader's own arguments
            raise _CheckFailed(f"the grader could not send the arguments ({err})") from None
        where = f"blob={blob!r}"
        if len(blob) > _INLINE_ARGUMENTS and self.exchange is not None:
            self.calls += 1  # large arguments go through a file: a huge cell is slow to parse
            file = self.exchange / f"call-{self.calls}.pickle"
            file.write_bytes(base64.b64decode(blob))
            where = f"path={str(file)!r}"
        message = self.request(f"__import__({grading_wire.__name__!r}, fromlist="
                               f"['serve_call']).serve_call({int(handle)}, {where})")
        kind = message.get("kind")
        if kind == "result":
            return self.decode(message.get("value"))
        if kind == "raised":
            text = str(message.get("message", ""))
            if message.get("not_implemented"):
                raise NotImplementedError(text)
            line = message.get("line")
            raise LearnerError(str(message.get("type", "Exception")), text,
                               line if type(line) is int else None)
        if kind == "unsendable":
            return grading_wire.decode({"$": "foreign", "type": "unsendable",
                                        "repr": str(message.get("message", ""))})
        raise _CheckFailed(f"unexpected reply {kind!r} from the kernel")


@dataclass
class Execution:
    """What running a notebook produced.

    Attributes:
        results: ``{question: (status, message, cell index)}`` for every answer checked.
        ran: indexes of the cells that ran to the end (with or without an error).
        errors: ``{cell index: ["NameError: ...", ...]}``.
        stopped: ``(cell index, reason)`` where the kernel stopped, or None.
        problems: sentences for the teacher.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """

    results: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    ran: set[int] = field(default_factory=set)
    errors: dict[int, list[str]] = field(default_factory=dict)
    stopped: tuple[int, str] | None = None
    problems: list[str] = field(default_factory=list)


def kernel_environment() -> dict[str, str]:
    """The environment of a graded notebook's kernel.

    The grader's environment, minus every ``RECSYS_GRAD*`` variable (such as the legacy
    ``RECSYS_GRADING_FILE``), plus ``RECSYS_QUICK=1`` and ``RECSYS_GRADED_RUN=1``. Nothing in
    it is secret: the kernel has no channel that the grader trusts.

    Returns:
        The variables.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RECSYS_GRAD") and k != GRADING_FILE_ENV_VAR}
    env.update({QUICK_ENV_VAR: "1", GRADED_RUN_ENV_VAR: "1"})
    return env


def execute_notebook(nb: nbformat.NotebookNode, folder: Path, exercise_set: ExerciseSet, *,
                     hidden: HiddenChecks | None = None,
                     cell_timeout: float = DEFAULT_CELL_TIMEOUT,
                     total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
                     exchange: Path | None = None) -> Execution:
    """Run every code cell of ``nb`` in a fresh kernel and check the answers in this process.

    Explained in the README's "For teachers: grading" section. After each cell the kernel
    sends the answers that ``qN.check(...)`` recorded; each is checked at once by
    :func:`grade_answer` with ``exercise_set`` (the grader's copy) and the hidden checks.
    Errors in cells do not stop the run; a timeout or a dead kernel stops it.

    Args:
        nb: the notebook (not changed: a copy runs).
        folder: working directory of the kernel.
        exercise_set: the grader's copy of the lesson's questions.
        hidden: hidden checks (see :func:`load_hidden_checks`).
        cell_timeout: seconds one cell (or one call of a learner function) may run.
        total_timeout: seconds the whole notebook may take, kernel start included.
        exchange: a folder outside ``folder`` where large arguments of learner functions
            are written for the kernel to read (inside the request when None).

    Returns:
        What happened; answers to other lessons' questions are ignored.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    from nbclient import NotebookClient

    run_nb = copy.deepcopy(nb)
    cells = list(run_nb.cells)
    run_nb.cells.append(nbformat.v4.new_code_cell("pass"))  # where the grader's requests run
    deadline = time.monotonic() + total_timeout
    client = NotebookClient(
        run_nb, kernel_name="python3", allow_errors=True,
        timeout=max(1, math.ceil(cell_timeout)),
        startup_timeout=max(1, math.ceil(min(60.0, total_timeout))),
        shutdown_kernel="immediate", interrupt_on_timeout=False, log=_QUIET_LOG,
        resources={"metadata": {"path": str(folder)}},
    )
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}  # kernel's own logs
    execution = Execution()
    started = False
    try:
        with client.setup_kernel(env=kernel_environment(), **quiet):
            started = True
            session = _KernelSession(client, len(cells), cell_timeout, deadline, total_timeout,
                                     exchange)
            _run_cells(session, cells, exercise_set, hidden or {}, execution)
    except Exception as err:  # noqa: BLE001 - a learner's notebook must never crash the grader
        what = "stopped" if started else "started"
        execution.problems.append(f"The kernel could not be {what}: {type(err).__name__}: "
                                  f"{err}")
        if not started:
            execution.stopped = (-1, f"the kernel could not be started ({err})")
    return execution


def _run_cells(session: _KernelSession, cells: list[nbformat.NotebookNode],
               exercise_set: ExerciseSet, hidden: HiddenChecks, execution: Execution) -> None:
    """Execute the code cells one by one, checking answers after each."""
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        where = _describe_cell(index, cell)
        try:
            session.run(cell, index)
            execution.ran.add(index)
            errors = _cell_errors(cell)
            if errors:
                execution.errors[index] = errors
                execution.problems += [f"{where} raised {error}" for error in errors]
            _check_answers(session, index, exercise_set, hidden, execution)
        except KernelStopped as stop:
            execution.stopped = (index, stop.reason)
            during = "" if index not in execution.ran else " while its answer was checked"
            if stop.reason.startswith("the kernel died"):
                execution.problems.append(f"{where}: {stop.reason}{during}; the cells after "
                                          "it did not run")
            else:
                execution.problems.append(
                    f"{where}: {stop.reason}{during}; the kernel was stopped and the cells "
                    "after it did not run (answers checked before it still count)")
            return


def _check_answers(session: _KernelSession, index: int, exercise_set: ExerciseSet,
                   hidden: HiddenChecks, execution: Execution) -> None:
    """Ask the kernel for the answers recorded by cell ``index`` and check each one here."""
    try:
        answers = session.collect()
    except _CheckFailed as err:
        execution.problems.append(f"{_describe_cell(index, None)}: the grader could not read "
                                  f"its answers: {err}")
        return
    for item in answers:
        name = item.get("question")
        if item.get("lesson") != exercise_set.name or name not in exercise_set.questions:
            note = (f"{_describe_cell(index, None)} answered {str(item.get('lesson'))[:20]} "
                    f"{str(name)[:20]}, which is not a question of {exercise_set.name}; ignored")
            if note not in execution.problems:
                execution.problems.append(note)
            continue
        question = exercise_set.questions[name]
        if "error" in item:
            execution.results[name] = (ERROR, _sentence(str(item["error"])), index)
            continue
        try:
            value = session.decode(item.get("value"))
            status, message = grade_answer(question, value, hidden.get((exercise_set.name,
                                                                        name), ()))
        except _CheckFailed as err:
            status, message = ERROR, f"The answer could not be checked: {err}"
        except KernelStopped as stop:
            execution.results[name] = (
                TIMEOUT, f"While {name} was checked, the learner's code {stop.reason}; the "
                "kernel was stopped", index)
            raise
        execution.results[name] = (status, message, index)


def _describe_cell(index: int, cell: nbformat.NotebookNode | None) -> str:
    """``Cell 7 (`x = 1 / 0`)``: the 1-based position among all cells and its first line."""
    if cell is None:
        return f"Cell {index + 1}"
    first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
    if len(first) > 40:
        first = first[:37] + "..."
    return f"Cell {index + 1} (`{first}`)"


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


def _sentence(text: str) -> str:
    """``text`` with its first letter capitalised."""
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------------------- grading
def question_rows(exercise_set: ExerciseSet, execution: Execution, answers: dict[str, int],
                  verdict: grading_scan.SolutionVerdict | None = None,
                  tampering: list[grading_scan.Finding] | None = None,
                  ) -> list[dict[str, Any]]:
    """Score every question of a lesson, with the reason for every lost point.

    Explained in the README's "For teachers: grading" section. Titles and points come from
    the grader's copy of the lesson. A question scores only when the grader's check says
    "correct" and the notebook shows no tampering and is not the worked solutions.

    Args:
        exercise_set: the lesson's questions.
        execution: what running the notebook produced.
        answers: ``{question: answer cell index}`` (see :func:`grading_scan.answer_cells`).
        verdict: the solutions check (see :func:`grading_scan.detect_solutions`).
        tampering: tampering found in the notebook.

    Returns:
        One dict per question, in order: lesson, question, title, status, points, score,
        message.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    rows = []
    for q in exercise_set:
        status, message = _question_outcome(q.name, execution, answers)
        if tampering:
            alone = "" if status == CORRECT else f" (without it: {status})"
            status, message = TAMPERING, ("Tampering detected: " + "; ".join(
                f.describe() for f in tampering) + f"{alone}; this scores 0")
        elif verdict is not None and verdict.whole:
            status, message = SOLUTION_SUBMITTED, (
                f"Solution notebook submitted: {verdict.whole}; this scores 0")
        elif verdict is not None and q.name in verdict.copied and status == CORRECT:
            message += (f" Flag: cell {verdict.copied[q.name] + 1} is identical to the worked "
                        "solution; check by hand whether it was copied.")
        rows.append({"lesson": exercise_set.name, "question": q.name, "title": q.title,
                     "status": status, "points": float(q.points),
                     "score": float(q.points) if status == CORRECT else 0.0,
                     "message": message})
    return rows


def _question_outcome(name: str, execution: Execution, answers: dict[str, int]
                      ) -> tuple[str, str]:
    """``(status, message)`` of one question, before the tampering and solution checks."""
    if name in execution.results:
        status, message, _ = execution.results[name]
        return status, message
    cell = answers.get(name)
    if cell is None:
        return NOT_ANSWERED, f"Not answered: no cell calls {name}.check(...)"
    where = f"cell {cell + 1}"
    if execution.stopped is not None and (execution.stopped[0] <= cell or
                                          execution.stopped[0] < 0):
        at, reason = execution.stopped
        if at < 0:
            return TIMEOUT, f"Not run: {reason}"
        if at == cell:
            return TIMEOUT, f"The answer cell ({where}) {reason}; {name} was never checked"
        return TIMEOUT, (f"Not run: cell {at + 1} {reason} before the answer cell ({where}) "
                         "ran")
    errors = execution.errors.get(cell, [])
    if any(e.startswith("NotImplementedError") for e in errors):
        return NOT_ANSWERED, f"Not answered: the answer cell ({where}) still raises " \
                             "NotImplementedError"
    if errors:
        return RAISED, f"The answer cell ({where}) raised {errors[0]} before {name}.check(...)" \
                       " recorded an answer"
    if cell not in execution.ran:
        return NOT_ANSWERED, f"Not answered: the answer cell ({where}) did not run"
    return NOT_ANSWERED, f"Not answered: the answer cell ({where}) ran but {name}.check(...) " \
                         "recorded no answer"


def _not_graded(exercise_set: ExerciseSet | None, reason: str) -> list[dict[str, Any]]:
    """Rows scoring 0 for every question of a notebook that could not be graded."""
    if exercise_set is None:
        return []
    return [{"lesson": exercise_set.name, "question": q.name, "title": q.title,
             "status": NOT_GRADED, "points": float(q.points), "score": 0.0, "message": reason}
            for q in exercise_set]


def _resolve(lesson: str | None, resolve: LessonResolver, path: Path
             ) -> tuple[ExerciseSet | None, str]:
    """The lesson's questions, or None and the reason they cannot be found."""
    if lesson is None:
        return None, (f"Cannot tell which lesson {path.name} is for: its metadata names no "
                      "lesson and its file name has no NN_ prefix (as in "
                      "01_preprocessing.ipynb); pass --lesson exNN, e.g. --lesson ex01")
    try:
        return resolve(lesson), ""
    except Exception as err:  # noqa: BLE001 - unknown or broken lesson module
        return None, f"Cannot load lesson {lesson}: {type(err).__name__}: {err}"


@dataclass
class _Submission:
    """A notebook read into memory before any learner code runs."""

    path: Path
    data: bytes | None = None
    nb: nbformat.NotebookNode | None = None
    error: str | None = None
    lesson: str | None = None
    exercise_set: ExerciseSet | None = None
    notes: list[str] = field(default_factory=list)


def _read_submission(path: Path, override: str | None, resolve: LessonResolver) -> _Submission:
    """Read one file, find its lesson and load the grader's copy of that lesson."""
    sub = _Submission(path)
    try:
        sub.data = path.read_bytes()
        sub.nb = read_notebook(path, sub.data)
    except FileNotFoundError:
        sub.error = "File not found"
    except OSError as err:
        sub.error = f"Cannot read the file: {err}"
    except NotebookUnreadable as err:
        sub.error = str(err)
    metadata = sub.nb.metadata if sub.nb is not None else None
    sub.lesson = find_lesson(metadata, path, override)
    sub.exercise_set, reason = _resolve(sub.lesson, resolve, path)
    if sub.error is None and sub.exercise_set is None:
        sub.error = reason
    said = _metadata_lesson(metadata)
    if override and said and said != override:
        sub.notes.append(f"The notebook's metadata says {said}; graded as {override} "
                         "(--lesson)")
    return sub


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _snapshot(paths: Iterable[Path]) -> dict[Path, str | None]:
    """The SHA-256 of each file (None when it is missing)."""
    return {p: _file_digest(p) for p in paths}


def watched_course_files() -> list[Path]:
    """The course files a learner's code must not change while grading runs.

    Returns:
        The exercise sources, the lessons' checker modules, the grader's modules and the
        bundled data: what the grader reads while it grades.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    package = Path(__file__).resolve().parent
    files = list(SOURCE_DIR.glob("*.py")) + list((package / "exercises").glob("*.py"))
    files += sorted(package.glob("grading*.py"))
    datasets = REPO_ROOT / "datasets"
    if datasets.is_dir():
        files += sorted(p for p in datasets.rglob("*")
                        if p.is_file() and "__pycache__" not in p.parts)
    return sorted(set(files))


def grade_notebook(path: Path | str, *, lesson: str | None = None,
                   cell_timeout: float = DEFAULT_CELL_TIMEOUT,
                   total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
                   resolve: LessonResolver | None = None,
                   hidden_checks: HiddenChecks | Path | str | None = None) -> NotebookReport:
    """Grade one learner notebook; never raises for a learner's mistake.

    Explained in the README's "For teachers: grading" section; see :func:`grade_notebooks`.

    Args:
        path: the notebook file.
        lesson: the ``--lesson`` option: wins over the notebook's metadata and file name.
        cell_timeout: seconds one cell may run.
        total_timeout: seconds the whole notebook may take.
        resolve: looks up a lesson's :class:`ExerciseSet`; :func:`load_lesson` when None
            (tests pass their own).
        hidden_checks: extra checkers, or the file or folder to load them from.

    Returns:
        The report; ``report.error`` says why a notebook could not be graded (score 0).

    Raises:
        HiddenChecksError: ``hidden_checks`` is a path that cannot be loaded.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    return grade_notebooks([path], lesson=lesson, cell_timeout=cell_timeout,
                           total_timeout=total_timeout, resolve=resolve,
                           hidden_checks=hidden_checks)[0]


def grade_notebooks(paths: list[Path | str], *, lesson: str | None = None,
                    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
                    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
                    resolve: LessonResolver | None = None,
                    hidden_checks: HiddenChecks | Path | str | None = None,
                    progress: Callable[[NotebookReport], None] | None = None,
                    ) -> list[NotebookReport]:
    """Grade several notebooks one after the other, each in its own kernel and folder.

    Explained in the README's "For teachers: grading" section. Every file is read, and
    every lesson and hidden check loaded, before the first notebook runs. After each
    notebook the grader compares the other submissions and the course files
    (:func:`watched_course_files`) with what they were: a notebook that changed them is
    flagged as tampering; when course files changed, the notebooks after it are not graded.

    Args:
        paths: the notebook files.
        lesson, cell_timeout, total_timeout, resolve, hidden_checks: as in
            :func:`grade_notebook`.
        progress: called with each report as soon as it is ready (the CLI prints it).

    Returns:
        One report per path, in order.

    Raises:
        HiddenChecksError: ``hidden_checks`` is a path that cannot be loaded.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    resolve = resolve or load_lesson
    hidden = (load_hidden_checks(hidden_checks) if isinstance(hidden_checks, str | Path)
              else hidden_checks or {})
    submissions = [_read_submission(Path(p), lesson, resolve) for p in paths]
    references = {}
    for sub in submissions:
        if sub.exercise_set is not None and sub.lesson not in references:
            references[sub.lesson] = grading_scan.solution_reference(sub.lesson)
    course_files = watched_course_files()
    submission_files = sorted({s.path.resolve() for s in submissions if s.data is not None})
    hidden_files = sorted({Path(sys.modules[f.__module__].__file__).resolve()
                           for checks in hidden.values() for _, f in checks
                           if getattr(sys.modules.get(f.__module__), "__file__", None)})
    watched = course_files + submission_files + hidden_files
    before = _snapshot(watched)
    stopped_by: str | None = None
    reports = []
    for sub in submissions:
        if stopped_by is not None:
            report = NotebookReport(str(sub.path), sub.lesson,
                                    _not_graded(sub.exercise_set, stopped_by), [], [],
                                    stopped_by)
        else:
            report = _grade_submission(sub, hidden, references.get(sub.lesson),
                                       cell_timeout, total_timeout)
            after = _snapshot(watched)
            changed = [p for p in watched if after[p] != before[p]]
            if changed and sub.nb is not None and report.error is None:
                _flag_changed_files(report, changed)
            if any(p in course_files or p in hidden_files for p in changed):
                stopped_by = (f"Not graded: grading stopped after {sub.path} because course "
                              "files changed while it ran; restore them (git checkout) and "
                              "grade again")
            before = after
        if progress is not None:
            progress(report)
        reports.append(report)
    return reports


def _flag_changed_files(report: NotebookReport, changed: list[Path]) -> None:
    """Mark a report as tampering: its notebook changed or deleted files outside its folder."""
    names = ", ".join(str(p) for p in changed[:5]) + (" ..." if len(changed) > 5 else "")
    reason = f"While it ran, files outside its folder changed or vanished: {names}"
    report.flags.append(f"Tampering: {reason}")
    for q in report.questions:
        if q["status"] == TAMPERING:  # found by the scan already: add this reason first
            q["message"] = q["message"].replace("Tampering detected: ",
                                                f"Tampering detected: {reason}; ", 1)
            continue
        alone = "" if q["status"] == CORRECT else f" (without it: {q['status']})"
        q.update(status=TAMPERING, score=0.0,
                 message=f"Tampering detected: {reason}{alone}; this scores 0")


def _grade_submission(sub: _Submission, hidden: HiddenChecks,
                      reference: grading_scan.SolutionReference | None,
                      cell_timeout: float, total_timeout: float) -> NotebookReport:
    """Grade one notebook already read into memory."""
    if sub.nb is None or sub.exercise_set is None:
        reason = sub.error or "Not graded"
        return NotebookReport(str(sub.path), sub.lesson, _not_graded(sub.exercise_set, reason),
                              [], [], reason)
    nb, exercise_set = sub.nb, sub.exercise_set
    report = NotebookReport(str(sub.path), sub.lesson, problems=list(sub.notes))
    answers = grading_scan.answer_cells(nb)
    tampering = grading_scan.find_tampering(nb)
    verdict = grading_scan.detect_solutions(nb, reference, answers)
    report.flags += [f"Tampering: {f.describe()}" for f in tampering]
    if verdict.whole:
        report.flags.append(f"Solution notebook submitted: {verdict.whole}")
    report.flags += [f"{q}: cell {i + 1} is identical to the worked solution"
                     for q, i in verdict.copied.items() if not verdict.whole]
    report.problems += [f.describe() for f in grading_scan.find_solution_calls(nb)]
    info = nb.metadata.get("recsys_exercise")
    if isinstance(info, dict) and info.get("variant") == "solution" and not verdict.whole:
        report.problems.append("The metadata says this is the worked-solutions notebook, but "
                               "its content does not match the worked solutions")
    execution = Execution()
    if _has_code(nb):
        with tempfile.TemporaryDirectory(prefix="recsys-grade-",
                                         ignore_cleanup_errors=True) as tmp:
            folder, exchange = Path(tmp) / "notebook", Path(tmp) / "calls"
            folder.mkdir()
            exchange.mkdir()
            (folder / sub.path.name).write_bytes(sub.data or b"")
            execution = execute_notebook(nb, folder, exercise_set, hidden=hidden,
                                         cell_timeout=cell_timeout,
                                         total_timeout=total_timeout, exchange=exchange)
    else:
        report.problems.append("The notebook has no code cells: nothing was run")
    report.problems += execution.problems
    if execution.stopped is not None and execution.stopped[0] < 0:
        report.error = _sentence(execution.stopped[1])
        report.questions = _not_graded(exercise_set, report.error)
        return report
    report.questions = question_rows(exercise_set, execution, answers, verdict, tampering)
    return report


def _has_code(nb: nbformat.NotebookNode) -> bool:
    """Whether any cell has code to run (if not, no kernel is started)."""
    return any(c.cell_type == "code" and c.source.strip() for c in nb.cells)


# ---------------------------------------------------------------------------- output
def format_report(report: NotebookReport) -> str:
    """The per-notebook text the CLI prints: total line, one line per question, problems.

    Explained in the README's "For teachers: grading" section.

    Args:
        report: a notebook's grade.

    Returns:
        Several lines, e.g. starting ``01_preprocessing.ipynb  ex01  3/4 points``.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    lines = [f"{report.notebook}  {report.lesson or '?'}  "
             f"{report.score:g}/{report.max_points:g} points"]
    if report.error:
        lines.append(f"  NOT GRADED: {report.error}")
    width = max((len(q["question"]) for q in report.questions), default=2)
    for q in report.questions:
        quiet = report.error or q["status"] == CORRECT
        message = "" if quiet else _shorten(q["message"], 90)
        lines.append(f"  {q['question']:<{width}}  {q['status']:<18}  "
                     f"{q['score']:g}/{q['points']:g}  {q['title']}"
                     + (f"  -- {message}" if message else ""))
    for title, items in (("flags", report.flags), ("problems", report.problems)):
        if items:
            lines.append(f"  {title}:")
            lines += [f"    - {item}" for item in items]
    return "\n".join(lines)


def _shorten(text: str, width: int) -> str:
    """The first line of ``text``, cut to ``width`` characters."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= width else first[: width - 3] + "..."


def csv_rows(reports: list[NotebookReport]) -> list[dict[str, Any]]:
    """One row per notebook and question (a single row for a notebook without a lesson).

    Explained in the README's "For teachers: grading" section.

    Args:
        reports: the grades.

    Returns:
        Dicts with the keys of :data:`CSV_FIELDS`.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    rows = []
    for report in reports:
        questions = report.questions or [{
            "question": "", "title": "", "status": NOT_GRADED, "points": 0.0, "score": 0.0,
            "message": report.error or "The lesson has no questions"}]
        for q in questions:
            rows.append({"notebook": report.notebook, "lesson": report.lesson or "",
                         **{key: q[key] for key in CSV_FIELDS[2:]}})
    return rows


def write_csv(reports: list[NotebookReport], path: Path) -> None:
    """Write :func:`csv_rows` to ``path`` (see the README's "For teachers: grading").

    Args:
        reports: the grades.
        path: the CSV file.

    Raises:
        OSError: the file cannot be written.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(csv_rows(reports))


def write_json(reports: list[NotebookReport], path: Path) -> None:
    """Write the list of :meth:`NotebookReport.to_dict` to ``path`` (see the README).

    Args:
        reports: the grades.
        path: the JSON file.

    Raises:
        OSError: the file cannot be written.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    path.write_text(json.dumps([r.to_dict() for r in reports], indent=1) + "\n",
                    encoding="utf-8")


# ---------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``python -m recsys_lib.grading`` / ``recsys-grade``.

    Returns:
        The parser.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
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
                        help="lesson of the notebooks (wins over their metadata and names)")
    parser.add_argument("--hidden-checks", type=Path, metavar="PATH",
                        help="a Python file or folder of extra checks (functions named like "
                             "ex01_q2_other_seed), run by the grader only")
    return parser


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace
                     ) -> HiddenChecks:
    """Reject bad options before any notebook runs (``parser.error`` exits with status 2)."""
    if not args.timeout > 0 or not args.total_timeout > 0:
        parser.error("--timeout and --total-timeout must be positive numbers of seconds")
    if args.lesson is not None and not _LESSON_NAME.match(args.lesson):
        parser.error(f"--lesson must look like ex01, got {args.lesson!r}")
    for option, target in (("--csv", args.csv), ("--json", args.json)):
        if target is not None and not target.resolve().parent.is_dir():
            parser.error(f"{option}: folder {target.parent} does not exist")
    if args.hidden_checks is None:
        return {}
    try:
        hidden = load_hidden_checks(args.hidden_checks)
    except HiddenChecksError as err:
        parser.error(f"--hidden-checks: {err}")
    for lesson, question in sorted(hidden):
        try:
            known = question in load_lesson(lesson).questions
        except Exception:  # noqa: BLE001 - an unknown lesson
            known = False
        if not known:
            names = ", ".join(n for n, _ in hidden[(lesson, question)])
            parser.error(f"--hidden-checks: {names} names no question of the course "
                         f"({lesson} {question})")
    return hidden


def main(argv: list[str] | None = None) -> int:
    """Run the grader from the command line.

    Explained in the README's "For teachers: grading" section.

    Args:
        argv: the arguments (``sys.argv[1:]`` when None).

    Returns:
        0 when every notebook was graded (whatever the scores), 1 when a notebook could not
        be graded (missing, unreadable, no lesson, grading stopped), 2 for bad usage (also
        when an output file cannot be written).

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        hidden = _check_arguments(parser, args)
    except SystemExit as stop:  # argparse exits on errors (2) and --help (0)
        return int(stop.code or 0)
    reports = grade_notebooks(args.notebooks, lesson=args.lesson, cell_timeout=args.timeout,
                              total_timeout=args.total_timeout, resolve=load_lesson,
                              hidden_checks=hidden,
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
    if graded < len(reports):
        print(f"recsys-grade: {len(reports) - graded} notebook(s) not graded; see NOT GRADED "
              "above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
