"""Exercises with automatic feedback; see :mod:`recsys_lib.exercises.core`.

Each lesson has a module ``exNN`` whose questions a learner imports with
``from recsys_lib.exercises.ex01 import *`` (``q1``, ``q2``, ..., ``summary``).
"""

from pathlib import Path as _Path

from recsys_lib.exercises.core import (
    CORRECT,
    ERROR,
    INCORRECT,
    NOT_ANSWERED,
    ExerciseSet,
    Incorrect,
    NotAnswered,
    Question,
    call_answer,
)

#: Every lesson with exercises: the modules ``exNN.py`` in this package, in order.
LESSONS = tuple(sorted(p.stem for p in _Path(__file__).parent.glob("ex[0-9][0-9].py")))

__all__ = ["CORRECT", "ERROR", "INCORRECT", "NOT_ANSWERED", "ExerciseSet", "Incorrect",
           "NotAnswered", "Question", "call_answer", "LESSONS", "load_lesson"]


def load_lesson(lesson: str) -> ExerciseSet:
    """The :class:`ExerciseSet` of a lesson name such as ``"ex01"``.

    Raises:
        ValueError: unknown lesson.
    """
    import importlib

    if lesson not in LESSONS:
        raise ValueError(f"unknown lesson {lesson!r}; known: {', '.join(LESSONS)}")
    return importlib.import_module(f"recsys_lib.exercises.{lesson}").EXERCISES
