"""Exercises that answer back: ``q1.check(answer)``, ``q1.hint()``, ``q1.solution()``.

A lesson's questions live in one module (``recsys_lib/exercises/ex01.py`` for notebook 01),
built from :class:`Question` objects collected in an :class:`ExerciseSet`. Each question
has a checker: a function that raises :class:`Incorrect` with a helpful message when the
answer is wrong. The learner's notebook is generated from ``exercises/source/*.py`` by
``python -m recsys_lib.exercises.build``; the worked solutions come from the same file.

While a notebook is graded (``python -m recsys_lib.grading``), its kernel runs with
``RECSYS_GRADED_RUN=1``: ``qN.check(answer)`` then judges nothing in the kernel. It hands the
answer to :mod:`recsys_lib.grading_wire`, and the grader checks it in its own process with
checkers the notebook cannot reach; ``solution()`` shows nothing. See the README's "For
teachers: grading" section.
"""

from __future__ import annotations

import html
import json
import numbers
import os
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsys_lib.config import REPO_ROOT

#: Legacy: a file where checks write their results (see ``ExerciseSet._write_grading_file``).
#: The grader neither sets nor reads it; it removes it from the kernel's environment.
GRADING_FILE_ENV_VAR = "RECSYS_GRADING_FILE"
#: Set to ``1`` in the kernel of a notebook being graded (a switch, not a secret).
GRADED_RUN_ENV_VAR = "RECSYS_GRADED_RUN"
NOT_SHOWN_WHILE_GRADED = "Worked solutions are not shown while a notebook is being graded."
SOURCE_DIR = REPO_ROOT / "exercises" / "source"

CORRECT, INCORRECT, NOT_ANSWERED, ERROR = "correct", "incorrect", "not answered", "error"


class Incorrect(Exception):
    """Raised by a checker: the message tells the learner what is wrong."""


class NotAnswered(Exception):
    """Raised when the learner has not written an answer yet."""


