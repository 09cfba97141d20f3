"""Argument checks shared by the whole library, so every function rejects bad input alike.

Each check returns the cleaned value (a plain ``int`` or ``float``) or raises
:class:`ArgumentError` with a message that names the argument, says what was expected and
shows what was given::

    k = check_int("k", k)                          # an integer >= 1 (bool, 2.5, "3" rejected)
    seed = check_int("seed", seed, minimum=0)
    lr = check_float("learning_rate", lr)          # finite and > 0
    l2 = check_float("l2", l2, strict=False)       # finite and >= 0
    p = check_float("dropout", p, strict=False, maximum=1.0)   # in [0, 1)

:class:`ArgumentError` is both a ``ValueError`` and a ``TypeError``, so code that catches
either keeps working. Not the topic of a notebook: the library code of every notebook uses it.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np


class ArgumentError(ValueError, TypeError):
    """A bad argument: wrong type or out of range. Catch it as ValueError or TypeError.

    Not a lesson of its own: the library code of every notebook uses it.
    """


def _is_integer(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def check_int(name: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    """Check that ``value`` is an integer (not a bool, not a float) in ``[minimum, maximum]``.

    Args:
        name: the argument's name, used in the message.
        value: what the caller passed.
        minimum: smallest allowed value (1 for sizes, counts and k; 0 for seeds).
        maximum: largest allowed value, or None for no upper bound.

    Returns:
        ``value`` as a Python ``int``.

    Raises:
        ArgumentError: not an integer, or out of range.

    Not a lesson of its own: the library code of every notebook uses it.
    """
    upper = "" if maximum is None else f" and <= {maximum}"
    if not _is_integer(value) or value < minimum or (maximum is not None and value > maximum):
        raise ArgumentError(f"{name} must be an integer >= {minimum}{upper}, got {value!r}")
    return int(value)


def check_k(k: object) -> int:
    """Check a cut-off or list length ``k``: an integer >= 1. See :func:`check_int`.

    Not a lesson of its own: the library code of every notebook uses it.
    """
    return check_int("k", k)


def check_float(name: str, value: object, minimum: float = 0.0, strict: bool = True,
                maximum: float | None = None, strict_maximum: bool = True) -> float:
    """Check that ``value`` is a finite real number above ``minimum`` (and below ``maximum``).

    Args:
        name: the argument's name, used in the message.
        value: what the caller passed (int, float or a NumPy number; not a bool).
        minimum: lower bound.
        strict: True for ``value > minimum``, False for ``value >= minimum``.
        maximum: upper bound, or None.
        strict_maximum: True for ``value < maximum``, False for ``value <= maximum``.

    Returns:
        ``value`` as a Python ``float``.

    Raises:
        ArgumentError: not a finite number, or out of range.

    Not a lesson of its own: the library code of every notebook uses it.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
    ok = ok and bool(np.isfinite(value))
    low_ok = ok and (value > minimum if strict else value >= minimum)
    high_ok = ok and (maximum is None
                      or (value < maximum if strict_maximum else value <= maximum))
    if not (low_ok and high_ok):
        bound = f"{'>' if strict else '>='} {minimum}"
        if maximum is not None:
            bound += f" and {'<' if strict_maximum else '<='} {maximum}"
        raise ArgumentError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def check_ints(minimum: int = 1, **values: object) -> None:
    """Apply :func:`check_int` to several named values: ``check_ints(epochs=10, k=5)``.

    Not a lesson of its own: the library code of every notebook uses it.
    """
    for name, value in values.items():
        check_int(name, value, minimum)


def check_sizes(name: str, sizes: Iterable[int], allow_empty: bool = False) -> tuple[int, ...]:
    """Check a sequence of layer sizes such as ``(64, 32)``: each an integer >= 1.

    Args:
        name: the argument's name, used in the message.
        sizes: the sequence.
        allow_empty: whether ``()`` is allowed.

    Returns:
        The sizes as a tuple of ``int``.

    Raises:
        ArgumentError: not a sequence, empty when not allowed, or a bad size.

    Not a lesson of its own: the library code of every notebook uses it.
    """
    if isinstance(sizes, int | str | bytes) or not isinstance(sizes, Iterable):
        raise ArgumentError(f"{name} must be a sequence of layer sizes, e.g. (64, 32), got "
                            f"{sizes!r}")
    sizes = tuple(sizes)
    if not sizes and not allow_empty:
        raise ArgumentError(f"{name} needs at least one layer size, got ()")
    return tuple(check_int(f"every size in {name}", size) for size in sizes)


def check_choice(name: str, value: object, choices: Iterable) -> object:
    """Check that ``value`` is one of ``choices``; returns it.

    Raises:
        ArgumentError: ``value`` is not one of them (the message lists them).

    Not a lesson of its own: the library code of every notebook uses it.
    """
    choices = tuple(choices)
    if value not in choices:
        raise ArgumentError(f"{name} must be one of {', '.join(map(repr, choices))}, "
                            f"got {value!r}")
    return value
