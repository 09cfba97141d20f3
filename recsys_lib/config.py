"""Course-wide settings: quick mode, seeds, paths and an environment summary.

Notebook 00 explains these; every notebook calls them in its first cells.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from recsys_lib.checks import check_int

QUICK_ENV_VAR = "RECSYS_QUICK"
DATA_DIR_ENV_VAR = "RECSYS_DATA_DIR"
DEFAULT_SEED = 42

#: The repository's own folder (``recsys_lib``'s parent). The bundled dataset lives in
#: ``REPO_ROOT / "datasets"``; this works for a clone installed with ``pip install -e .``.
REPO_ROOT = Path(__file__).resolve().parent.parent


def is_quick_mode() -> bool:
    """Tell whether notebooks should run in quick mode.

    Quick mode shrinks every size knob (epochs, sample sizes) so that the test suite can
    execute all notebooks in minutes. The tests switch it on by setting the environment
    variable ``RECSYS_QUICK=1``; a learner never has to touch it.

    Returns:
        True when ``RECSYS_QUICK`` is set to ``1``, ``true`` or ``yes`` (any case).

    Explained in notebook 00.
    """
    return os.environ.get(QUICK_ENV_VAR, "").strip().lower() in {"1", "true", "yes"}


def set_seed(seed: int = DEFAULT_SEED) -> int:
    """Seed Python's ``random``, NumPy's global generator and, if already imported, Keras.

    Keras (and TensorFlow) is seeded only when a notebook has imported it, so that
    notebooks without deep learning do not pay for importing TensorFlow.

    Args:
        seed: any non-negative integer.

    Returns:
        The seed, so a notebook can print or store it.

    Raises:
        ValueError: if ``seed`` is negative or not an integer.

    Explained in notebook 00.
    """
    seed = check_int("seed", seed, minimum=0)
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(seed)
    return seed


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (and Keras) without TensorFlow's C++ start-up log lines.

    On import and when it first looks for GPUs, TensorFlow's C++ core prints lines such as
    ``I0000 ... cudart_stub.cc ... Could not find cuda drivers`` or ``E0000 ... failed call
    to cuInit`` straight to the process's standard error, before any setting can silence
    them. They are not errors (notebook 00 explains them), but they clutter every notebook.
    This function sets ``TF_CPP_MIN_LOG_LEVEL=2`` (TensorFlow's later messages: errors only)
    unless it is set, then imports TensorFlow and Keras and looks for devices with standard
    error pointed at the null device, and restores it. Python errors still surface as
    exceptions. Calling it again does nothing.

    Explained in notebook 00; every notebook that uses Keras calls it before ``import keras``.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401  (imports TensorFlow, its backend)
        import tensorflow as tf

        tf.config.list_physical_devices()  # the device search that prints the cuInit line
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def default_data_dir() -> Path:
    """Where downloaded datasets are cached.

    ``RECSYS_DATA_DIR`` wins when set. Otherwise ``~/.cache/recsys_course`` (in Colab
    that is ``/root/.cache/recsys_course``, which lasts as long as the Colab session).

    Returns:
        The folder (not created here).

    Explained in notebook 00.
    """
    override = os.environ.get(DATA_DIR_ENV_VAR)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "recsys_course"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment_summary(packages: tuple[str, ...] | None = None) -> str:
    """Describe the machine and library versions in a few lines (printed by every notebook).

    Args:
        packages: distribution names to report; a sensible default list when None.

    Returns:
        A multi-line string. It ends with the versions the course was tested with on Google
        Colab (from ``constraints-colab.txt``) and, when TensorFlow has already been imported,
        the GPUs TensorFlow can see.

    Explained in notebook 00.
    """
    if packages is None:
        packages = ("numpy", "pandas", "scipy", "matplotlib", "tensorflow", "keras")
    in_colab = "google.colab" in sys.modules
    lines = [
        f"Python      {platform.python_version()} on {platform.system()} {platform.machine()}",
        f"Running in  {'Google Colab' if in_colab else 'a local Jupyter / Python'}",
        f"Quick mode  {is_quick_mode()}  (set {QUICK_ENV_VAR}=1 for a fast test run)",
        f"Data cache  {default_data_dir()}",
    ]
    lines += [f"{name:<11} {_version(name)}" for name in packages]
    from recsys_lib.course import colab_tested_line  # imported late: course imports config

    colab = colab_tested_line()
    if colab:
        lines.append(f"Colab       {colab}")
    if "tensorflow" in sys.modules:
        gpus = sys.modules["tensorflow"].config.list_physical_devices("GPU")
        lines.append(f"GPUs        {len(gpus)} visible to TensorFlow")
    return "\n".join(lines)
