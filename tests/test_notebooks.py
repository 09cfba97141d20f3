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


@pytest.mark.parametrize("path", LESSONS, ids=_id)
def test_lesson_is_stored_executed_with_exercises(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count is not None for c in code), "execute it before committing"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    for folder in ("exercises", "solutions"):
        assert (REPO_ROOT / folder / path.name).is_file(), f"{folder}/{path.name} is missing"


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "solutions").glob("*.ipynb")), ids=_id)
def test_solutions_are_stored_executed(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count is not None for c in code)


def test_restamp_rewrites_an_outdated_setup_cell():
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    setup = next(c for c in nb.cells if course.SETUP_TAG in c.metadata.get("tags", []))
    setup.source = "print('old')"
    assert course.stamp(nb, _id(NOTEBOOKS[0]))
    assert setup.source == course.setup_cell_source()
    assert course.REPO_URL in setup.source
