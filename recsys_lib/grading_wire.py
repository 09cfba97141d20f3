"""How a learner's answers travel from the notebook's kernel to the grader, as plain data.

While ``python -m recsys_lib.grading`` runs a notebook, ``qN.check(answer)`` does not judge the
answer in the kernel: it hands it to :func:`record` and the grader, in its own process, asks
the kernel for it after the cell (:func:`emit_pending`). The answer comes back through the
kernel's output channel in a safe format that :func:`decode` reads without running any of the
learner's code: numbers, strings, lists, tuples, sets, dicts, NumPy arrays (raw bytes of a
non-object dtype), pandas Series, DataFrames and indexes, SciPy sparse matrices. A function
(most answers are functions) travels as a handle: the grader's checker calls a stand-in,
which sends the arguments to the kernel (pickled by the grader, the trusted side), runs the
learner's function there with :func:`serve_call`, and gets the result back as data again.
Anything else arrives as an inert stand-in that carries its type name and ``repr``.

The kernel side is the learner's: it can send whatever it likes. That is fine by design,
because what it sends is only ever *the answer*; the grader's own checkers decide whether the
answer is right. The README's "For teachers: grading" section explains the whole design.
"""

from __future__ import annotations

import base64
import json
import math
import pickle
import re
import sys
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

#: The MIME type of the kernel's messages to the grader (a JSON text).
MIME_TYPE = "text/x-recsys-grading"
#: Deepest nesting of containers an answer may have.
MAX_DEPTH = 40
#: Largest message (characters of JSON) the grader accepts from a kernel.
MAX_MESSAGE_CHARS = 200_000_000

_DTYPE_TEXT = re.compile(r"^[<>|=]?[biufcmMUS]\d+(\[\w+\])?$")
_TYPE_NAME = re.compile(r"[^A-Za-z0-9_.]")


class WireError(Exception):
    """Raised when a value cannot be encoded, or a message from the kernel cannot be read.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """


