"""Large data on one machine: a ratings table of ml-25m's size, read and cached compactly.

ml-25m has 25,000,095 ratings. Read naively (``pd.read_csv``: int64 ids, float64 ratings,
int64 timestamps) that is 32 bytes a row, 800 MB, and the parse takes about three times that
at its peak (2.3 GB of resident memory, measured on a synthetic file of that size).
This module shows three cheaper ways and how to measure them::

    info = write_synthetic_ratings("/tmp/ratings.csv")   # ml-25m's size and CSV layout
    naive = read_ratings_naive(info.path)                # the baseline, 32 bytes a row
    compact = read_ratings_chunked(info.path)            # 16 bytes a row, chunk by chunk
    build_columnar_cache(info.path, "/tmp/ratings.cache")   # one .npy file per column
    ratings = load_columnar_cache("/tmp/ratings.cache")  # memory-mapped: loads in ms
    result, seconds, peak_bytes = measure(read_ratings_chunked, info.path)
    memory_budget_report(compact)                        # bytes per column and in all

The synthetic file has the header and value layout of ml-25m's ``ratings.csv``
(``userId,movieId,rating,timestamp``), so the same code reads the real file once it has
been downloaded (``recsys_lib.data.fetch_movielens("ml-25m")``). Tables come back with the
course's columns ``user_id, item_id, rating, timestamp``.

Explained in notebook 13.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from recsys_lib.checks import ArgumentError, check_int
from recsys_lib.data import RATING_COLUMNS, DatasetError

#: ml-25m's ``ratings.csv``: its header, and its numbers of ratings, users and movies.
CSV_COLUMNS = ("userId", "movieId", "rating", "timestamp")
ML25M_ROWS, ML25M_USERS, ML25M_ITEMS = 25_000_095, 162_541, 59_047
#: The CSV's column names -> the course's (``recsys_lib.data.RATING_COLUMNS``).
COURSE_NAMES = dict(zip(CSV_COLUMNS, RATING_COLUMNS, strict=True))

#: What ``pd.read_csv`` picks by itself: 8 + 8 + 8 + 8 = 32 bytes a row.
WIDE_DTYPES = {"user_id": np.dtype("int64"), "item_id": np.dtype("int64"),
               "rating": np.dtype("float64"), "timestamp": np.dtype("int64")}
#: 4 + 4 + 4 + 4 = 16 bytes a row, half of WIDE_DTYPES, and every value stays exact:
#: ids up to 2,147,483,647 (ml-25m's largest movieId is 209,171); float32 holds every half
#: star exactly and ``rating`` still means stars (uint8 "half stars x 2" would save 3 more
#: bytes a row, but every user of the table would have to remember to halve it); int32
#: seconds reach 2038-01-19 (ml-25m ends in 2019), and the difference of two such
#: timestamps fits too. A value that does not fit raises, it is never wrapped around: then
#: pass ``dtypes=WIDE_DTYPES``.
COMPACT_DTYPES = {"user_id": np.dtype("int32"), "item_id": np.dtype("int32"),
                  "rating": np.dtype("float32"), "timestamp": np.dtype("int32")}

#: ml-25m's first and last timestamps (1995-01-09 and 2019-11-21, UTC).
FIRST_TIMESTAMP, LAST_TIMESTAMP = 789_652_009, 1_574_327_703
#: 2003-02-18 UTC: the synthetic ratings are whole stars before it, as in MovieLens before
#: half stars were introduced in 2003.
HALF_STARS_SINCE = 1_045_526_400

MANIFEST = "manifest.json"
CACHE_FORMAT = "recsys_lib columnar ratings cache"
CACHE_VERSION = 1
#: Bytes at each end of the CSV that go into a cache's fingerprint of its source.
FINGERPRINT_BYTES = 1 << 20
_MAX_INT32 = 2**31 - 1
_READ_BLOCK = 1 << 20  # bytes read at a time when counting lines


class CacheError(DatasetError):
    """A columnar cache is missing, incomplete or corrupt (the message says what to do).

    Explained in notebook 13.
    """


class StaleCacheError(CacheError):
    """A columnar cache was built from a CSV that has changed since (rebuild it).

    Explained in notebook 13.
    """


class SyntheticRatings(NamedTuple):
    """What :func:`write_synthetic_ratings` returns: the file and a summary of it.

    Explained in notebook 13.
    """

    path: Path
    rows: int  # ratings written
    users: int  # users with at least one rating
    items: int  # movies with at least one rating
    size_bytes: int  # size of the CSV file
    seconds: float  # time it took to write


class Measurement(NamedTuple):
    """What :func:`measure` returns; unpack with ``result, seconds, peak_bytes = ...``.

    Explained in notebook 13.
    """

    result: Any
    seconds: float
    peak_bytes: int


# ------------------------------------------------------------------------ synthetic data
def write_synthetic_ratings(path: str | Path, n_rows: int = ML25M_ROWS,
                            n_users: int = ML25M_USERS, n_items: int = ML25M_ITEMS,
                            seed: int = 42, chunk_rows: int = 1_000_000) -> SyntheticRatings:
    """Write a synthetic ratings CSV with ml-25m's header, layout and (by default) size.

    The rows are grouped by user (ids ``1..n_users``) and in time order within a user, like a
    rating log; movie ids are ``1..n_items``. Like MovieLens, user activity is long-tailed
    (at least 20 ratings a user when ``n_rows`` allows, a few users with thousands) and movie
    popularity is Zipf-like (a few blockbusters, a long tail of movies with a handful of
    ratings, so a few tail movies may get none). A user rates a movie at most once (unless
    they have more ratings than there are movies). Ratings are 0.5 to 5.0 in half stars
    (whole stars before 2003), from a user bias, a movie bias and noise, so a model has
    something to learn. Timestamps are whole seconds from 1995-01-09 to 2019-11-21.

    The table is made and written ``chunk_rows`` rows at a time (never whole in memory), with
    NumPy only: the text of a chunk is built as one byte matrix, which is several times faster
    than ``DataFrame.to_csv``. Each random value depends only on ``seed`` and its row number,
    so the file is the same whatever ``chunk_rows`` is. The file is written under a temporary
    name and renamed at the end: an interrupted run never leaves a truncated CSV behind.

    Args:
        path: the CSV file to write (replaced if it exists; missing folders are created).
        n_rows: number of ratings, at least 1 (default: ml-25m's 25,000,095).
        n_users: number of users, at least 1 (default: ml-25m's 162,541).
        n_items: number of movies, at least 1 (default: ml-25m's 59,047).
        seed: random seed, an integer >= 0; the same seed gives the same file.
        chunk_rows: about this many rows are made at a time (whole users: a chunk can be
            longer by one user's ratings); at least 1. Memory grows by about 150 bytes per
            chunk row (150 MB for the default).

    Returns:
        ``SyntheticRatings(path, rows, users, items, size_bytes, seconds)``.

    Raises:
        ArgumentError: a size below 1 (or ids above 2,147,483,647), or a negative seed.
        OSError: ``path`` cannot be written (the message names it and says what to do).

    Explained in notebook 13.
    """
    n_rows = check_int("n_rows", n_rows)
    n_users = check_int("n_users", n_users, maximum=_MAX_INT32)
    n_items = check_int("n_items", n_items, maximum=_MAX_INT32)
    seed = check_int("seed", seed, minimum=0)
    chunk_rows = check_int("chunk_rows", chunk_rows)
    path = Path(path).expanduser()
    started = time.perf_counter()
    model = _SyntheticModel(n_rows, n_users, n_items, seed)
    rated = np.zeros(n_items, dtype=bool)
    with _atomic_output(path) as fh:
        fh.write((",".join(CSV_COLUMNS) + "\n").encode())
        for first_user, end_user in _user_chunks(model.counts, chunk_rows):
            if not model.counts[first_user:end_user].any():
                continue  # only users without ratings (n_rows < 20 * n_users)
            users, items, half_stars, stamps = model.chunk(first_user, end_user)
            rated[items - 1] = True
            fh.write(_csv_bytes(users, items, half_stars, stamps))
    return SyntheticRatings(path, n_rows, int(np.count_nonzero(model.counts)),
                            int(np.count_nonzero(rated)), path.stat().st_size,
                            time.perf_counter() - started)


class _SyntheticModel:
    """The per-user and per-movie parameters of the synthetic data, drawn from ``seed``."""

    def __init__(self, n_rows: int, n_users: int, n_items: int, seed: int):
        self.n_items, self.seed = n_items, seed
        rng = np.random.default_rng(seed)
        # users: a long-tailed (log-normal) activity on top of a minimum of 20 ratings each
        minimum = min(20, n_rows // n_users)
        weights = rng.lognormal(0.0, 1.3, n_users)
        self.counts = minimum + rng.multinomial(n_rows - minimum * n_users,
                                                weights / weights.sum())
        self.starts = np.cumsum(self.counts) - self.counts  # first row of each user
        self.user_bias = rng.normal(0.0, 0.4, n_users)
        span = np.minimum(np.exp(rng.normal(np.log(7 * 86_400), 2.5, n_users)),
                          LAST_TIMESTAMP - FIRST_TIMESTAMP)
        self.first_time = FIRST_TIMESTAMP + rng.random(n_users) * (
            LAST_TIMESTAMP - FIRST_TIMESTAMP - span)
        self.span = span
        # movies: Zipf-Mandelbrot popularity p(rank) ~ (rank + offset) ** -2.05, which gives
        # ml-25m's top movie (~80,000 ratings) and median movie (~7) at ml-25m's size
        ranks = np.arange(1, n_items + 1, dtype=np.float64)
        popularity = (ranks + 0.005 * n_items) ** -2.05
        self.cdf = np.cumsum(popularity / popularity.sum())
        self.item_of_rank = rng.permutation(n_items)  # popular movies get scattered ids
        self.item_bias = rng.normal(0.0, 0.45, n_items)

    def chunk(self, first_user: int, end_user: int) -> tuple[np.ndarray, ...]:
        """The rows of users ``first_user..end_user-1`` (0-based): ids, half stars, times."""
        counts = self.counts[first_user:end_user]
        rows = np.arange(self.starts[first_user], self.starts[first_user] + counts.sum())
        user = np.repeat(np.arange(first_user, end_user), counts)
        item = self._unique_items(user, rows)
        position = rows - self.starts[user]  # 0, 1, ... within a user: time order
        jitter = _uniform(self.seed, 1, rows)
        stamps = (self.first_time[user]
                  + self.span[user] * (position + jitter) / self.counts[user]).astype(np.int64)
        noise = _uniform(self.seed, 2, rows)
        noise = 0.45 * np.log(noise / (1.0 - noise) + 1e-300)  # logistic, sd ~0.82
        score = 3.5 + self.user_bias[user] + self.item_bias[item] + noise
        whole = stamps < HALF_STARS_SINCE
        half_stars = np.where(whole, 2 * np.rint(score), np.rint(2 * score))
        half_stars = np.clip(half_stars, np.where(whole, 2, 1), 10).astype(np.int64)
        return user + 1, item + 1, half_stars, stamps

    def _unique_items(self, user: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Draw a movie (0-based) for each row; redraw a user's repeats of a movie."""
        item = self._popular_items(_uniform(self.seed, 3, rows))
        todo = np.arange(len(rows))
        for attempt in range(6):
            repeats = todo[_repeats(user[todo], item[todo])]
            if repeats.size == 0:
                return item
            draws = _uniform(self.seed, 4 + attempt, rows[repeats])
            # popular movies first, then any movie, so that heavy users finish fast
            item[repeats] = (self._popular_items(draws) if attempt < 3
                             else (draws * self.n_items).astype(np.int64))
            todo = np.flatnonzero(np.isin(user, user[repeats]))
        for who in np.unique(user[todo[_repeats(user[todo], item[todo])]]):
            self._replace_repeats(item, np.flatnonzero(user == who), rows)
        return item

    def _replace_repeats(self, item: np.ndarray, mine: np.ndarray, rows: np.ndarray) -> None:
        """Give one user's repeated rows movies they have not rated (a shuffled order)."""
        repeats = mine[_repeats(np.zeros(len(mine), np.int64), item[mine])]
        unused = np.setdiff1d(np.arange(self.n_items), item[mine])
        order = np.argsort(_uniform(self.seed, 10, unused + rows[mine[0]] * self.n_items))
        take = min(len(repeats), len(unused))  # a user with more ratings than movies
        item[repeats[:take]] = unused[order[:take]]  # keeps some repeats

    def _popular_items(self, uniform: np.ndarray) -> np.ndarray:
        rank = np.minimum(np.searchsorted(self.cdf, uniform, side="right"), self.n_items - 1)
        return self.item_of_rank[rank]


def _user_chunks(counts: np.ndarray, chunk_rows: int):
    """Yield ``(first_user, end_user)`` ranges of whole users of about ``chunk_rows`` rows."""
    ends = np.cumsum(counts)
    first = 0
    while first < len(counts):
        done = ends[first - 1] if first else 0
        end = max(int(np.searchsorted(ends, done + chunk_rows, side="right")), first + 1)
        yield first, end
        first = end


def _uniform(seed: int, stream: int, rows: np.ndarray) -> np.ndarray:
    """Uniform numbers in [0, 1), one per row number: SplitMix64 of (seed, stream, row).

    A counter-based generator: a row's number depends on nothing but its row number, so
    the data do not depend on how the rows are cut into chunks.
    """
    salt = _splitmix64(np.array([seed * 1_000_003 + stream], dtype=np.uint64))[0]
    bits = _splitmix64(rows.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + salt)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _repeats(user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """Positions of rows whose (user, item) pair occurred at an earlier position."""
    key = user.astype(np.int64) * (int(item.max()) + 1) + item
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    return np.sort(order[1:][ordered[1:] == ordered[:-1]])


def _csv_bytes(users: np.ndarray, items: np.ndarray, half_stars: np.ndarray,
               stamps: np.ndarray) -> bytes:
    """CSV lines ``user,item,stars,timestamp`` (stars as ``4.0``/``3.5``) as bytes.

    Every line is first written into one row of a byte matrix wide enough for the longest
    line, right-aligning the numbers; the unused cells hold 0 and are dropped at the end.
    """
    fields = [_digits(users), b",", _digits(items), b",",
              np.stack([48 + half_stars // 2, np.full_like(half_stars, 46),
                        48 + 5 * (half_stars % 2)], axis=1).astype(np.uint8), b",",
              _digits(stamps), b"\n"]
    widths = [len(f) if isinstance(f, bytes) else f.shape[1] for f in fields]
    lines = np.empty((len(users), sum(widths)), dtype=np.uint8)
    column = 0
    for field, width in zip(fields, widths, strict=True):
        lines[:, column:column + width] = (np.frombuffer(field, np.uint8)
                                           if isinstance(field, bytes) else field)
        column += width
    flat = lines.ravel()
    return flat[flat != 0].tobytes()


def _digits(values: np.ndarray) -> np.ndarray:
    """ASCII digits of non-negative integers, right-aligned, leading cells 0 (dropped)."""
    width = len(str(int(values.max()))) if len(values) else 1
    out = np.zeros((len(values), width), dtype=np.uint8)
    kind = np.uint32 if width < 10 or int(values.max()) < 2**32 else np.uint64  # faster
    rest, ten = values.astype(kind), kind(10)
    for column in range(width - 1, -1, -1):
        out[:, column] = rest % ten + kind(48)
        rest //= ten
    n_digits = np.ones(len(values), dtype=np.int64)
    for power in range(1, width):
        n_digits += values >= 10**power
    out[np.arange(width) < (width - n_digits)[:, None]] = 0
    return out


@contextlib.contextmanager
def _atomic_output(path: Path):
    """Open ``path`` for writing under a temporary name; rename it into place on success."""
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder. Pass the path of a "
                                "file, e.g. <folder>/ratings.csv.")
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(partial, "wb")  # noqa: SIM115 - closed below
    except OSError as err:
        raise type(err)(f"cannot write {path}: {err.strerror or err}. Choose a folder you "
                        "can write to (e.g. tempfile.gettempdir()).") from err
    try:
        with fh:
            yield fh
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


# ------------------------------------------------------------------------------- reading
def check_ratings_csv(path: str | Path) -> Path:
    """Check that ``path`` is a file whose header is ``userId,movieId,rating,timestamp``.

    Args:
        path: a ratings CSV (ml-25m's ``ratings.csv`` or a synthetic one).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        FileNotFoundError: no such file (or it is a folder).
        DatasetError: the file is empty or its header differs (the message lists the
            columns found).

    Explained in notebook 13.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found{' (it is a folder)' if path.is_dir() else ''}. Write one with "
            "write_synthetic_ratings(path), or download ml-25m with "
            "recsys_lib.data.fetch_movielens('ml-25m') and pass <folder>/ratings.csv.")
    with open(path, "rb") as fh:
        first_line = fh.readline(4096)
    found = first_line.decode("utf-8-sig", errors="replace").strip().split(",")
    if found != list(CSV_COLUMNS):
        what = "is empty" if not first_line else f"has the columns {found} in its first line"
        raise DatasetError(
            f"{path} {what}; a ratings CSV must start with the header "
            f"{','.join(CSV_COLUMNS)} (ml-25m's ratings.csv). Is it the right file?")
    return path


def count_rows(path: str | Path) -> int:
    """Count the data rows of a ratings CSV (its lines, less the header), reading bytes.

    Args:
        path: a ratings CSV.

    Returns:
        The number of rows after the header.

    Raises:
        FileNotFoundError, DatasetError: see :func:`check_ratings_csv`.

    Explained in notebook 13.
    """
    path = check_ratings_csv(path)
    lines, last, block = 0, b"\n", bytearray(_READ_BLOCK)  # one buffer, reused
    with open(path, "rb", buffering=0) as fh:
        while size := fh.readinto(block):
            lines += block.count(b"\n", 0, size)
            last = block[size - 1:size]
    return lines - (last == b"\n")  # the header's line; a last line may lack its newline


def read_ratings_naive(path: str | Path) -> pd.DataFrame:
    """Read a ratings CSV the plain way, ``pd.read_csv(path)``: the baseline.

    pandas picks int64 for the ids and timestamps and float64 for the ratings (32 bytes a
    row) and keeps the CSV's column names (``userId, movieId, rating, timestamp``).

    Args:
        path: a ratings CSV.

    Returns:
        The table as pandas reads it.

    Raises:
        FileNotFoundError, DatasetError: see :func:`check_ratings_csv`.

    Explained in notebook 13.
    """
    return pd.read_csv(check_ratings_csv(path))


def read_ratings_chunked(path: str | Path, chunk_rows: int = 1_000_000,
                         dtypes: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Read a ratings CSV chunk by chunk into compact columns with the course's names.

    The rows are counted first (a fast pass over the bytes), so each column is allocated
    once at its final size and filled chunk by chunk: memory holds the result plus one
    chunk, never a list of chunks and their concatenation (twice the result).

    Args:
        path: a ratings CSV with the header ``userId,movieId,rating,timestamp``.
        chunk_rows: rows parsed at a time, at least 1.
        dtypes: ``{column: dtype}`` for ``user_id, item_id, rating, timestamp`` (integer
            dtypes, and a float dtype for ``rating``). Default :data:`COMPACT_DTYPES`
            (16 bytes a row; its comment says why); :data:`WIDE_DTYPES` is pandas' choice.

    Returns:
        A DataFrame with columns ``user_id, item_id, rating, timestamp`` in file order.

    Raises:
        FileNotFoundError, DatasetError: see :func:`check_ratings_csv`; DatasetError too
            for a value that is not a number or does not fit its dtype.
        ArgumentError: bad ``chunk_rows`` or ``dtypes``.

    Explained in notebook 13.
    """
    chunk_rows = check_int("chunk_rows", chunk_rows)
    dtypes = check_dtypes(dtypes)
    rows = count_rows(path)
    columns = {name: np.empty(rows, dtype=dtype) for name, dtype in dtypes.items()}
    filled = _fill_columns(Path(path).expanduser(), columns, chunk_rows)
    if filled < rows:  # blank lines, which pandas skips
        columns = {name: values[:filled].copy() for name, values in columns.items()}
    return pd.DataFrame(columns, copy=False)


def check_dtypes(dtypes: Mapping[str, Any] | None) -> dict[str, np.dtype]:
    """Check a ``{column: dtype}`` mapping for the readers; None gives COMPACT_DTYPES.

    Returns:
        ``{column: np.dtype}`` in the course's column order.

    Raises:
        ArgumentError: a column is missing or unknown, or a dtype does not suit its column
            (ids and timestamps need integers, ratings a float).

    Explained in notebook 13.
    """
    if dtypes is None:
        return dict(COMPACT_DTYPES)
    if not isinstance(dtypes, Mapping) or set(dtypes) != set(RATING_COLUMNS):
        raise ArgumentError(f"dtypes must map each of {RATING_COLUMNS} to a dtype, e.g. "
                            f"COMPACT_DTYPES; got {dtypes!r}")
    checked = {}
    for name in RATING_COLUMNS:
        try:
            dtype = np.dtype(dtypes[name])
        except TypeError as err:
            raise ArgumentError(f"dtypes[{name!r}] is not a dtype: {err}") from err
        kind = "f" if name == "rating" else "iu"
        if dtype.kind not in kind:
            need = "a float dtype" if name == "rating" else "an integer dtype"
            raise ArgumentError(f"dtypes[{name!r}] must be {need}, got {dtype}")
        checked[name] = dtype
    return checked


def _fill_columns(path: Path, columns: dict[str, np.ndarray], chunk_rows: int) -> int:
    """Parse ``path`` chunk by chunk into the preallocated ``columns``; return rows read."""
    # Integers are parsed as int64 and range-checked before they go into a narrower column:
    # some pandas versions (2.2 among them) wrap a value that does not fit the requested dtype.
    csv_dtypes = {csv: np.dtype("int64") if columns[course].dtype.kind in "iu"
                  else columns[course].dtype for csv, course in COURSE_NAMES.items()}
    capacity = len(columns["user_id"])
    filled = 0
    shown = {csv: str(dtype) for csv, dtype in csv_dtypes.items()}
    try:
        with pd.read_csv(path, dtype=csv_dtypes, chunksize=chunk_rows, engine="c") as reader:
            for chunk in reader:
                end = filled + len(chunk)
                if end > capacity:
                    raise DatasetError(f"{path} has more rows than its lines: it changed "
                                       "while being read. Read it again.")
                for csv, course in COURSE_NAMES.items():
                    columns[course][filled:end] = _fitting(chunk[csv].to_numpy(),
                                                           columns[course].dtype, csv)
                filled = end
    except (ValueError, OverflowError) as err:
        raise DatasetError(
            f"could not read rows {filled + 1}-{filled + chunk_rows} of {path} as "
            f"{shown}: {err}. A value is not a number "
            "or does not fit its dtype; read with dtypes=WIDE_DTYPES to check.") from err
    return filled


def _fitting(values: np.ndarray, dtype: np.dtype, column: str) -> np.ndarray:
    """``values`` if they all fit ``dtype`` (an integer type); raises ValueError otherwise."""
    if dtype.kind in "iu" and len(values):
        info = np.iinfo(dtype)
        low, high = values.min(), values.max()
        if low < info.min or high > info.max:
            raise ValueError(f"column {column} holds {low}..{high}, outside {dtype}'s range "
                             f"{info.min}..{info.max}")
    return values


# -------------------------------------------------------------------------- column cache
def build_columnar_cache(csv_path: str | Path, cache_dir: str | Path,
                         chunk_rows: int = 1_000_000,
                         dtypes: Mapping[str, Any] | None = None) -> Path:
    """Convert a ratings CSV once into one ``.npy`` file per column and a ``manifest.json``.

    Each column file is written through a memory map, chunk by chunk, so memory holds one
    parsed chunk (the output goes to the file, not to RAM). ``manifest.json`` records the
    number of rows, the dtypes and the source CSV (path, size, modification time and a
    SHA-256 of its first and last MiB) so that :func:`load_columnar_cache` can tell when the
    CSV has changed. The cache is built in a temporary folder next to ``cache_dir`` and
    renamed into place at the end, so an interrupted build leaves no half-written cache.

    Args:
        csv_path: a ratings CSV with the header ``userId,movieId,rating,timestamp``.
        cache_dir: the cache folder: new, empty, or an earlier cache (it is replaced).
        chunk_rows: rows parsed at a time, at least 1.
        dtypes: column dtypes, default :data:`COMPACT_DTYPES` (see :func:`check_dtypes`).

    Returns:
        ``cache_dir`` as a ``Path``.

    Raises:
        FileNotFoundError, DatasetError: see :func:`read_ratings_chunked`; DatasetError too
            when the CSV changes during the build.
        CacheError: ``cache_dir`` holds other files than a cache's (nothing is deleted).
        OSError: ``cache_dir`` cannot be written.

    Explained in notebook 13.
    """
    chunk_rows = check_int("chunk_rows", chunk_rows)
    dtypes = check_dtypes(dtypes)
    csv_path = check_ratings_csv(csv_path).resolve()
    cache_dir = Path(cache_dir).expanduser()
    _check_replaceable(cache_dir)
    source = _source_facts(csv_path)
    rows = count_rows(csv_path)
    try:
        cache_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = cache_dir.with_name(f".{cache_dir.name}.{uuid.uuid4().hex[:8]}.building")
        staging.mkdir()
    except OSError as err:
        raise type(err)(f"cannot create the cache {cache_dir}: {err.strerror or err}. Choose "
                        "a folder you can write to.") from err
    try:
        filled = _fill_column_files(csv_path, staging, dtypes, rows, chunk_rows)
        if filled != rows or _source_facts(csv_path)["fingerprint"] != source["fingerprint"]:
            raise DatasetError(f"{csv_path} changed while the cache was built (or has blank "
                               "lines); build again once nothing writes to it.")
        manifest = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "rows": rows,
                    "columns": {name: {"file": f"{name}.npy", "dtype": str(dtype)}
                                for name, dtype in dtypes.items()},
                    "source": source, "chunk_rows": chunk_rows}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _move_into_place(staging, cache_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache_dir


def _fill_column_files(csv_path: Path, folder: Path, dtypes: dict[str, np.dtype], rows: int,
                       chunk_rows: int) -> int:
    """Write one ``.npy`` file per column through memory maps; return the rows read."""
    columns = {name: np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+",
                                               dtype=dtype, shape=(rows,))
               for name, dtype in dtypes.items()}
    filled = _fill_columns(csv_path, columns, chunk_rows)
    for values in columns.values():
        values.flush()
    return filled  # the memory maps close when ``columns`` goes


def load_columnar_cache(cache_dir: str | Path, mmap: bool = True,
                        csv_path: str | Path | None = None) -> pd.DataFrame:
    """Load a cache made by :func:`build_columnar_cache` as a ratings DataFrame.

    With ``mmap=True`` the columns are memory-mapped read-only: loading takes milliseconds
    and allocates almost nothing; the operating system reads pages from disk when they are
    first used and can drop them again under memory pressure. The columns cannot be changed
    in place (pandas copies a column you assign to).

    Args:
        cache_dir: the cache folder.
        mmap: memory-map the columns (True) or read them into memory (False).
        csv_path: the CSV the cache should match. Default: the one recorded in the
            manifest; when that file no longer exists, the cache is loaded unchecked.

    Returns:
        A DataFrame with columns ``user_id, item_id, rating, timestamp``.

    Raises:
        CacheError: no cache there, a missing, truncated or corrupt file (the message says
            which and how to rebuild).
        StaleCacheError: the CSV has changed since the cache was built.
        FileNotFoundError: ``csv_path`` was given and does not exist.

    Explained in notebook 13.
    """
    cache_dir = Path(cache_dir).expanduser()
    manifest = _read_manifest(cache_dir)
    source = Path(csv_path).expanduser() if csv_path is not None else Path(
        manifest["source"]["path"])
    rebuild = f"Rebuild it with build_columnar_cache({str(source)!r}, {str(cache_dir)!r})."
    if csv_path is not None and not source.is_file():
        raise FileNotFoundError(f"{source} not found: the CSV to check the cache against.")
    if source.is_file():
        _check_fresh(manifest["source"], source, cache_dir, rebuild)
    columns = {}
    for name in RATING_COLUMNS:
        columns[name] = _load_column(cache_dir, manifest, name, mmap, rebuild)
    return pd.DataFrame(columns, copy=False)


def cached_ratings(csv_path: str | Path, cache_dir: str | Path, chunk_rows: int = 1_000_000,
                   mmap: bool = True) -> pd.DataFrame:
    """Load the columnar cache of ``csv_path``, building it first if missing or stale.

    A corrupt or incomplete cache is rebuilt too. A cache folder that holds other files is
    never touched (CacheError).

    Args, Returns and Raises: see :func:`build_columnar_cache` and
    :func:`load_columnar_cache`.

    Explained in notebook 13.
    """
    try:
        return load_columnar_cache(cache_dir, mmap=mmap, csv_path=csv_path)
    except CacheError:
        build_columnar_cache(csv_path, cache_dir, chunk_rows=chunk_rows)
    return load_columnar_cache(cache_dir, mmap=mmap, csv_path=csv_path)


def _source_facts(csv_path: Path) -> dict[str, Any]:
    """Path, size, mtime and a SHA-256 of the first and last MiB (plus the size)."""
    stat = csv_path.stat()
    digest = hashlib.sha256(str(stat.st_size).encode())
    piece = bytearray(1 << 16)  # read in small pieces: loading a cache allocates ~nothing
    with open(csv_path, "rb", buffering=0) as fh:
        for start in (0, max(0, stat.st_size - FINGERPRINT_BYTES)):
            fh.seek(start)
            left = FINGERPRINT_BYTES
            while left and (size := fh.readinto(memoryview(piece)[:min(left, len(piece))])):
                digest.update(memoryview(piece)[:size])
                left -= size
    return {"path": str(csv_path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "fingerprint": digest.hexdigest()}


def _check_fresh(recorded: dict[str, Any], source: Path, cache_dir: Path,
                 rebuild: str) -> None:
    """Raise StaleCacheError when ``source`` differs from what the manifest recorded.

    Size and fingerprint decide; the modification time alone does not (a copy or ``touch``
    changes it, not the data). A change in the middle of the file that keeps its size is
    not detected: hashing all of ml-25m's 680 MB on every load would take seconds.
    """
    now = _source_facts(source)
    if now["size"] != recorded["size"] or now["fingerprint"] != recorded["fingerprint"]:
        raise StaleCacheError(
            f"the cache {cache_dir} is stale: it was built from {recorded['path']} "
            f"({recorded['size']:,} bytes, fingerprint {recorded['fingerprint'][:12]}...), "
            f"but {source} now has {now['size']:,} bytes, fingerprint "
            f"{now['fingerprint'][:12]}.... {rebuild}")


def _read_manifest(cache_dir: Path) -> dict[str, Any]:
    how = "build it with build_columnar_cache(csv_path, cache_dir)"
    if not cache_dir.is_dir():
        raise CacheError(f"no columnar cache at {cache_dir} (no such folder): {how}.")
    path = cache_dir / MANIFEST
    if not path.is_file():
        raise CacheError(f"{cache_dir} has no {MANIFEST}: it is not a columnar cache, or its "
                         f"build was interrupted; {how}.")
    try:
        manifest = json.loads(path.read_text())
        source = manifest["source"]
        ok = (manifest["format"] == CACHE_FORMAT and manifest["version"] == CACHE_VERSION
              and isinstance(manifest["rows"], int) and manifest["rows"] >= 0
              and all(isinstance(source[key], str) for key in ("path", "fingerprint"))
              and isinstance(source["size"], int)
              and all(name in manifest["columns"] for name in RATING_COLUMNS))
    except (ValueError, KeyError, TypeError) as err:
        raise CacheError(f"{path} is corrupt ({err!r}); delete {cache_dir} and {how}.") from err
    if not ok:
        raise CacheError(f"{path} is not a version-{CACHE_VERSION} columnar cache manifest; "
                         f"delete {cache_dir} and {how}.")
    return manifest


def _load_column(cache_dir: Path, manifest: dict[str, Any], name: str, mmap: bool,
                 rebuild: str) -> np.ndarray:
    spec = manifest["columns"][name]
    path = cache_dir / spec["file"]
    if not path.is_file():
        raise CacheError(f"the column file {path} is missing: the cache is incomplete. "
                         f"{rebuild}")
    try:
        values = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        values = values.view(np.ndarray)  # a plain array (still backed by the map if mmap)
    except (ValueError, OSError, EOFError) as err:
        raise CacheError(f"the column file {path} is corrupt or truncated ({err}). "
                         f"{rebuild}") from err
    if values.shape != (manifest["rows"],) or str(values.dtype) != spec["dtype"]:
        raise CacheError(f"the column file {path} holds {values.shape} {values.dtype}, the "
                         f"manifest says ({manifest['rows']},) {spec['dtype']}. {rebuild}")
    return values


def _check_replaceable(cache_dir: Path) -> None:
    """Refuse to replace a folder that holds anything but an earlier cache's files."""
    if not cache_dir.exists():
        return
    if not cache_dir.is_dir():
        raise CacheError(f"{cache_dir} is a file, not a folder; pass a folder for the cache.")
    ours = {MANIFEST, *(f"{name}.npy" for name in RATING_COLUMNS)}
    others = sorted(p.name for p in cache_dir.iterdir() if p.name not in ours)
    if others:
        raise CacheError(f"{cache_dir} holds other files than a columnar cache's "
                         f"({', '.join(others[:5])}); nothing was changed. Pass a new or "
                         "empty folder as cache_dir.")


def _move_into_place(staging: Path, cache_dir: Path) -> None:
    """Rename ``staging`` to ``cache_dir``, moving an earlier cache aside and deleting it."""
    old = None
    if cache_dir.exists():
        old = cache_dir.with_name(f".{cache_dir.name}.{uuid.uuid4().hex[:8]}.old")
        os.rename(cache_dir, old)
    os.rename(staging, cache_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- measuring
def measure(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Measurement:
    """Call ``fn(*args, **kwargs)``; return its result, wall-clock seconds and peak memory.

    The peak is the most memory that was allocated at once during the call, above what was
    allocated before it, as :mod:`tracemalloc` traces it: Python objects and the data of
    NumPy arrays (so pandas columns too).

    It does not count: pages of memory-mapped files (they are the operating system's page
    cache, not allocations: a memory-mapped load shows a peak near 0 however much it later
    reads); memory that C code takes without telling Python (for example the buffers of
    pandas' CSV tokenizer, or of BLAS); memory allocated before the call (the inputs);
    memory freed before the peak. Other threads' allocations during the call are counted.
    Tracing slows down code that allocates many small Python objects. For the process's
    high-water mark as the operating system sees it, compare :func:`peak_rss_bytes` before
    and after (it only grows when the call goes above every earlier peak of the process).

    Args:
        fn: the function to call; ``args`` and ``kwargs`` are passed to it.

    Returns:
        ``Measurement(result, seconds, peak_bytes)``, a tuple.

    Explained in notebook 13.
    """
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    started = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
    finally:
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        if not tracing:
            tracemalloc.stop()
    return Measurement(result, seconds, max(0, peak - before))


def peak_rss_bytes() -> int | None:
    """The process's peak resident memory so far (``ru_maxrss``) in bytes; None on Windows.

    Explained in notebook 13.
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes; Linux: KiB


def memory_budget_report(frame: pd.DataFrame) -> pd.DataFrame:
    """Bytes per column of ``frame`` and in all, from ``frame.memory_usage(deep=True)``.

    For memory-mapped columns the numbers are the size of the data, not what is in RAM.

    Args:
        frame: any DataFrame.

    Returns:
        One row per column (and ``Index``) plus a ``total`` row, with the columns ``dtype``,
        ``bytes``, ``bytes_per_row``, ``MiB`` and ``share`` (of the total).

    Explained in notebook 13.
    """
    usage = frame.memory_usage(deep=True, index=True)
    names = [str(name) for name in usage.index] + ["total"]
    dtypes = ["" if name == "Index" else str(frame[name].dtype) for name in usage.index]
    sizes = np.append(usage.to_numpy(dtype=np.int64), usage.sum())
    total = max(int(sizes[-1]), 1)
    return pd.DataFrame({"dtype": [*dtypes, ""], "bytes": sizes,
                         "bytes_per_row": sizes / max(len(frame), 1), "MiB": sizes / 2**20,
                         "share": sizes / total}, index=pd.Index(names, name="column"))
