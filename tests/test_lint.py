"""The linter is part of the test command: ruff over the library and the tests."""

import subprocess
import sys

from recsys_lib.config import REPO_ROOT


def test_ruff_finds_nothing():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "recsys_lib", "tests", "datasets", "results",
         "conftest.py"],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