# ============================================================================ encoding
def encode(value: Any, handles: Callable[[Any], int] | None = None, depth: int = 0) -> Any:
    """Turn a value into JSON-ready data that :func:`decode` rebuilds without running code.

    Args:
        value: the answer or a function's result.
        handles: gives a callable a number the grader can call it by; callables become
            inert stand-ins when None.
        depth: the nesting level (internal).

    Returns:
        ``None``, a bool, int, float or str, or a dict tagged by its ``"$"`` key.

    Raises:
        WireError: the value is nested more than :data:`MAX_DEPTH` levels deep.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    if depth > MAX_DEPTH:
        raise WireError(f"the value is nested more than {MAX_DEPTH} levels deep")
    kind = type(value)
    if value is None or kind in (bool, str):
        return value
    if kind is int:
        return value if abs(value) < 2**53 else {"$": "bigint", "v": str(value)}
    if kind is float:
        return value if math.isfinite(value) else {"$": "float", "v": repr(value)}
    if value is Ellipsis:
        return {"$": "ellipsis"}
    if isinstance(value, np.ndarray):
        return _encode_array(value, handles, depth)
    if isinstance(value, np.generic):
        return {"$": "npscalar", "a": _encode_array(np.asarray(value), handles, depth)}
    for plain in (int, float, str):  # subclasses such as IntEnum travel as the plain type
        if isinstance(value, plain):
            return encode(plain(value), handles, depth)
    step = depth + 1
    if kind is complex:
        return {"$": "complex", "re": encode(value.real), "im": encode(value.imag)}
    if isinstance(value, bytes | bytearray):
        return {"$": "bytes", "b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, range):
        return {"$": "range", "v": [value.start, value.stop, value.step]}
    for container, tag in ((list, "list"), (tuple, "tuple"), (frozenset, "frozenset"),
                           (set, "set")):
        if isinstance(value, container):
            return {"$": tag, "v": [encode(item, handles, step) for item in value]}
    if isinstance(value, dict):
        return {"$": "dict", "k": [encode(k, handles, step) for k in value],
                "v": [encode(v, handles, step) for v in value.values()]}
    special = _encode_library_value(value, handles, depth)
    if special is not None:
        return special
    if callable(value) and handles is not None:
        name = getattr(value, "__qualname__", None) or type(value).__name__
        return {"$": "fn", "id": handles(value), "name": str(name)[:80]}
    return _encode_foreign(value, handles, depth)


def _encode_array(arr: np.ndarray, handles: Callable[[Any], int] | None, depth: int) -> dict:
    """An array: raw bytes for plain dtypes, one encoded item per cell for object dtype."""
    shape = [int(n) for n in arr.shape]
    subclass = "matrix" if isinstance(arr, np.matrix) else None
    if arr.dtype.hasobject or arr.dtype.names is not None or arr.dtype.kind == "V":
        items = [encode(item, handles, depth + 1) for item in np.asarray(arr).ravel().tolist()]
        return {"$": "objarray", "shape": shape, "v": items, "sub": subclass}
    data = np.ascontiguousarray(arr).tobytes()
    return {"$": "ndarray", "dtype": arr.dtype.str, "shape": shape, "sub": subclass,
            "b64": base64.b64encode(data).decode("ascii")}


def _encode_library_value(value: Any, handles: Callable[[Any], int] | None,
                          depth: int) -> dict | None:
    """pandas and SciPy values (imported only if the kernel already uses them), else None."""
    pd = sys.modules.get("pandas")
    if pd is not None:
        step = depth + 1
        if value is pd.NA:
            return {"$": "pdna"}
        if value is pd.NaT:
            return {"$": "pdnat"}
        if isinstance(value, pd.Timestamp):
            return {"$": "timestamp", "ns": int(value.value),
                    "tz": None if value.tz is None else str(value.tz)}
        if isinstance(value, pd.Index):
            return _encode_index(value, handles, step)
        if isinstance(value, pd.Series):
            return {"$": "series", "index": _encode_index(value.index, handles, step),
                    "v": encode(value.to_numpy(), handles, step), "dtype": str(value.dtype),
                    "name": encode(value.name, handles, step)}
        if isinstance(value, pd.DataFrame):
            return {"$": "frame", "index": _encode_index(value.index, handles, step),
                    "columns": _encode_index(value.columns, handles, step),
                    "v": [encode(value.iloc[:, i].to_numpy(), handles, step)
                          for i in range(value.shape[1])],
                    "dtypes": [str(d) for d in value.dtypes]}
    sparse = sys.modules.get("scipy.sparse")
    if sparse is not None and sparse.issparse(value):
        coo = value.tocoo()
        return {"$": "sparse", "format": value.format, "shape": [int(n) for n in value.shape],
                "array": isinstance(value, sparse.sparray),
                "row": _encode_array(np.asarray(coo.row), None, depth),
                "col": _encode_array(np.asarray(coo.col), None, depth),
                "data": encode(np.asarray(coo.data), handles, depth + 1)}
    return None


def _encode_index(index: Any, handles: Callable[[Any], int] | None, depth: int) -> dict:
    """A pandas Index, RangeIndex or MultiIndex."""
    import pandas as pd

    names = [encode(name, handles, depth + 1) for name in index.names]
    if isinstance(index, pd.RangeIndex):
        return {"$": "rangeindex", "v": [index.start, index.stop, index.step], "names": names}
    if isinstance(index, pd.MultiIndex):
        return {"$": "multiindex", "names": names,
                "levels": [encode(index.get_level_values(i).to_numpy(), handles, depth + 1)
                           for i in range(index.nlevels)]}
    return {"$": "index", "v": encode(index.to_numpy(), handles, depth + 1),
            "dtype": str(index.dtype), "names": names}


def _encode_foreign(value: Any, handles: Callable[[Any], int] | None, depth: int) -> dict:
    """Any other object: its type name, a short repr and, when it has one, its array."""
    try:
        text = repr(value)
    except Exception as err:  # noqa: BLE001 - a broken __repr__ must not stop grading
        text = f"<{type(value).__name__} whose repr raised {type(err).__name__}>"
    out: dict[str, Any] = {"$": "foreign", "type": type(value).__name__[:80],
                           "repr": text[:300]}
    if hasattr(value, "__array__") and not isinstance(value, type):
        try:
            arr = np.asarray(value)
            if not arr.dtype.hasobject:
                out["array"] = _encode_array(arr, handles, depth + 1)
        except Exception:  # noqa: BLE001 - no array then
            pass
    return out


def dumps(message: dict[str, Any]) -> str:
    """A message as JSON text (NaN and infinities are encoded before, so none remain).

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    return json.dumps(message, allow_nan=False, separators=(",", ":"))


# ============================================================================ decoding
class Foreign:
    """Stands for a learner's object that does not travel as data: inert, never callable.

    Each instance belongs to a subclass named like the learner's type (``Tensor``), so
    that a checker's ``got {type(x).__name__}`` names it.

    Attributes:
        text: the object's ``repr`` in the kernel (cut to 300 characters).

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """

    def __init__(self, text: str, array: np.ndarray | None = None) -> None:
        self.text = text
        self._array = array

    def __repr__(self) -> str:
        return self.text

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self._array is None:
            raise TypeError(f"a {type(self).__name__} is not an array")
        return self._array if dtype is None else self._array.astype(dtype)

    def __float__(self) -> float:
        return float(np.asarray(self).item())

    def __int__(self) -> int:
        return int(np.asarray(self).item())


