"""Shared pytest fixtures for the course's test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: The repository root (this file lives in ``<root>/tests``), not the installed package's.
REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS_ENV_VAR = "RECSYS_SHARED_DATASETS"


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
