"""Quick mode, seeds, the environment summary and the data cache location."""

import random

import numpy as np
import pytest

from recsys_lib import config


@pytest.mark.parametrize(("value", "expected"),
                         [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_quick_mode_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("RECSYS_QUICK", value)
    assert config.is_quick_mode() is expected


def test_set_seed_makes_numpy_and_random_repeat():
    config.set_seed(7)
    first = (random.random(), np.random.rand())
    config.set_seed(7)
    assert (random.random(), np.random.rand()) == first
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="seed must be an integer >= 0"):
            config.set_seed(bad)


def test_data_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path))
    assert config.default_data_dir() == tmp_path
    monkeypatch.delenv("RECSYS_DATA_DIR")
    assert config.default_data_dir().name == "recsys_course"


def test_environment_summary_lists_versions():
    text = config.environment_summary()
    assert "numpy" in text and np.__version__ in text and "Quick mode" in text


@pytest.mark.slow  # starts TensorFlow in a fresh process
def test_import_tensorflow_quietly_hides_the_cpp_start_up_lines():
    """In a fresh process: TensorFlow and Keras imported, nothing on standard error."""
    import subprocess
    import sys

    pytest.importorskip("keras")
    code = ("from recsys_lib.config import import_tensorflow_quietly\n"
            "import_tensorflow_quietly()\nimport_tensorflow_quietly()\n"
            "import sys\nassert 'tensorflow' in sys.modules and 'keras' in sys.modules\n"
            "import keras\nprint(keras.ops.convert_to_numpy(keras.ops.ones(2)).sum())\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2.0"
    assert result.stderr == "", result.stderr