_FOREIGN_TYPES: dict[str, type] = {}


def _foreign(name: Any, text: Any, array: np.ndarray | None) -> Foreign:
    """A :class:`Foreign` of a subclass named ``name`` (sanitised)."""
    clean = _TYPE_NAME.sub("_", str(name))[:80] or "object"
    if clean not in _FOREIGN_TYPES:
        _FOREIGN_TYPES[clean] = type(clean, (Foreign,), {"__module__": "learner"})
    return _FOREIGN_TYPES[clean](str(text)[:300], array)


def decode(data: Any, function: Callable[[int, str], Any] | None = None, depth: int = 0) -> Any:
    """Rebuild a value from :func:`encode`'s data, running none of the learner's code.

    Args:
        data: the JSON-ready data.
        function: makes the grader's stand-in for the learner function with this handle
            and name; a function arrives as an inert :class:`Foreign` when None.
        depth: the nesting level (internal).

    Returns:
        The value.

    Raises:
        WireError: the data is not something :func:`encode` writes.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    if depth > MAX_DEPTH + 5:
        raise WireError("the value is nested too deeply")
    if data is None or isinstance(data, bool | str | int | float):
        return data
    if not isinstance(data, dict) or not isinstance(data.get("$"), str):
        raise WireError(f"unexpected {type(data).__name__} in the answer")
    tag, step = data["$"], depth + 1
    try:
        return _DECODERS[tag](data, function, step)
    except KeyError as err:
        if tag not in _DECODERS:
            raise WireError(f"unknown kind of value {tag!r}") from None
        raise WireError(f"malformed {tag}: missing {err}") from None
    except WireError:
        raise
    except (TypeError, ValueError, OverflowError, IndexError, AttributeError) as err:
        raise WireError(f"malformed {tag}: {err}") from None


def _items(data: dict, function: Callable | None, depth: int, key: str = "v") -> list:
    values = data[key]
    if not isinstance(values, list):
        raise WireError(f"malformed {data['$']}: {key} is not a list")
    return [decode(item, function, depth) for item in values]


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 32 or not all(
            type(n) is int and 0 <= n < 2**40 for n in value):
        raise WireError("malformed array shape")
    return tuple(value)


def _decode_array(data: dict, function: Callable | None, depth: int) -> np.ndarray:
    shape = _shape(data["shape"])
    if data["$"] == "objarray":
        items = _items(data, function, depth)
        if len(items) != math.prod(shape):
            raise WireError("malformed array: wrong number of items")
        arr = np.empty(len(items), dtype=object)
        arr[:] = items
        arr = arr.reshape(shape)
    else:
        text = data["dtype"]
        if not isinstance(text, str) or not _DTYPE_TEXT.match(text):
            raise WireError(f"unsupported array dtype {text!r}")
        dtype = np.dtype(text)
        if dtype.hasobject:
            raise WireError("object arrays must be sent item by item")
        raw = base64.b64decode(data["b64"], validate=True)
        if len(raw) != math.prod(shape) * dtype.itemsize:
            raise WireError("malformed array: its size does not match its shape")
        arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    return np.asmatrix(arr) if data.get("sub") == "matrix" else arr


def _decode_index(data: dict, function: Callable | None, depth: int) -> Any:
    import pandas as pd

    names = _items(data, function, depth, "names")
    if data["$"] == "rangeindex":
        start, stop, step = (int(n) for n in data["v"])
        return pd.RangeIndex(start, stop, step, name=names[0] if names else None)
    if data["$"] == "multiindex":
        levels = _items(data, function, depth, "levels")
        return pd.MultiIndex.from_arrays(levels, names=names)
    values = decode(data["v"], function, depth)
    index = pd.Index(values, name=names[0] if names else None)
    return _with_dtype(index, data.get("dtype"))


def _with_dtype(values: Any, dtype: Any) -> Any:
    """``values.astype(dtype)`` when the sent dtype name differs and pandas knows it."""
    if not isinstance(dtype, str) or str(values.dtype) == dtype:
        return values
    try:
        import pandas as pd

        return values.astype(pd.api.types.pandas_dtype(dtype))
    except (TypeError, ValueError):
        return values


def _decode_series(data: dict, function: Callable | None, depth: int) -> Any:
    import pandas as pd

    index = decode(data["index"], function, depth)
    values = decode(data["v"], function, depth)
    if not isinstance(values, np.ndarray) or len(values) != len(index):
        raise WireError("malformed series")
    series = pd.Series(values, index=index, name=decode(data["name"], function, depth))
    return _with_dtype(series, data.get("dtype"))


def _decode_frame(data: dict, function: Callable | None, depth: int) -> Any:
    import pandas as pd

    index = decode(data["index"], function, depth)
    columns = decode(data["columns"], function, depth)
    arrays = _items(data, function, depth)
    dtypes = data.get("dtypes") or [None] * len(arrays)
    if len(arrays) != len(columns) or len(dtypes) != len(arrays) or any(
            not isinstance(a, np.ndarray) or len(a) != len(index) for a in arrays):
        raise WireError("malformed data frame")
    parts = {i: _with_dtype(pd.Series(a, index=index), d).array
             for i, (a, d) in enumerate(zip(arrays, dtypes, strict=True))}
    frame = pd.DataFrame(parts, index=index)
    frame.columns = columns
    return frame


def _decode_sparse(data: dict, function: Callable | None, depth: int) -> Any:
    import scipy.sparse as sp

    shape = _shape(data["shape"])
    row, col = (_decode_array(data[key], None, depth) for key in ("row", "col"))
    values = decode(data["data"], function, depth)
    if len(shape) != 2 or not (len(row) == len(col) == len(values)):
        raise WireError("malformed sparse matrix")
    make = sp.coo_array if data.get("array") else sp.coo_matrix
    matrix = make((values, (row, col)), shape=shape)
    fmt = data.get("format")
    return matrix.asformat(fmt) if fmt in ("csr", "csc", "coo", "lil", "dok", "bsr",
                                           "dia") else matrix


def _decode_foreign(data: dict, function: Callable | None, depth: int) -> Foreign:
    array = _decode_array(data["array"], None, depth) if "array" in data else None
    return _foreign(data["type"], data["repr"], array)


def _decode_function(data: dict, function: Callable | None, depth: int) -> Any:
    handle, name = data["id"], str(data.get("name", "function"))
    if type(handle) is not int:
        raise WireError("malformed function handle")
    if function is None:
        return _foreign("function", f"<function {name}>", None)
    return function(handle, name)


def _decode_float(data: dict, function: Callable | None, depth: int) -> float:
    text = data["v"]
    if text not in ("nan", "inf", "-inf"):
        raise WireError(f"malformed float {text!r}")
    return float(text)


def _decode_timestamp(data: dict, function: Callable | None, depth: int) -> Any:
    import pandas as pd

    tz = data.get("tz")
    return pd.Timestamp(int(data["ns"]), tz=tz if isinstance(tz, str) else None)


def _decode_dict(data: dict, function: Callable | None, depth: int) -> dict:
    keys, values = _items(data, function, depth, "k"), _items(data, function, depth)
    if len(keys) != len(values):
        raise WireError("malformed dict")
    return dict(zip(keys, values, strict=True))


def _decode_pandas_missing(data: dict, function: Callable | None, depth: int) -> Any:
    import pandas as pd

    return pd.NA if data["$"] == "pdna" else pd.NaT


_DECODERS: dict[str, Callable[[dict, Callable | None, int], Any]] = {
    "bigint": lambda d, f, n: int(d["v"]),
    "float": _decode_float,
    "ellipsis": lambda d, f, n: Ellipsis,
    "complex": lambda d, f, n: complex(float(decode(d["re"])), float(decode(d["im"]))),
    "bytes": lambda d, f, n: base64.b64decode(d["b64"], validate=True),
    "range": lambda d, f, n: range(*(int(x) for x in d["v"])),
    "list": lambda d, f, n: _items(d, f, n),
    "tuple": lambda d, f, n: tuple(_items(d, f, n)),
    "set": lambda d, f, n: set(_items(d, f, n)),
    "frozenset": lambda d, f, n: frozenset(_items(d, f, n)),
    "dict": _decode_dict,
    "ndarray": _decode_array,
    "objarray": _decode_array,
    "npscalar": lambda d, f, n: _decode_array(d["a"], f, n)[()],
    "pdna": _decode_pandas_missing,
    "pdnat": _decode_pandas_missing,
    "timestamp": _decode_timestamp,
    "index": _decode_index,
    "rangeindex": _decode_index,
    "multiindex": _decode_index,
    "series": _decode_series,
    "frame": _decode_frame,
    "sparse": _decode_sparse,
    "foreign": _decode_foreign,
    "fn": _decode_function,
}


def loads(text: Any) -> dict[str, Any]:
    """Parse one message from the kernel (the JSON text of :data:`MIME_TYPE` output).

    Args:
        text: what the kernel displayed.

    Returns:
        The message, a dict with a ``"kind"`` key.

    Raises:
        WireError: not text, too long, not JSON, or not a message.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    if not isinstance(text, str):
        raise WireError("the kernel's message is not text")
    if len(text) > MAX_MESSAGE_CHARS:
        raise WireError(f"the kernel's message is longer than {MAX_MESSAGE_CHARS} characters")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise WireError(f"the kernel's message is not JSON: {err}") from None
    if not isinstance(message, dict) or not isinstance(message.get("kind"), str):
        raise WireError("the kernel's message has no kind")
    return message


