"""Tests for ``recsys_lib.bigdata``: the synthetic ratings CSV, compact reading, the columnar
cache and the measuring helpers. Small tables (50,000 rows) in pytest's tmp_path."""

from __future__ import annotations

import json
import mmap
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from recsys_lib import bigdata
from recsys_lib.bigdata import (
    COMPACT_DTYPES,
    CSV_COLUMNS,
    WIDE_DTYPES,
    CacheError,
    StaleCacheError,
    build_columnar_cache,
    cached_ratings,
    count_rows,
    load_columnar_cache,
    measure,
    memory_budget_report,
    read_ratings_chunked,
    read_ratings_naive,
    write_synthetic_ratings,
)
from recsys_lib.checks import ArgumentError
from recsys_lib.data import RATING_COLUMNS, DatasetError

ROWS, USERS, ITEMS = 50_000, 400, 3_000
SIZES = {"n_rows": ROWS, "n_users": USERS, "n_items": ITEMS}
HALF_STARS = {x / 2 for x in range(1, 11)}


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    """A 50,000-row synthetic ratings CSV, shared by the tests that only read it."""
    return write_synthetic_ratings(tmp_path_factory.mktemp("bigdata") / "ratings.csv",
                                   seed=7, chunk_rows=8_000, **SIZES)


@pytest.fixture(scope="module")
def naive(csv):
    return read_ratings_naive(csv.path)


def _as_course_frame(naive: pd.DataFrame, dtypes) -> pd.DataFrame:
    """The naive frame renamed to the course's columns and cast to ``dtypes``."""
    renamed = naive.rename(columns=dict(zip(CSV_COLUMNS, RATING_COLUMNS, strict=True)))
    return renamed.astype({name: dtypes[name] for name in RATING_COLUMNS})


def _is_memory_mapped(values: np.ndarray) -> bool:
    while values is not None:
        if isinstance(values, np.memmap | mmap.mmap):
            return True
        values = getattr(values, "base", None)
    return False


# ------------------------------------------------------------------------ synthetic data
def test_synthetic_csv_has_ml25m_header_rows_and_ranges(csv, naive):
    with open(csv.path, "rb") as fh:
        assert fh.readline() == b"userId,movieId,rating,timestamp\n"
    assert count_rows(csv.path) == csv.rows == len(naive) == ROWS
    assert csv.size_bytes == csv.path.stat().st_size
    assert list(naive.columns) == list(CSV_COLUMNS)
    assert [str(t) for t in naive.dtypes] == ["int64", "int64", "float64", "int64"]
    assert naive["userId"].between(1, USERS).all() and naive["movieId"].between(1, ITEMS).all()
    assert csv.users == naive["userId"].nunique() and csv.items == naive["movieId"].nunique()
    assert set(naive["rating"].unique()) <= HALF_STARS
    assert naive["rating"].nunique() == 10
    assert naive["timestamp"].between(bigdata.FIRST_TIMESTAMP, bigdata.LAST_TIMESTAMP).all()
    early = naive[naive["timestamp"] < bigdata.HALF_STARS_SINCE]
    assert len(early) > 0 and (early["rating"] % 1 == 0).all()  # whole stars before 2003


