"""Stored notebook outputs are clean: no TensorFlow log lines, progress fragments or errors.

Every committed notebook (lessons, exercises, solutions) is read, not executed; stored
outputs come from ``python -m recsys_lib.execute`` (full mode).
"""

from __future__ import annotations

import nbformat
import pytest

from recsys_lib.config import REPO_ROOT
from recsys_lib.execute import stored_output_problems

NOTEBOOKS = sorted(p for folder in ("notebooks", "exercises", "solutions")
                   for p in (REPO_ROOT / folder).glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_stored_outputs_are_clean(path):
    problems = stored_output_problems(nbformat.read(path, as_version=4))
    assert not problems, f"{path.name}: " + "; ".join(problems) + (
        ". Re-execute it with: python -m recsys_lib.execute " + str(path.relative_to(REPO_ROOT)))


def test_the_checker_finds_each_kind_of_noise():
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text=(
            "WARNING: All log messages before absl::InitializeLog() is called are written to "
            "STDERR\nI0000 00:00:1796022157.074002    3107 cudart_stub.cc:31] Could not find "
            "cuda drivers on your machine, GPU will not be used.\n")),
        nbformat.v4.new_output("stream", name="stderr", text="\rgrid:  50%|#####  | 1/2"),
        nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[]),
    ]
    clean = nbformat.v4.new_code_cell("y")
    clean.outputs = [nbformat.v4.new_output("stream", name="stdout", text="epoch 1: I0000\n")]
    notebook = nbformat.v4.new_notebook(cells=[clean, cell])
    assert stored_output_problems(notebook) == [
        "cell 1: TensorFlow log lines", "cell 1: progress-bar fragments (carriage returns)",
        "cell 1: an error (ValueError)"]


def test_progress_is_one_plain_line_when_outputs_are_stored(monkeypatch, capsys):
    from recsys_lib.progress import progress

    monkeypatch.setenv("RECSYS_PLAIN_PROGRESS", "1")
    assert list(progress(range(3), "grid")) == [0, 1, 2]
    out = capsys.readouterr()
    assert out.out.startswith("grid: 3 steps in ") and "\r" not in out.out + out.err