def encode_call(args: tuple, kwargs: dict[str, Any]) -> str:
    """Pickle a checker's arguments for the kernel (grader to kernel only: never the reverse).

    Args:
        args: positional arguments of the call.
        kwargs: keyword arguments.

    Returns:
        Base64 text that :func:`serve_call` unpickles in the kernel.

    Raises:
        pickle.PicklingError, TypeError, AttributeError: an argument cannot be pickled.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    return base64.b64encode(pickle.dumps((tuple(args), dict(kwargs)), protocol=5)).decode()


# ============================================================================ kernel side
_PENDING: dict[tuple[str, str], Any] = {}
_HANDLES: dict[int, Any] = {}


def _handle(func: Any) -> int:
    """The number the grader calls ``func`` by (one per object)."""
    for number, known in _HANDLES.items():
        if known is func:
            return number
    number = len(_HANDLES) + 1
    _HANDLES[number] = func
    return number


def record(lesson: str, question: str, answer: Any) -> None:
    """Keep an answer until the grader asks for it (what ``qN.check`` does while graded).

    Args:
        lesson: the lesson (``"ex01"``).
        question: the question (``"q1"``).
        answer: the learner's answer; a later answer to the same question replaces it.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    _PENDING.pop((lesson, question), None)
    _PENDING[(lesson, question)] = answer


