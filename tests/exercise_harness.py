"""Shared tests for exercise checkers; each tests/test_exercises_exNN.py feeds it its cases.

A lesson's test file defines ``CASES = {"q1": (correct_answer, [(wrong_answer, "words the
message must contain"), ...]), ...}`` and calls ``make_case_tests("exNN", CASES)``, which
returns pytest test functions: every correct answer passes, every wrong answer fails with a
message that contains the words, and placeholders are reported as not answered.
"""

from __future__ import annotations

import pytest

from recsys_lib.exercises import CORRECT, INCORRECT, NOT_ANSWERED, load_lesson


def _raise_not_implemented(*args, **kwargs):
    raise NotImplementedError


def make_case_tests(lesson: str, cases: dict):
    """Build the three parametrised tests for one lesson's cases."""
    exercise_set = load_lesson(lesson)
    names = sorted(cases)

    def question(name):
        exercise_set.reset()
        return getattr(exercise_set, name)

    @pytest.mark.parametrize("name", names)
    def test_checker_accepts_the_correct_answer(name, capsys):
        q = question(name)
        q.check(cases[name][0])
        assert q.status == CORRECT, q.message
        assert "Correct" in capsys.readouterr().out

    @pytest.mark.parametrize("name", names)
    def test_checker_rejects_wrong_answers_with_a_reason(name, capsys):
        q = question(name)
        assert cases[name][1], f"{lesson}.{name} needs at least one wrong answer"
        for wrong, words in cases[name][1]:
            q.check(wrong)
            assert q.status == INCORRECT, (wrong, q.message)
            assert words in q.message, q.message
            assert words in capsys.readouterr().out

    @pytest.mark.parametrize("name", names)
    def test_unanswered_questions_are_reported_not_crashed(name):
        q = question(name)
        placeholders = [None, ...]
        if callable(cases[name][0]):  # a function whose body still raises NotImplementedError
            placeholders.append(_raise_not_implemented)
        for placeholder in placeholders:
            q.check(placeholder)
            assert q.status == NOT_ANSWERED, q.message

    def test_every_question_has_cases():
        assert set(cases) == {q.name for q in exercise_set}

    return (test_checker_accepts_the_correct_answer,
            test_checker_rejects_wrong_answers_with_a_reason,
            test_unanswered_questions_are_reported_not_crashed,
            test_every_question_has_cases)