class LearnerError(Exception):
    """What a learner's function raised in the notebook's kernel, as the grader sees it.

    The grader calls a learner's function in the kernel (see :mod:`recsys_lib.grading_wire`);
    when it raises, the grader's checker gets this exception, which :func:`call_answer`
    reports like the original one.

    Args:
        type_name: the original exception's class name (``"KeyError"``).
        message: its message.
        line: the line of the learner's code that raised, or None.
    """

    def __init__(self, type_name: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.type_name, self.message, self.line = type_name, message, line


def is_graded_run() -> bool:
    """Whether this process is the kernel of a notebook being graded (``RECSYS_GRADED_RUN``)."""
    return os.environ.get(GRADED_RUN_ENV_VAR, "") == "1"


_FIRST_WORD = re.compile(r"^([a-z]+)(?=$|[\s,;:!?)'\"])")


def as_sentence(text: str) -> str:
    """Start a feedback message with a capital letter when its first word is a plain word.

    A first word that looks like code (``split_heads(x)``, ``np.exp``, ``k=3``) is kept.

    Args:
        text: the message.

    Returns:
        The message, its first letter capitalised when the first word is lowercase letters
        followed by a space, punctuation or the end.
    """
    match = _FIRST_WORD.match(text)
    return text[0].upper() + text[1:] if match else text


def evaluate(checker: Callable[[Any], None], answer: Any) -> tuple[str, str]:
    """Run a checker on an answer and say what it found, printing nothing.

    Args:
        checker: raises :class:`Incorrect` or :class:`NotAnswered`, or returns None when
            the answer is right.
        answer: the learner's answer; None and ``...`` count as not answered.

    Returns:
        ``(status, message)``: status is ``"correct"``, ``"incorrect"``, ``"not answered"``
        or ``"error"`` (the checker itself failed).
    """
    try:
        if _is_placeholder(answer):
            raise NotAnswered()
        checker(answer)
    except NotAnswered:
        return NOT_ANSWERED, "Not answered yet: write your answer, then run this cell again."
    except Incorrect as err:
        return INCORRECT, f"Not quite. {err}"
    except Exception as err:  # noqa: BLE001 - a broken answer must not crash the check
        return ERROR, f"Checking failed: {type(err).__name__}: {err}"
    return CORRECT, "Correct!"


def _is_placeholder(answer: Any) -> bool:
    return answer is None or answer is Ellipsis


def as_number(value: Any, what: str = "your function") -> float:
    """A learner's scalar answer as a float, or :class:`Incorrect` with a helpful message."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Incorrect(as_sentence(f"{what} should return one number (a float), got "
                                    f"{type(value).__name__}"))
    return float(value)


def as_array(result: Any, what: str) -> np.ndarray:
    """The learner's result as a float array, or :class:`Incorrect` saying what came back."""
    try:
        arr = np.asarray(result, dtype=float)
    except (TypeError, ValueError):
        raise Incorrect(as_sentence(f"{what} should be a NumPy array of numbers, got "
                                    f"{type(result).__name__}")) from None
    if arr.ndim == 0 and not isinstance(result, np.ndarray | numbers.Real):
        raise Incorrect(as_sentence(f"{what} should be a NumPy array, got "
                                    f"{type(result).__name__}"))
    return arr


def call_answer(func: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call a learner's function; turn ``NotImplementedError`` into :class:`NotAnswered`.

    A checker uses this so that an unanswered question (whose body still says
    ``raise NotImplementedError``) is reported as not answered rather than as a crash.
    Other exceptions become :class:`Incorrect`, quoting the error.

    Args:
        func: the learner's function (or the grader's stand-in for it).
        *args, **kwargs: what to call it with.

    Returns:
        What the function returned.

    Raises:
        NotAnswered: ``func`` is a placeholder or raised ``NotImplementedError``.
        Incorrect: ``func`` is not callable or raised anything else.
    """
    if _is_placeholder(func):
        raise NotAnswered()
    if not callable(func):
        raise Incorrect(f"Expected a function, got {type(func).__name__}")
    try:
        return func(*args, **kwargs)
    except NotImplementedError as err:
        raise NotAnswered() from err
    except LearnerError as err:
        where = f" (line {err.line})" if err.line else ""
        raise Incorrect(f"Your function raised {err.type_name}: {err.message}{where}") from err
    except Exception as err:  # noqa: BLE001 - we report any learner error back to them
        where = traceback.extract_tb(err.__traceback__)[-1]
        raise Incorrect(
            f"Your function raised {type(err).__name__}: {err} (line {where.lineno})"
        ) from err


@dataclass
class Question:
    """One exercise question.

    Attributes:
        name: short id used in the notebook (``"q1"``).
        title: a few words shown in messages and grade reports.
        checker: ``checker(answer)`` raises :class:`Incorrect` (or :class:`NotAnswered`)
            or returns None when the answer is right.
        hint_text: a nudge that does not give the answer away.
        points: weight in the grade.
        lesson: the exercise set's name (``"ex01"``), filled in by :class:`ExerciseSet`.
    """

    name: str
    title: str
    checker: Callable[[Any], None]
    hint_text: str
    points: float = 1.0
    lesson: str = ""
    status: str = NOT_ANSWERED
    message: str = ""
    _on_change: Callable[[], None] | None = field(default=None, repr=False)

    def check(self, answer: Any = None) -> None:
        """Check an answer, print what is right or wrong, and remember it in ``status``.

        Returns None so that a notebook cell shows only the message; read ``status``
        (``"correct"``, ``"incorrect"``, ``"not answered"`` or ``"error"``) to test it.
        In the kernel of a notebook being graded (:func:`is_graded_run`) it only hands the
        answer over to the grader, which checks it in its own process.

        Args:
            answer: the learner's answer (a value or a function).
        """
        if is_graded_run():
            from recsys_lib import grading_wire

            grading_wire.record(self.lesson, self.name, answer)
            _show(self.title, "recorded", "Answer recorded; the grader checks it.")
            return
        self._record(*self.evaluate(answer))
        _show(self.title, self.status, self.message)

    def evaluate(self, answer: Any) -> tuple[str, str]:
        """Check an answer without printing or remembering anything (see :func:`evaluate`).

        Args:
            answer: the learner's answer.

        Returns:
            ``(status, message)``.
        """
        return evaluate(self.checker, answer)

    def hint(self) -> None:
        """Print the hint."""
        _show(self.title, "hint", self.hint_text)

    def solution(self) -> None:
        """Print the worked solution code from the exercise source file (not while graded)."""
        if is_graded_run():
            _show(self.title, "solution", NOT_SHOWN_WHILE_GRADED)
            return
        code = solution_code(self.lesson, self.name)
        _show(self.title, "solution", code, as_code=True)

    def _record(self, status: str, message: str) -> None:
        self.status, self.message = status, message
        if self._on_change is not None:
            self._on_change()


class ExerciseSet:
    """The questions of one lesson, with a summary and grading support.

    Args:
        name: module-like name, e.g. ``"ex01"``; matches ``exercises/source/<name>_*.py``.
        questions: the questions, in notebook order.
    """

    def __init__(self, name: str, questions: list[Question]) -> None:
        names = [q.name for q in questions]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate question names in {name}: {names}")
        self.name = name
        self.questions = {q.name: q for q in questions}
        for q in questions:
            q.lesson, q._on_change = name, self._write_grading_file

    def __getattr__(self, item: str) -> Question:
        try:
            return self.__dict__["questions"][item]
        except KeyError:
            raise AttributeError(f"{self.__dict__.get('name')} has no question {item!r}") from None

    def __iter__(self):
        return iter(self.questions.values())

    def results(self) -> list[dict]:
        """One dict per question: name, title, status, points, score, message."""
        return [
            {"lesson": self.name, "question": q.name, "title": q.title, "status": q.status,
             "points": q.points, "score": q.points if q.status == CORRECT else 0.0,
             "message": q.message}
            for q in self
        ]

    def summary(self) -> None:
        """Print a table of every question's status (the last cell of each exercise notebook)."""
        rows = self.results()
        done = sum(r["status"] == CORRECT for r in rows)
        lines = [f"{self.name}: {done} of {len(rows)} questions correct"]
        lines += [f"  {r['question']:<4} {r['status']:<13} {r['title']}" for r in rows]
        print("\n".join(lines))

    def assert_all_correct(self) -> None:
        """Raise AssertionError unless every question was checked and is correct.

        The solutions notebooks end with this, so a wrong solution fails the tests.
        """
        wrong = [f"{r['question']} ({r['status']}: {r['message']})"
                 for r in self.results() if r["status"] != CORRECT]
        assert not wrong, f"{self.name}: not all questions are correct: {wrong}"

    def reset(self) -> None:
        """Forget every result (used by tests)."""
        for q in self:
            q.status, q.message = NOT_ANSWERED, ""

    def _write_grading_file(self) -> None:
        """Legacy: write the results to ``RECSYS_GRADING_FILE`` when it is set.

        The grader does not use this file (a learner's code could write it); it removes the
        variable from the kernel's environment and checks the answers itself.
        """
        path = os.environ.get(GRADING_FILE_ENV_VAR)
        if not path:
            return
        target = Path(path)
        data = json.loads(target.read_text()) if target.is_file() else {}
        data[self.name] = self.results()
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(target)


# ------------------------------------------------------------------------ source of solutions
_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)# BEGIN SOLUTION (?P<q>\w+)[ \t]*\n(?P<body>.*?)^[ \t]*# END SOLUTION",
    re.M | re.S,
)