def _display(message: dict[str, Any]) -> None:
    """Send a message to the grader through the kernel's output channel."""
    from IPython.display import display

    display({MIME_TYPE: dumps(message)}, raw=True)


def emit_pending() -> None:
    """Send the answers recorded since the last call, then forget them (kernel side).

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    answers = []
    for (lesson, question), answer in list(_PENDING.items()):
        item: dict[str, Any] = {"lesson": lesson, "question": question}
        try:
            item["value"] = encode(answer, _handle)
        except Exception as err:  # noqa: BLE001 - any odd object is reported, not raised
            item["error"] = f"the answer could not be sent to the grader: {err}"
        answers.append(item)
    _PENDING.clear()
    _display({"kind": "answers", "answers": answers})


def serve_call(handle: int, blob: str | None = None, path: str | None = None) -> None:
    """Call a learner function for the grader and send back its result (kernel side).

    Args:
        handle: the number :func:`encode` gave the function.
        blob: the arguments, from :func:`encode_call`.
        path: instead of ``blob``, a file holding the decoded bytes (large arguments); it
            is deleted once read.

    Not a lesson: part of the teacher's grader (README, "For teachers: grading").
    """
    func = _HANDLES.get(handle)
    if func is None:
        _display({"kind": "raised", "type": "LookupError", "line": None,
                  "message": f"no function with handle {handle}"})
        return
    if path is not None:
        import os

        with open(path, "rb") as handle_file:
            raw = handle_file.read()
        os.remove(path)
    else:
        raw = base64.b64decode(blob or "")
    args, kwargs = pickle.loads(raw)
    try:
        result = func(*args, **kwargs)
    except BaseException as err:  # noqa: BLE001 - everything the learner's code raises
        frames = [f for f in traceback.extract_tb(err.__traceback__)
                  if not f.filename.endswith("grading_wire.py")]
        _display({"kind": "raised", "type": type(err).__name__, "message": str(err)[:500],
                  "line": frames[-1].lineno if frames else None,
                  "not_implemented": isinstance(err, NotImplementedError)})
        return
    try:
        value = encode(result, _handle)
    except Exception as err:  # noqa: BLE001 - any odd object is reported, not raised
        _display({"kind": "unsendable", "message": f"{type(err).__name__}: {err}"})
        return
    _display({"kind": "result", "value": value})
