"""Exercises that answer back: ``q1.check(answer)``, ``q1.hint()``, ``q1.solution()``.

A lesson's questions live in one module (``recsys_lib/exercises/ex01.py`` for notebook 01),
built from :class:`Question` objects collected in an :class:`ExerciseSet`. Each question
has a checker: a function that raises :class:`Incorrect` with a helpful message when the
answer is wrong. The learner's notebook is generated from ``exercises/source/*.py`` by
``python -m recsys_lib.exercises.build``; the worked solutions come from the same file.

While a notebook is graded (``python -m recsys_lib.grading``), every check also writes the
set's results to the JSON file named by ``RECSYS_GRADING_FILE``.
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

GRADING_FILE_ENV_VAR = "RECSYS_GRADING_FILE"
SOURCE_DIR = REPO_ROOT / "exercises" / "source"

CORRECT, INCORRECT, NOT_ANSWERED, ERROR = "correct", "incorrect", "not answered", "error"


class Incorrect(Exception):
    """Raised by a checker: the message tells the learner what is wrong."""


class NotAnswered(Exception):
    """Raised when the learner has not written an answer yet."""


def _is_placeholder(answer: Any) -> bool:
    return answer is None or answer is Ellipsis


def as_number(value: Any, what: str = "your function") -> float:
    """A learner's scalar answer as a float, or :class:`Incorrect` with a helpful message."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Incorrect(f"{what} should return one number (a float), got {type(value).__name__}")
    return float(value)


def as_array(result: Any, what: str) -> np.ndarray:
    """The learner's result as a float array, or :class:`Incorrect` saying what came back."""
    try:
        arr = np.asarray(result, dtype=float)
    except (TypeError, ValueError):
        raise Incorrect(f"{what} should be a NumPy array of numbers, got "
                        f"{type(result).__name__}") from None
    if arr.ndim == 0 and not isinstance(result, np.ndarray | numbers.Real):
        raise Incorrect(f"{what} should be a NumPy array, got {type(result).__name__}")
    return arr


def call_answer(func: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call a learner's function; turn ``NotImplementedError`` into :class:`NotAnswered`.

    A checker uses this so that an unanswered question (whose body still says
    ``raise NotImplementedError``) is reported as not answered rather than as a crash.
    Other exceptions become :class:`Incorrect`, quoting the error.
    """
    if _is_placeholder(func):
        raise NotAnswered()
    if not callable(func):
        raise Incorrect(f"expected a function, got {type(func).__name__}")
    try:
        return func(*args, **kwargs)
    except NotImplementedError as err:
        raise NotAnswered() from err
    except Exception as err:  # noqa: BLE001 - we report any learner error back to them
        where = traceback.extract_tb(err.__traceback__)[-1]
        raise Incorrect(
            f"your function raised {type(err).__name__}: {err} (line {where.lineno})"
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
        """
        try:
            if _is_placeholder(answer):
                raise NotAnswered()
            self.checker(answer)
        except NotAnswered:
            self._record(NOT_ANSWERED, "Not answered yet: write your answer, then run this "
                                       "cell again.")
        except Incorrect as err:
            self._record(INCORRECT, f"Not quite. {err}")
        except Exception as err:  # noqa: BLE001 - a broken answer must not crash the check
            self._record(ERROR, f"Checking failed: {type(err).__name__}: {err}")
        else:
            self._record(CORRECT, "Correct!")
        _show(self.title, self.status, self.message)

    def hint(self) -> None:
        """Print the hint."""
        _show(self.title, "hint", self.hint_text)

    def solution(self) -> None:
        """Print the worked solution code from the exercise source file."""
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
    """The code between ``# BEGIN SOLUTION <question>`` and ``# END SOLUTION`` markers."""
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
            NOT_ANSWERED: "#8a6d00", "hint": "#1f5fa8", "solution": "#444"}


def _show(title: str, status: str, message: str, as_code: bool = False) -> None:
    """Print a message; in Jupyter, show it in colour as well."""
    label = {CORRECT: "Correct", INCORRECT: "Incorrect", ERROR: "Error",
             NOT_ANSWERED: "Not answered", "hint": "Hint", "solution": "Solution"}[status]
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