def source_file(lesson: str, folder: Path = SOURCE_DIR) -> Path:
    """The exercise source ``exercises/source/<lesson>_*.py`` of a lesson."""
    matches = sorted(folder.glob(f"{lesson}_*.py"))
    if len(matches) != 1:
        raise FileNotFoundError(
            f"expected one file {folder}/{lesson}_*.py, found {[m.name for m in matches]}"
        )
    return matches[0]


def solution_code(lesson: str, question: str, folder: Path = SOURCE_DIR) -> str:
    """The code between ``# BEGIN SOLUTION <question>`` and ``# END SOLUTION`` markers.

    Args:
        lesson: the lesson (``"ex01"``).
        question: the question (``"q1"``).
        folder: where the exercise sources are.

    Returns:
        The code, or a sentence saying why there is none (no source in this installation,
        no solution recorded, or a notebook being graded: :func:`is_graded_run`).
    """
    if is_graded_run():
        return NOT_SHOWN_WHILE_GRADED
    try:
        text = source_file(lesson, folder).read_text()
    except FileNotFoundError:
        return (f"The source of {lesson} is not in this installation; open "
                f"solutions/{lesson.removeprefix('ex')}_*.ipynb in the course repository.")
    blocks = [m for m in _BLOCK.finditer(text) if m.group("q") == question]
    if not blocks:
        return f"No worked solution is recorded for {question}."
    parts = []
    for m in blocks:
        indent = len(m.group("indent"))
        parts.append("\n".join(line[indent:] for line in m.group("body").rstrip().splitlines()))
    return "\n\n".join(parts)


_COLOURS = {CORRECT: "#1b7f3b", INCORRECT: "#b3261e", ERROR: "#b3261e",
            NOT_ANSWERED: "#8a6d00", "hint": "#1f5fa8", "solution": "#444", "recorded": "#444"}


def _show(title: str, status: str, message: str, as_code: bool = False) -> None:
    """Print a message; in Jupyter, show it in colour as well."""
    label = {CORRECT: "Correct", INCORRECT: "Incorrect", ERROR: "Error",
             NOT_ANSWERED: "Not answered", "hint": "Hint", "solution": "Solution",
             "recorded": "Recorded"}[status]
    text = f"[{label}] {title}: {message}" if not as_code else f"[{label}] {title}:\n{message}"
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with Jupyter
        print(text)
        return
    if get_ipython() is None:
        print(text)
        return
    body = (f"<pre>{html.escape(message)}</pre>" if as_code else html.escape(message))
    rich = (f'<div style="color:{_COLOURS[status]}"><b>{label}</b> '
            f"({html.escape(title)}): {body}</div>")
    display({"text/html": rich, "text/plain": text}, raw=True)
