"""Read a submitted notebook without running it: answer cells, tampering, copied solutions.

Used by :mod:`recsys_lib.grading` before a notebook runs (explained in the README's "For
teachers: grading" section):

* :func:`answer_cells` finds the cell that answers each question, the one that calls
  ``qN.check(...)``, so that a lost point can be explained (the cell raised, timed out...);
* :func:`find_tampering` looks for code that reaches for the grading machinery or the worked
  solutions (the grader never trusts the kernel anyway; this names the attempt);
* :func:`detect_solutions` compares the notebook with the worked solutions built from
  ``exercises/source``, by content: a solutions notebook with its metadata edited is still
  found.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from recsys_lib.exercises.core import SOURCE_DIR

_CHECK_CALL = re.compile(r"\b(q\d+)\s*\.\s*check\s*\(")
_SOLUTION_CALL = re.compile(r"\b(q\d+)\s*\.\s*solution\s*\(")

#: What :func:`find_tampering` looks for: (pattern, reason). Comments are ignored.
TAMPERING_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), reason) for pattern, reason in (
        (r"RECSYS_GRAD", "uses the grader's environment variables"),
        (r"\bgrading_wire\b|\brecsys_lib\s*\.\s*grading\b|\bimport\s+grading\b",
         "uses the grader's own modules"),
        (r"\.\s*(checker|_record|_on_change)\b", "reaches into the exercise checks"),
        (r"\.\s*(check|evaluate|solution|hint|status|message|points|title|lesson)\s*=(?!=)",
         "changes the exercise checks"),
        (r"(?<![\w.])(setattr|delattr)\s*\(|__dict__|__code__|__globals__|__builtins__",
         "changes objects by name"),
        (r"\b(solution_code|source_file|SOURCE_DIR|REPO_ROOT|NOT_SHOWN_WHILE_GRADED)\b",
         "reads the worked solutions"),
        (r"BEGIN SOLUTION|exercises\s*[/\\.]\s*source|[\"']solutions[/\\\"']|[/\\]solutions\b",
         "reads the worked solutions"),
        (r"(?<![\w.])(exec|eval|compile)\s*\(",
         "runs code built from a string (exec, eval or compile)"),
        (r"\b(importlib|runpy)\b|(?<![\w.])__import__\s*\(",
         "imports code in a way the grader cannot follow"),
    ))


@dataclass(frozen=True)
class Finding:
    """Something found in a cell.

    Attributes:
        cell: the cell's 0-based position in the notebook.
        line: the line where it was found (stripped, cut to 60 characters).
        reason: what it is, e.g. "reads the worked solutions".

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """

    cell: int
    line: str
    reason: str

    def describe(self) -> str:
        """``Cell 7 (`exec(solution_code("ex00", "q1"))`) reads the worked solutions``."""
        return f"Cell {self.cell + 1} (`{self.line}`) {self.reason}"


def python_of(source: str) -> str:
    """A cell's code as plain Python: IPython magics and ``!`` commands become calls.

    Args:
        source: the cell's source.

    Returns:
        The transformed code, or ``source`` unchanged when IPython is not available.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover - IPython ships with Jupyter
        return source
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - a cell IPython cannot read is scanned as it is
        return source


def strip_comments(code: str) -> str:
    """The code without its comments (strings are kept).

    Args:
        code: Python code.

    Returns:
        The code with every ``# ...`` comment removed; when the code cannot be tokenised,
        the lines that start with ``#`` are dropped instead.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    lines = code.splitlines(keepends=True)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return "".join(line for line in lines if not line.lstrip().startswith("#"))
    for token in tokens:
        if token.type == tokenize.COMMENT:
            row, col = token.start
            line = lines[row - 1]
            lines[row - 1] = line[:col] + line[col + len(token.string):]
    return "".join(lines)


def _code_cells(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """``(index, comment-free Python)`` for every code cell."""
    return [(i, strip_comments(python_of(cell.source))) for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code"]


def normalise(source: str) -> str:
    """A cell's code in a form that ignores comments, blank lines, spacing and quotes.

    Args:
        source: the cell's source.

    Returns:
        The ``ast.dump`` of the code, or its whitespace-collapsed text when it does not parse.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    code = python_of(source)
    try:
        return ast.dump(ast.parse(code))
    except (SyntaxError, ValueError):
        return " ".join(strip_comments(code).split())