def test_synthetic_csv_is_a_log_with_long_tails(naive):
    assert naive["userId"].is_monotonic_increasing  # grouped by user, ids 1..n_users
    assert (naive.groupby("userId")["timestamp"].diff().dropna() >= 0).all()  # time order
    assert not naive.duplicated(["userId", "movieId"]).any()  # a movie once per user
    per_user = naive.groupby("userId").size()
    per_item = naive.groupby("movieId").size()
    assert per_user.min() >= 20 and per_user.max() > 5 * per_user.median()
    assert per_item.max() > 20 * per_item.median()
    assert per_item.nlargest(ITEMS // 100).sum() > 0.1 * ROWS  # top 1 % of movies


def test_synthetic_csv_is_reproducible_whatever_the_chunk_size(tmp_path, csv):
    again = write_synthetic_ratings(tmp_path / "again.csv", seed=7, chunk_rows=997, **SIZES)
    other = write_synthetic_ratings(tmp_path / "other.csv", seed=8, chunk_rows=8_000, **SIZES)
    assert again.path.read_bytes() == csv.path.read_bytes()
    assert other.path.read_bytes() != csv.path.read_bytes()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    def fail(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(bigdata, "_csv_bytes", fail)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic_ratings(tmp_path / "ratings.csv", n_rows=100, n_users=5, n_items=50)
    assert list(tmp_path.iterdir()) == []


def test_more_ratings_than_users_can_give_and_tiny_tables(tmp_path):
    tiny = write_synthetic_ratings(tmp_path / "tiny.csv", n_rows=1, n_users=1, n_items=1)
    assert tiny.path.read_text() == "userId,movieId,rating,timestamp\n" + \
        tiny.path.read_text().splitlines()[1] + "\n"
    few = write_synthetic_ratings(tmp_path / "few.csv", n_rows=30, n_users=100, n_items=4)
    frame = read_ratings_naive(few.path)
    assert len(frame) == 30 and frame["movieId"].between(1, 4).all() and few.users <= 30


# ------------------------------------------------------------------------------- reading
def test_chunked_read_equals_the_naive_read_in_less_memory(csv, naive):
    compact = read_ratings_chunked(csv.path, chunk_rows=7_000)
    assert list(compact.columns) == RATING_COLUMNS
    assert {c: compact[c].dtype for c in RATING_COLUMNS} == COMPACT_DTYPES
    pd.testing.assert_frame_equal(compact, _as_course_frame(naive, COMPACT_DTYPES))
    wide = read_ratings_chunked(csv.path, chunk_rows=ROWS * 2, dtypes=WIDE_DTYPES)
    pd.testing.assert_frame_equal(wide, _as_course_frame(naive, WIDE_DTYPES))
    assert (compact.memory_usage(deep=True).sum()
            < 0.6 * naive.memory_usage(deep=True).sum())
    _, _, naive_peak = measure(read_ratings_naive, csv.path)
    _, _, chunked_peak = measure(read_ratings_chunked, csv.path, chunk_rows=5_000)
    assert chunked_peak < naive_peak


def test_header_only_csv_reads_as_an_empty_table(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("userId,movieId,rating,timestamp\n")
    frame = read_ratings_chunked(path)
    assert frame.empty and list(frame.columns) == RATING_COLUMNS
    assert count_rows(path) == 0


def test_a_last_line_without_newline_is_counted(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,2,3.5,100\n4,5,1.0,200")
    assert count_rows(path) == 2
    assert read_ratings_chunked(path)["timestamp"].tolist() == [100, 200]


def test_a_value_that_does_not_fit_its_dtype_raises(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,3000000000,3.5,100\n")
    with pytest.raises(DatasetError, match="WIDE_DTYPES"):
        read_ratings_chunked(path)
    assert read_ratings_chunked(path, dtypes=WIDE_DTYPES)["item_id"].iloc[0] == 3_000_000_000


# -------------------------------------------------------------------------- column cache
def test_columnar_cache_round_trips_memory_mapped(tmp_path, csv):
    cache = build_columnar_cache(csv.path, tmp_path / "cache", chunk_rows=6_000)
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        ["manifest.json", *(f"{name}.npy" for name in RATING_COLUMNS)])
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["rows"] == ROWS and manifest["source"]["size"] == csv.size_bytes
    assert {k: v["dtype"] for k, v in manifest["columns"].items()} == {
        k: str(v) for k, v in COMPACT_DTYPES.items()}
    expected = read_ratings_chunked(csv.path)
    loaded, _, peak = measure(load_columnar_cache, cache)
    pd.testing.assert_frame_equal(loaded, expected)
    assert all(_is_memory_mapped(loaded[name].to_numpy()) for name in RATING_COLUMNS)
    assert peak < 0.1 * expected.memory_usage(deep=True).sum()
    in_memory = load_columnar_cache(cache, mmap=False)
    pd.testing.assert_frame_equal(in_memory, expected)
    assert not _is_memory_mapped(in_memory["user_id"].to_numpy())


def test_stale_cache_is_detected_and_rebuilt(tmp_path):
    path = tmp_path / "ratings.csv"
    write_synthetic_ratings(path, seed=1, **SIZES)
    cache = build_columnar_cache(path, tmp_path / "cache")
    write_synthetic_ratings(path, seed=2, **SIZES)  # the CSV changes
    with pytest.raises(StaleCacheError, match=r"stale.*Rebuild it with build_columnar_cache"):
        load_columnar_cache(cache)
    with pytest.raises(StaleCacheError):
        load_columnar_cache(cache, csv_path=path)
    rebuilt = cached_ratings(path, cache)
    pd.testing.assert_frame_equal(rebuilt, read_ratings_chunked(path))
    pd.testing.assert_frame_equal(load_columnar_cache(cache), rebuilt)


def test_missing_truncated_or_absent_cache_files_say_what_to_do(tmp_path, csv):
    with pytest.raises(CacheError, match="no columnar cache.*build_columnar_cache"):
        load_columnar_cache(tmp_path / "nowhere")
    cache = build_columnar_cache(csv.path, tmp_path / "cache")
    (cache / "rating.npy").unlink()
    with pytest.raises(CacheError, match=r"rating\.npy is missing.*Rebuild"):
        load_columnar_cache(cache)
    build_columnar_cache(csv.path, cache)  # replaces the incomplete cache
    data = (cache / "timestamp.npy").read_bytes()
    (cache / "timestamp.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(CacheError, match=r"timestamp\.npy is corrupt or truncated"):
        load_columnar_cache(cache)
    (cache / "manifest.json").write_text("{not json")
    with pytest.raises(CacheError, match="manifest.json is corrupt"):
        load_columnar_cache(cache)
    (cache / "manifest.json").unlink()
    with pytest.raises(CacheError, match="has no manifest.json"):
        load_columnar_cache(cache)
    pd.testing.assert_frame_equal(cached_ratings(csv.path, cache), read_ratings_chunked(csv.path))


def test_cache_never_replaces_a_folder_with_other_files(tmp_path, csv):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(CacheError, match=r"other files.*notes\.txt"):
        build_columnar_cache(csv.path, folder)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no staging folder left


# ----------------------------------------------------------------------------- measuring
def test_measure_reports_result_time_and_peak():
    result, seconds, peak = measure(np.ones, 1_000_000, dtype=np.float64)
    assert result.shape == (1_000_000,) and seconds >= 0
    assert 8_000_000 <= peak < 9_000_000
    assert not tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        assert measure(lambda: bytearray(2_000_000)).peak_bytes >= 2_000_000
        assert tracemalloc.is_tracing()  # left as it was
    finally:
        tracemalloc.stop()


def test_memory_budget_report(csv):
    compact = read_ratings_chunked(csv.path)
    report = memory_budget_report(compact)
    assert list(report.index) == ["Index", *RATING_COLUMNS, "total"]
    assert report.loc["total", "bytes"] == compact.memory_usage(deep=True).sum()
    assert report.loc[RATING_COLUMNS, "bytes_per_row"].tolist() == [4.0, 4.0, 4.0, 4.0]
    assert report.loc["rating", "dtype"] == "float32"
    assert report["share"].iloc[:-1].sum() == pytest.approx(1.0)
    assert bigdata.peak_rss_bytes() is None or bigdata.peak_rss_bytes() > 1_000_000


# ---------------------------------------------------------------------------- bad inputs
def test_missing_file_and_wrong_header_say_what_is_wrong(tmp_path):
    for read in (read_ratings_naive, read_ratings_chunked, count_rows):
        with pytest.raises(FileNotFoundError, match="nope.csv not found"):
            read(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="not found"):
        build_columnar_cache(tmp_path / "nope.csv", tmp_path / "cache")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("user,item,rating,timestamp\n1,2,3.0,4\n")
    with pytest.raises(DatasetError, match=r"\['user', 'item', 'rating', 'timestamp'\]"):
        read_ratings_chunked(wrong)
    ml1m = tmp_path / "ratings.dat"
    ml1m.write_text("1::1193::5::978300760\n")
    with pytest.raises(DatasetError, match="userId,movieId,rating,timestamp"):
        read_ratings_naive(ml1m)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DatasetError, match="is empty"):
        build_columnar_cache(empty, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("bad", [{"n_rows": 0}, {"n_users": -1}, {"n_items": 0},
                                 {"chunk_rows": 0}, {"seed": -1}, {"n_rows": 2.5}])
def test_bad_sizes_are_refused(tmp_path, bad):
    name = next(iter(bad))
    with pytest.raises(ArgumentError, match=name):
        write_synthetic_ratings(tmp_path / "r.csv", **{**SIZES, **bad})
    assert not (tmp_path / "r.csv").exists()


def test_bad_reading_arguments_are_refused(tmp_path, csv):
    with pytest.raises(ArgumentError, match="chunk_rows"):
        read_ratings_chunked(csv.path, chunk_rows=0)
    with pytest.raises(ArgumentError, match="chunk_rows"):
        build_columnar_cache(csv.path, tmp_path / "cache", chunk_rows=0)
    with pytest.raises(ArgumentError, match="must map each of"):
        read_ratings_chunked(csv.path, dtypes={"user_id": "int32"})
    with pytest.raises(ArgumentError, match="rating.*float"):
        read_ratings_chunked(csv.path, dtypes={**COMPACT_DTYPES, "rating": "uint8"})


def test_a_path_that_cannot_be_written_says_so(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(OSError, match="cannot write .*a_file/ratings.csv.*Choose a folder"):
        write_synthetic_ratings(blocker / "ratings.csv", n_rows=10, n_users=2, n_items=5)
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        write_synthetic_ratings(tmp_path, n_rows=10, n_users=2, n_items=5)
