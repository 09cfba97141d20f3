"""Shared pytest fixtures for the course's test suite, and the ``slow`` marker.

The fast tier, ``python -m pytest -m "not slow" tests``, leaves out every test that trains a
Keras model, runs the benchmark or executes a notebook; the rules are in ``slow_reason`` below
(the test files carry no marks, except tests/test_course.py, whose faked-Colab tests mark
themselves ``slow`` and ``colab``). nbval's notebook items are marked ``slow`` and
``notebook``. The Colab-stack job (.ci/colab) runs ``-m "not slow or notebook or colab"``.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

import pytest

#: The repository root (this file lives in ``<root>/tests``), not the installed package's.
REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS_ENV_VAR = "RECSYS_SHARED_DATASETS"

#: Test files that are slow as a whole, and why.
SLOW_FILES = {
    "test_deep.py": "trains Keras models (NeuMF, two-tower)",
    "test_transformer.py": "trains Keras models (SASRec)",
    "test_bert4rec.py": "trains Keras models (BERT4Rec)",
    "test_text_encoder.py": "trains tiny Keras models (the text encoder of notebook 11)",
    "test_training.py": "trains (tiny) Keras models",
    "test_start_command.py": "starts a JupyterLab server",
    "test_serving.py": "trains a tiny SASRec and serves it (FastAPI's TestClient)",
    "test_serving_process.py": "trains a tiny SASRec and starts uvicorn server processes",
    "test_distributed.py": "starts TensorFlow worker processes",
    "test_generative.py": "trains tiny Keras models (generative retrieval of notebook 14)",
}
#: In any test file, the tests defined below a comment line with these words start notebook
#: kernels (see tests/test_grading.py).
KERNEL_SECTION = re.compile(r"^#.*\bruns a kernel\b", re.MULTILINE)
#: Tests whose name starts with this run the benchmark.
BENCHMARK_PREFIX = "test_benchmark"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The read-only real MovieLens files in ``../shared/datasets`` beside the repository.

    ``RECSYS_SHARED_DATASETS`` overrides the location. Tests that use this fixture are
    skipped, with a visible reason, when the folder is absent.
    """
    override = os.environ.get(SHARED_DATASETS_ENV_VAR)
    path = Path(override).expanduser() if override else REPO_ROOT.parent / "shared" / "datasets"
    if not path.is_dir():
        pytest.skip("../shared/datasets not found: real-file parser tests need it")
    return path


@cache
def _kernel_section_line(path: Path) -> int | None:
    """The line number of the "runs a kernel" comment in a test file, if it has one."""
    text = path.read_text(encoding="utf-8")
    match = KERNEL_SECTION.search(text)
    return None if match is None else text.count("\n", 0, match.start()) + 1


def slow_reason(item: pytest.Item) -> str | None:
    """Why a collected test belongs to the slow tier, or None if it is fast."""
    path = Path(item.path)
    if path.suffix == ".ipynb":
        return "executes a notebook"
    if path.name in SLOW_FILES:
        return SLOW_FILES[path.name]
    function = getattr(item, "function", None)
    if function is None or path.suffix != ".py":
        return None
    if function.__name__.startswith(BENCHMARK_PREFIX):
        return "runs the benchmark"
    kernel_line = _kernel_section_line(path)
    if kernel_line is not None and function.__code__.co_firstlineno > kernel_line:
        return "starts a notebook kernel"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        reason = slow_reason(item)
        if reason:
            item.add_marker(pytest.mark.slow(reason=reason))
        if Path(item.path).suffix == ".ipynb":
            item.add_marker(pytest.mark.notebook)