def answer_cells(nb: nbformat.NotebookNode) -> dict[str, int]:
    """Which cell answers each question: the last one that calls ``qN.check(...)``.

    Args:
        nb: the notebook.

    Returns:
        ``{"q1": cell index, ...}`` for every question whose check appears in the code
        (commented-out calls do not count).

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    found: dict[str, int] = {}
    for index, code in _code_cells(nb):
        for question in _CHECK_CALL.findall(code):
            found[question] = index
    return found


def _first_line(code: str, start: int) -> str:
    line = code[code.rfind("\n", 0, start) + 1:].split("\n", 1)[0].strip()
    return line if len(line) <= 60 else line[:57] + "..."


def find_tampering(nb: nbformat.NotebookNode) -> list[Finding]:
    """Code that reaches for the grading machinery or the worked solutions.

    Explained in the README's "For teachers: grading" section. The patterns are
    :data:`TAMPERING_PATTERNS`; comments are ignored.

    Args:
        nb: the notebook.

    Returns:
        One finding per cell and reason, in notebook order.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    findings = []
    for index, code in _code_cells(nb):
        seen = set()
        for pattern, reason in TAMPERING_PATTERNS:
            match = pattern.search(code)
            if match and reason not in seen:
                seen.add(reason)
                findings.append(Finding(index, _first_line(code, match.start()), reason))
    return findings


def find_solution_calls(nb: nbformat.NotebookNode) -> list[Finding]:
    """Cells that call ``qN.solution()`` (not commented out): the learner saw that solution.

    Args:
        nb: the notebook.

    Returns:
        One finding per call.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    return [Finding(index, _first_line(code, match.start()),
                    f"calls {match.group(1)}.solution()")
            for index, code in _code_cells(nb) for match in _SOLUTION_CALL.finditer(code)]


# ---------------------------------------------------------------------------- solutions
@dataclass
class SolutionReference:
    """What the worked-solutions notebook of a lesson looks like, normalised.

    Attributes:
        lesson: the lesson (``"ex01"``).
        answers: ``{question: normalised solution cell}`` for the cells that hold a
            worked answer.
        solution_only: normalised code cells found only in the solutions notebook
            (``assert_all_correct()``).
        title: the first line of the solutions notebook's title cell.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """

    lesson: str
    answers: dict[str, str] = field(default_factory=dict)
    solution_only: set[str] = field(default_factory=set)
    title: str = ""


def solution_reference(lesson: str, folder: Path = SOURCE_DIR) -> SolutionReference | None:
    """Build the reference for a lesson from its exercise source.

    Args:
        lesson: the lesson (``"ex01"``).
        folder: where ``exNN_*.py`` sources live.

    Returns:
        The reference, or None when the lesson has no source in ``folder``.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    from recsys_lib.exercises.build import build_notebook

    sources = sorted(folder.glob(f"{lesson}_*.py"))
    if len(sources) != 1:
        return None
    solution = build_notebook(sources[0], "solution")
    exercise = build_notebook(sources[0], "exercise")
    in_exercise = {normalise(c.source) for c in exercise.cells if c.cell_type == "code"}
    reference = SolutionReference(lesson)
    for cell in solution.cells:
        if cell.cell_type == "markdown" and not reference.title:
            reference.title = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        if cell.cell_type != "code":
            continue
        form = normalise(cell.source)
        if form in in_exercise:
            continue
        questions = _CHECK_CALL.findall(strip_comments(python_of(cell.source)))
        for question in questions:
            reference.answers[question] = form
        if not questions:
            reference.solution_only.add(form)
    return reference


@dataclass
class SolutionVerdict:
    """What :func:`detect_solutions` found.

    Attributes:
        whole: why the notebook is the worked-solutions notebook, or None when it is not.
        copied: ``{question: cell index}`` of answer cells identical to the worked solution
            (comments, spacing and quotes aside).

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """

    whole: str | None = None
    copied: dict[str, int] = field(default_factory=dict)


def detect_solutions(nb: nbformat.NotebookNode, reference: SolutionReference | None,
                     answers: dict[str, int]) -> SolutionVerdict:
    """Tell, by content, whether a notebook is (or copies) the worked solutions.

    Explained in the README's "For teachers: grading" section. The notebook is the
    solutions notebook when every answer cell is the worked one (two questions or more),
    or when it has the solutions notebook's own cells or title and at least half of its
    answer cells are the worked ones. Metadata plays no part.

    Args:
        nb: the notebook.
        reference: from :func:`solution_reference`; None finds nothing.
        answers: from :func:`answer_cells`.

    Returns:
        The verdict.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    verdict = SolutionVerdict()
    if reference is None or not reference.answers:
        return verdict
    forms = {i: normalise(c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    verdict.copied = {q: i for q, i in sorted(answers.items())
                      if reference.answers.get(q) is not None
                      and forms.get(i) == reference.answers[q]}
    markers = []
    if reference.title and any(c.cell_type == "markdown" and c.source.strip().startswith(
            reference.title) for c in nb.cells):
        markers.append(f"its title is {reference.title!r}")
    if reference.solution_only & set(forms.values()):
        markers.append("it has cells found only in the worked solutions")
    wanted = len(reference.answers)
    copied = len(verdict.copied)
    if copied == wanted and wanted >= 2:
        verdict.whole = (f"every answer cell ({copied} of {wanted}) is the worked solution"
                         + (f"; {', '.join(markers)}" if markers else ""))
    elif markers and 2 * copied >= wanted:
        verdict.whole = (f"{'; '.join(markers)}, and {copied} of {wanted} answer cells are "
                         "the worked solution")
    return verdict
