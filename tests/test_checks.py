"""The shared argument checks: what they accept, what they reject and what they say."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_lib.checks import (
    ArgumentError,
    check_choice,
    check_float,
    check_int,
    check_ints,
    check_k,
    check_sizes,
)


def test_check_int_accepts_integers_and_returns_python_ints():
    assert check_int("k", 3) == 3 and type(check_int("k", np.int64(3))) is int
    assert check_int("seed", 0, minimum=0) == 0
    assert check_int("n", 5, maximum=5) == 5


@pytest.mark.parametrize("value", [0, -1, 2.5, 3.0, True, np.True_, "3", None, np.nan])
def test_check_int_rejects_everything_else(value):
    with pytest.raises(ArgumentError, match=r"k must be an integer >= 1, got"):
        check_k(value)


def test_argument_error_is_both_value_and_type_error():
    for caught in (ValueError, TypeError):
        with pytest.raises(caught):
            check_int("epochs", "ten")
    with pytest.raises(ArgumentError, match="n must be an integer >= 1 and <= 4, got 5"):
        check_int("n", 5, maximum=4)
    with pytest.raises(ArgumentError, match="batch_size"):
        check_ints(epochs=3, batch_size=0)


@pytest.mark.parametrize("value, kwargs, ok", [
    (0.1, {}, True), (0, {}, False), (0, {"strict": False}, True), (-0.1, {"strict": False}, False),
    (np.inf, {}, False), (np.nan, {}, False), (True, {}, False), ("0.1", {}, False),
    (0.999, {"maximum": 1.0}, True), (1.0, {"maximum": 1.0}, False),
    (1.0, {"maximum": 1.0, "strict_maximum": False}, True),
])
def test_check_float(value, kwargs, ok):
    if ok:
        assert check_float("x", value, **kwargs) == float(value)
    else:
        with pytest.raises(ArgumentError, match="x must be a finite number"):
            check_float("x", value, **kwargs)


def test_check_sizes_and_choice():
    assert check_sizes("layers", [64, np.int32(32)]) == (64, 32)
    assert check_sizes("layers", (), allow_empty=True) == ()
    for bad, message in [(8, "must be a sequence"), ((), "at least one"),
                         ((8, 0), "every size in layers")]:
        with pytest.raises(ArgumentError, match=message):
            check_sizes("layers", bad)
    assert check_choice("mode", "a", ("a", "b")) == "a"
    with pytest.raises(ArgumentError, match="mode must be one of 'a', 'b', got 'c'"):
        check_choice("mode", "c", ("a", "b"))
