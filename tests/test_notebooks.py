"""Every course notebook has the standard header, a parameters cell, and stored outputs.

The notebooks themselves are executed by nbval (quick mode) as part of the same pytest run.
"""

import nbformat
import pytest

from recsys_lib import course
from recsys_lib.config import REPO_ROOT

NOTEBOOKS = course.course_notebooks()
LESSONS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def _id(path):
    return path.relative_to(REPO_ROOT).as_posix()


def test_there_are_notebooks():
    assert len(LESSONS) >= 2 and len(NOTEBOOKS) >= 3 * len(LESSONS) - 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_header_cells_are_the_standard_ones(path):
    nb = nbformat.read(path, as_version=4)
    assert not course.stamp(nb, _id(path)), (
        f"{_id(path)}: badge or setup cell is out of date; run `python -m recsys_lib.course`"
    )
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", LESSONS, ids=_id)
def test_lesson_has_one_parameters_cell_with_quick_mode(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "tag exactly one cell 'parameters' (the notebook's size knobs)"
    assert "is_quick_mode()" in tagged[0].source


def _code_cells(path):
    nb = nbformat.read(path, as_version=4)
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def _texts(cells):
    """Every stored stream text and plain-text result of the cells, one string each."""
    for cell in cells:
        for output in cell.outputs:
            if output.output_type == "stream":
                yield output.text
            elif "text/plain" in output.get("data", {}):
                yield output.data["text/plain"]


def _assert_one_clean_run(path):
    """Stored outputs come from one top-to-bottom run (counts 1, 2, ...) that raised nothing."""
    code = _code_cells(path)
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{_id(path)}: execution counts {counts[:12]}... are not 1, 2, 3, ... in order: run it "
        "top to bottom in a fresh kernel (python -m recsys_lib.execute) before committing")
    errors = [o.ename for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{_id(path)}: stored errors {errors}"
    return code


@pytest.mark.parametrize("path", LESSONS, ids=_id)
def test_lesson_is_stored_executed_in_full_mode_with_exercises(path):
    code = _assert_one_clean_run(path)
    modes = [line for text in _texts(code) for line in text.splitlines()
             if line.startswith("Quick mode")]
    assert modes, f"{_id(path)}: no environment summary (print(environment_summary())) stored"
    assert all(line.split()[2] == "False" for line in modes), (
        f"{_id(path)}: stored outputs come from a quick-mode run ({modes}); learners must see "
        "full-mode results: python -m recsys_lib.execute " + _id(path))
    for folder in ("exercises", "solutions"):
        assert (REPO_ROOT / folder / path.name).is_file(), f"{folder}/{path.name} is missing"


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "solutions").glob("*.ipynb")), ids=_id)
def test_solutions_are_stored_executed_and_all_correct(path):
    code = _assert_one_clean_run(path)
    summaries = [text for text in _texts(code) if " questions correct" in text]
    assert summaries, f"{_id(path)}: the summary of the checks was not stored"
    done, total = summaries[-1].split(":")[1].split(" questions")[0].split(" of ")
    assert int(done) == int(total) >= 1, f"{_id(path)}: {summaries[-1].splitlines()[0]}"


def test_restamp_rewrites_an_outdated_setup_cell():
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    setup = next(c for c in nb.cells if course.SETUP_TAG in c.metadata.get("tags", []))
    setup.source = "print('old')"
    assert course.stamp(nb, _id(NOTEBOOKS[0]))
    assert setup.source == course.setup_cell_source()
    assert course.REPO_URL in setup.source
