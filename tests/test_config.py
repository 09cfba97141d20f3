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
