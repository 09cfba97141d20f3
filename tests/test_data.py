"""Tests for ``recsys_lib.data``: the bundled data, the real-file parsers and the downloader.

The real-file tests read ``../shared/datasets`` (the ``shared_datasets`` fixture) and never
write there. Download tests talk only to an HTTP server on 127.0.0.1 started by the test.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import types
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from recsys_lib import data
from recsys_lib.config import DATA_DIR_ENV_VAR
from recsys_lib.data import ChecksumError, DatasetError

REPO_ROOT = Path(__file__).resolve().parent.parent
HALF_STARS = {x / 2 for x in range(1, 11)}  # 0.5, 1.0, ..., 5.0
RATING_DTYPES = {"user_id": "int64", "item_id": "int64", "rating": "float64",
                 "timestamp": "int64"}


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _check_ratings_shape(ratings: pd.DataFrame) -> None:
    assert list(ratings.columns) == data.RATING_COLUMNS
    assert {col: str(dtype) for col, dtype in ratings.dtypes.items()} == RATING_DTYPES
    assert list(ratings.index) == list(range(len(ratings)))


def _check_items_shape(items: pd.DataFrame) -> None:
    assert list(items.columns) == data.ITEM_COLUMNS
    assert items["item_id"].dtype == "int64"
    assert str(items["year"].dtype) == "Int64"
    assert items["item_id"].is_unique


def _title_of(items: pd.DataFrame, item_id: int) -> str:
    return items.loc[items["item_id"] == item_id, "title"].item()


def _row_of(items: pd.DataFrame, item_id: int) -> pd.Series:
    rows = items[items["item_id"] == item_id]
    assert len(rows) == 1, f"item {item_id}: {len(rows)} rows"
    return rows.iloc[0]


# ============================================================================ bundled data
@pytest.fixture(scope="module")
def bundled() -> data.MovieLens:
    return data.load_movielens()


def test_bundled_counts(bundled):
    ratings, items = bundled
    assert len(ratings) == 100_004
    assert ratings["user_id"].nunique() == 671
    assert ratings["item_id"].nunique() == 9_066
    assert len(items) == 9_066


def test_bundled_columns_and_dtypes(bundled):
    ratings, items = bundled
    _check_ratings_shape(ratings)
    _check_items_shape(items)
    assert isinstance(bundled, data.MovieLens)
    assert data.load_movielens("bundled").ratings.equals(ratings)  # explicit name == default


def test_bundled_ratings_on_half_star_scale(bundled):
    ratings, _ = bundled
    assert set(ratings["rating"].unique()) <= HALF_STARS
    assert ratings["rating"].min() == 0.5
    assert ratings["rating"].max() == 5.0
    assert (ratings["timestamp"] > 0).all()
    assert not ratings.duplicated(["user_id", "item_id"]).any()


def test_bundled_rated_items_are_in_items_table(bundled):
    ratings, items = bundled
    assert ratings["item_id"].isin(items["item_id"]).all()


def test_bundled_title_year_and_genres(bundled):
    _, items = bundled
    toy_story = _row_of(items, 1)
    assert toy_story["title"] == "Toy Story (1995)"
    assert toy_story["year"] == 1995
    assert "Animation" in toy_story["genres"].split("|")
    assert items["year"].notna().sum() > 9_000
    assert items["year"].dropna().between(1900, 2016).all()


@pytest.fixture
def bundled_copy(tmp_path, monkeypatch) -> Path:
    """A private copy of the bundled folder that ``load_movielens('bundled')`` reads."""
    copy = tmp_path / "bundled"
    shutil.copytree(data.BUNDLED_DIR, copy)
    monkeypatch.setattr(data, "BUNDLED_DIR", copy)
    return copy


def test_bundled_copy_loads_when_unchanged(bundled_copy, bundled):
    # Control for the tests below: the copy itself is fine, so their errors come from the edit.
    ratings, items = data.load_movielens()
    assert ratings.equals(bundled.ratings)
    assert items.equals(bundled.items)


@pytest.mark.parametrize("filename", ["ratings.csv", "movies.csv"])
def test_bundled_altered_file_raises_checksum_error(bundled_copy, filename):
    path = bundled_copy / filename
    payload = bytearray(path.read_bytes())
    payload[-2] = ord("9") if payload[-2] != ord("9") else ord("8")  # one byte, same size
    path.write_bytes(bytes(payload))
    with pytest.raises(ChecksumError, match=filename):
        data.load_movielens()
    assert path.exists()  # bundled files are reported, never deleted


def test_bundled_missing_manifest_raises_dataset_error(bundled_copy):
    (bundled_copy / "SHA256SUMS").unlink()
    with pytest.raises(DatasetError, match="SHA256SUMS") as excinfo:
        data.load_movielens()
    assert not isinstance(excinfo.value, ChecksumError)


def test_bundled_missing_data_file_raises_dataset_error(bundled_copy):
    (bundled_copy / "movies.csv").unlink()
    with pytest.raises(DatasetError, match="movies.csv") as excinfo:
        data.load_movielens()
    assert not isinstance(excinfo.value, ChecksumError)


def test_bundled_crlf_files_get_advice_about_git(bundled_copy):
    # What Git for Windows does to a text file when core.autocrlf is true.
    path = bundled_copy / "movies.csv"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    with pytest.raises(ChecksumError, match="movies.csv") as excinfo:
        data.load_movielens()
    message = str(excinfo.value)
    assert "line endings" in message and "autocrlf" in message
    assert "git checkout -- datasets" in message
    assert "download" not in message  # bundled data is never downloaded
    assert path.exists()


def test_bundled_garbage_manifest_line_names_file_and_line(bundled_copy):
    manifest = bundled_copy / "SHA256SUMS"
    manifest.write_text(manifest.read_text() + "garbage\n")
    with pytest.raises(DatasetError, match=r"SHA256SUMS, line 3: .*'garbage'") as excinfo:
        data.load_movielens()
    assert type(excinfo.value) is DatasetError
    assert "git checkout -- datasets" in str(excinfo.value)


@pytest.mark.parametrize("name", ["ratings.csv", "movies.csv", "SHA256SUMS"])
def test_git_never_converts_bundled_line_endings(name):
    """.gitattributes must stop Git for Windows from rewriting the files with CRLF."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    path = (data.BUNDLED_DIR / name).relative_to(REPO_ROOT).as_posix()
    result = subprocess.run([git, "check-attr", "text", "--", path], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        pytest.skip(f"not a usable git checkout: {result.stderr.strip()}")
    assert result.stdout.strip() == f"{path}: text: unset"


# ============================================================================ ml-100k (real)
@pytest.fixture(scope="module")
def ml100k(shared_datasets) -> data.MovieLens:
    return data.load_movielens("ml-100k", data_dir=shared_datasets)


def test_ml100k_counts_and_shape(ml100k):
    ratings, items = ml100k
    _check_ratings_shape(ratings)
    _check_items_shape(items)
    assert len(ratings) == 100_000
    assert ratings["user_id"].nunique() == 943
    assert ratings["item_id"].nunique() == 1_682
    assert len(items) == 1_682
    assert set(ratings["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ratings["rating"].value_counts().to_dict() == {
        1.0: 6_110, 2.0: 11_370, 3.0: 27_145, 4.0: 34_174, 5.0: 21_201}
    assert ratings.iloc[0].tolist() == [196, 242, 3.0, 881250949]  # file order kept
    assert ratings["item_id"].isin(items["item_id"]).all()


def test_ml100k_genres_from_flags(ml100k):
    _, items = ml100k
    toy_story = _row_of(items, 1)
    assert toy_story["title"] == "Toy Story (1995)"
    assert toy_story["genres"] == "Animation|Children's|Comedy"
    assert toy_story["year"] == 1995
    assert _row_of(items, 2)["genres"] == "Action|Adventure|Thriller"  # GoldenEye
    # Item 267 has no title or date and only the "unknown" flag set.
    assert _row_of(items, 267)["genres"] == "unknown"
    assert pd.isna(_row_of(items, 267)["year"])


def test_ml100k_latin1_titles_decoded(ml100k):
    _, items = ml100k
    titles = items["title"].tolist()
    assert "Misérables, Les (1995)" in titles
    assert any("é" in t for t in titles if isinstance(t, str))
    assert not any("Ã" in t for t in titles if isinstance(t, str))  # no UTF-8 mojibake


def test_ml100k_users(shared_datasets):
    users = data.load_users("ml-100k", data_dir=shared_datasets)
    assert list(users.columns) == ["user_id", "gender", "age", "occupation", "zip_code"]
    assert len(users) == 943
    assert users["user_id"].tolist() == list(range(1, 944))
    assert set(users["gender"]) == {"M", "F"}
    assert users.iloc[0][["age", "occupation", "zip_code"]].tolist() == [24, "technician", "85711"]


@pytest.mark.parametrize(("name", "filename", "row"), [
    ("ml-100k", "u.user", b"1|24|M|technician|85711\n"),
    ("ml-1m", "users.dat", b"1::F::1::10::48067\n"),
])
def test_read_users_file_refuses_a_truncated_file(tmp_path, name, filename, row):
    (tmp_path / filename).write_bytes(row * 2)
    with pytest.raises(DatasetError, match=f"{filename} has 2 users but {name} has "):
        data.read_users_file(tmp_path, name)


def test_read_users_file_explains_a_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="u.user is missing") as excinfo:
        data.read_users_file(tmp_path, "ml-100k")
    assert "clear_cache('ml-100k')" in str(excinfo.value)


# ==================================================================== ml-latest-small (real)
@pytest.fixture(scope="module")
def latest_small(shared_datasets) -> data.MovieLens:
    return data.load_movielens("ml-latest-small", data_dir=shared_datasets)


def test_latest_small_counts_and_shape(latest_small):
    ratings, items = latest_small
    _check_ratings_shape(ratings)
    _check_items_shape(items)
    assert len(ratings) == 100_836
    assert ratings["user_id"].nunique() == 610
    assert ratings["item_id"].nunique() == 9_724
    assert len(items) == 9_742
    assert set(ratings["rating"].unique()) == HALF_STARS
    assert ratings["item_id"].isin(items["item_id"]).all()


def test_latest_small_years_and_titles(latest_small):
    _, items = latest_small
    assert _row_of(items, 1)["year"] == 1995
    assert _row_of(items, 1)["genres"] == "Adventure|Animation|Children|Comedy|Fantasy"
    # A year range (with an en dash in this file) gives its first year; UTF-8 is decoded.
    death_note = _row_of(items, 171749)
    assert death_note["title"] == "Death Note: Desu nôto (2006–2007)"
    assert death_note["year"] == 2006
    # Some titles end in a space after the year: stripped, and the year is still found.
    dusk = items[items["title"].str.startswith("From Dusk Till Dawn 2")].iloc[0]
    assert dusk["title"] == "From Dusk Till Dawn 2: Texas Blood Money (1999)"
    assert dusk["year"] == 1999
    # Titles without a year get <NA>, not a number taken from elsewhere in the title.
    babylon = items[items["title"] == "Babylon 5"].iloc[0]
    assert pd.isna(babylon["year"])
    assert items["year"].isna().sum() == 12
    assert not items["title"].str.endswith(" ").any()


# =============================================================================== ml-1m (real)
@pytest.fixture(scope="module")
def ml1m_folder(shared_datasets, tmp_path_factory) -> Path:
    """tmp/ml-1m with the real movies.dat and users.dat and the PARTIAL ratings as ratings.dat."""
    folder = tmp_path_factory.mktemp("ml1m-root") / "ml-1m"
    folder.mkdir()
    source = shared_datasets / "ml-1m"
    for name in ("movies.dat", "users.dat"):
        shutil.copyfile(source / name, folder / name)
    with gzip.open(source / "partial" / "ratings.PARTIAL_users1-2999.dat.gz", "rb") as src, \
            open(folder / "ratings.dat", "wb") as dst:
        shutil.copyfileobj(src, dst)
    return folder


def test_ml1m_partial_ratings_rejected_by_pinned_sha256(ml1m_folder):
    with pytest.raises(ChecksumError, match="ratings.dat"):
        data.load_movielens("ml-1m", data_dir=ml1m_folder.parent)
    assert (ml1m_folder / "ratings.dat").exists()  # a cached file is reported, not deleted


@pytest.fixture(scope="module")
def ml1m(ml1m_folder) -> data.MovieLens:
    return data._read_ml1m(ml1m_folder)


def test_ml1m_parser_reads_partial_file(ml1m):
    ratings, items = ml1m
    _check_ratings_shape(ratings)
    _check_items_shape(items)
    assert len(ratings) == 487_650
    assert ratings["user_id"].min() == 1
    assert ratings["user_id"].max() == 2_999
    assert ratings["user_id"].nunique() == 2_999
    assert ratings["item_id"].nunique() == 3_615
    assert ratings.iloc[0].tolist() == [1, 1193, 5.0, 978300760]
    assert ratings.iloc[-1].tolist() == [2999, 2046, 4.0, 970621145]
    assert set(ratings["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert len(items) == 3_883
    assert items["item_id"].max() == 3_952
    assert ratings["item_id"].isin(items["item_id"]).all()


def test_ml1m_movies_latin1_and_years(ml1m):
    _, items = ml1m
    miserables = _row_of(items, 73)
    assert miserables["title"] == "Misérables, Les (1995)"
    assert miserables["genres"] == "Drama|Musical"
    assert miserables["year"] == 1995
    assert _row_of(items, 1)["genres"] == "Animation|Children's|Comedy"
    assert items["year"].notna().all()
    assert sum("é" in t for t in items["title"]) > 10


def test_ml1m_users(ml1m_folder):
    users = data.read_users_file(ml1m_folder, "ml-1m")
    assert list(users.columns) == ["user_id", "gender", "age", "occupation", "zip_code"]
    assert len(users) == 6_040
    assert users["user_id"].tolist() == list(range(1, 6_041))
    assert set(users["age"]) == {1, 18, 25, 35, 45, 50, 56}
    assert users["occupation"].between(0, 20).all()
    assert users["zip_code"].iloc[0] == "48067"


# ======================================================================= download (local HTTP)
STALL_S = 10.0  # how long a stalling handler waits at most (the test releases it earlier)
TOGETHER_S = 30.0  # how long a "together" request waits for the other one at most


class _LocalServer:
    """State of the test HTTP server: files under ``root``, a per-path plan, a request log.

    ``plan[path]`` is a list of actions used one per request, then ``"ok"``:
    ``"ok"`` (serve the file), an int (answer with that HTTP status), ``"stall_headers"``
    (never answer), ``"stall_body"`` (send headers and part of the body, then stall),
    ``"truncate"`` (announce the full length, send half, close), ``"trickle"`` (send one
    byte every 0.1 s), ``"together"`` (wait until a second "together" request arrives, then
    send both bodies slowly, so that two clients download at the same time).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.plan: dict[str, list[str | int]] = {}
        self.requests: list[str] = []
        self.release = threading.Event()
        self.together = threading.Barrier(2, timeout=TOGETHER_S)
        self.base = ""

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def put(self, name: str, payload: bytes) -> str:
        (self.root / name).write_bytes(payload)
        return self.url(name)


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        state: _LocalServer = self.server.state
        name = self.path.lstrip("/")
        state.requests.append(self.path)
        steps = state.plan.get(name)
        action = steps.pop(0) if steps else "ok"
        if isinstance(action, int):
            self.send_error(action)
            return
        if action == "stall_headers":
            state.release.wait(STALL_S)
            return
        path = state.root / name
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if action == "stall_body":
            self.wfile.write(body[: len(body) // 4])
            self.wfile.flush()
            state.release.wait(STALL_S)
        elif action == "truncate":
            self.wfile.write(body[: len(body) // 2])
        elif action == "trickle":
            for i in range(len(body)):
                if state.release.wait(0.1):
                    break
                self.wfile.write(body[i:i + 1])
        elif action == "together":
            state.together.wait()
            for i in range(0, len(body), max(1, len(body) // 8)):
                time.sleep(0.05)
                self.wfile.write(body[i:i + max(1, len(body) // 8)])
        else:
            self.wfile.write(body)


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the client hanging up on a stalled handler is expected


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    state = _LocalServer(root)
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    httpd.state = state
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        state.together.abort()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Record download_file's back-off sleeps instead of sleeping (only inside recsys_lib.data)."""
    recorded: list[float] = []
    monkeypatch.setattr(data, "time", types.SimpleNamespace(sleep=recorded.append))
    return recorded


PAYLOAD = bytes(range(256)) * 1_000  # 256 kB: several 64 kB reads


def _leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir())


def test_download_good_file(server, tmp_path, capsys):
    url = server.put("good.bin", PAYLOAD)
    dest = tmp_path / "out" / "good.bin"  # parent folder is created
    got = data.download_file(url, dest, sha256=_sha256(PAYLOAD), size=len(PAYLOAD),
                             progress=False)
    assert got == dest
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest) == ["good.bin"]  # no .part file left
    assert server.requests == ["/good.bin"]
    assert capsys.readouterr().err == ""  # progress=False: no bar


def test_download_progress_bar_and_no_checks(server, tmp_path, capsys):
    url = server.put("plain.bin", PAYLOAD)
    dest = tmp_path / "plain.bin"
    data.download_file(url, str(dest), progress=True)  # no sha256 or size: no checks
    assert dest.read_bytes() == PAYLOAD
    assert "plain.bin" in capsys.readouterr().err


def test_download_overwrites_existing_destination(server, tmp_path):
    url = server.put("good.bin", PAYLOAD)
    dest = tmp_path / "good.bin"
    dest.write_bytes(b"stale")
    data.download_file(url, dest, sha256=_sha256(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_download_corrupt_file_raises_and_deletes(server, tmp_path):
    url = server.put("corrupt.bin", PAYLOAD[:-1] + b"\x00")
    dest = tmp_path / "dl" / "corrupt.bin"
    with pytest.raises(ChecksumError, match="SHA-256") as excinfo:
        data.download_file(url, dest, sha256=_sha256(PAYLOAD), size=len(PAYLOAD),
                           progress=False)
    assert "deleted" in str(excinfo.value)
    assert _leftovers(dest) == []  # neither dest nor dest.part
    assert server.requests == ["/corrupt.bin"]  # a bad checksum is not retried


def test_download_wrong_size_raises_and_deletes(server, tmp_path):
    url = server.put("short.bin", PAYLOAD[:1000])
    dest = tmp_path / "dl" / "short.bin"
    with pytest.raises(ChecksumError, match=f"1000 bytes .* expected {len(PAYLOAD)}"):
        data.download_file(url, dest, sha256=_sha256(PAYLOAD), size=len(PAYLOAD),
                           progress=False)
    assert _leftovers(dest) == []


def test_download_truncated_transfer_is_retried(server, tmp_path, sleeps):
    # The server announces the full Content-Length but closes after half of it.
    url = server.put("cut.bin", PAYLOAD)
    server.plan["cut.bin"] = ["truncate"]
    dest = tmp_path / "dl" / "cut.bin"
    data.download_file(url, dest, retries=2, backoff=0, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests) == 2
    assert _leftovers(dest) == ["cut.bin"]


def test_download_truncated_every_time_raises(server, tmp_path, sleeps):
    url = server.put("cut.bin", PAYLOAD)
    server.plan["cut.bin"] = ["truncate"] * 3
    dest = tmp_path / "dl" / "cut.bin"
    with pytest.raises(DatasetError, match="after 3 attempts") as excinfo:
        data.download_file(url, dest, retries=3, backoff=0, progress=False)
    assert f"connection closed after {len(PAYLOAD) // 2} of {len(PAYLOAD)}" in str(excinfo.value)
    assert len(server.requests) == 3
    assert _leftovers(dest) == []  # a truncated file is never left as dest


def test_download_http_404_is_not_retried(server, tmp_path, sleeps):
    dest = tmp_path / "dl" / "missing.bin"
    with pytest.raises(DatasetError, match="404") as excinfo:
        data.download_file(server.url("missing.bin"), dest, retries=3, backoff=0,
                           progress=False)
    assert not isinstance(excinfo.value, ChecksumError)
    assert server.requests == ["/missing.bin"]
    assert sleeps == []
    assert _leftovers(dest) == []


def test_download_http_500_then_success(server, tmp_path, sleeps):
    url = server.put("flaky.bin", PAYLOAD)
    server.plan["flaky.bin"] = [500]
    dest = tmp_path / "flaky.bin"
    data.download_file(url, dest, sha256=_sha256(PAYLOAD), retries=3, backoff=0.25,
                       progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == ["/flaky.bin", "/flaky.bin"]
    assert sleeps == [0.25]


def test_download_http_500_every_time(server, tmp_path, sleeps):
    url = server.put("down.bin", PAYLOAD)
    server.plan["down.bin"] = [503, 500, 502]
    dest = tmp_path / "dl" / "down.bin"
    with pytest.raises(DatasetError, match="after 3 attempts"):
        data.download_file(url, dest, retries=3, backoff=1.0, progress=False)
    assert len(server.requests) == 3
    assert sleeps == [1.0, 2.0]  # back-off doubles; no sleep after the last attempt
    assert _leftovers(dest) == []


@pytest.mark.parametrize("stall", ["stall_headers", "stall_body"])
def test_download_stalled_server_times_out(server, tmp_path, stall):
    url = server.put("slow.bin", PAYLOAD)
    server.plan["slow.bin"] = [stall, stall]
    dest = tmp_path / "dl" / "slow.bin"
    start = time.monotonic()
    with pytest.raises(DatasetError, match="after 2 attempts"):
        data.download_file(url, dest, timeout=0.5, retries=2, backoff=0, progress=False)
    assert time.monotonic() - start < 5  # two 0.5 s timeouts, not STALL_S
    assert len(server.requests) == 2
    assert _leftovers(dest) == []


def test_download_connection_refused(closed_port, tmp_path, sleeps):
    dest = tmp_path / "dl" / "x.bin"
    with pytest.raises(DatasetError, match="after 2 attempts") as excinfo:
        data.download_file(f"http://127.0.0.1:{closed_port}/x.bin", dest, retries=2,
                           backoff=0.5, progress=False)
    assert "offline" in str(excinfo.value)
    assert sleeps == [0.5]
    assert _leftovers(dest) == []


def test_download_rejects_zero_retries(tmp_path):
    with pytest.raises(ValueError, match="retries"):
        data.download_file("http://127.0.0.1:9/x", tmp_path / "x", retries=0)


def test_download_size_mismatch_says_the_server_sent_another_file(server, tmp_path):
    url = server.put("other.bin", PAYLOAD[:1000])
    dest = tmp_path / "dl" / "other.bin"
    with pytest.raises(ChecksumError, match="different file") as excinfo:
        data.download_file(url, dest, size=len(PAYLOAD), progress=False)
    assert "run again" not in str(excinfo.value).lower()
    assert data.MIRROR_ENV_VAR in str(excinfo.value)
    assert server.requests == ["/other.bin"]  # not retried: it would get the same file
    assert _leftovers(dest) == []


def test_download_deadline_stops_a_trickling_server(server, tmp_path, sleeps):
    # One byte every 0.1 s never trips the 5 s read timeout; the deadline ends each attempt.
    url = server.put("trickle.bin", PAYLOAD)
    server.plan["trickle.bin"] = ["trickle", "trickle"]
    dest = tmp_path / "dl" / "trickle.bin"
    start = time.monotonic()
    with pytest.raises(DatasetError, match="after 2 attempts") as excinfo:
        data.download_file(url, dest, timeout=5.0, deadline=0.5, retries=2, backoff=0,
                           progress=False)
    assert time.monotonic() - start < 4  # two 0.5 s deadlines, not the whole payload
    assert "0.5 s deadline" in str(excinfo.value)
    assert len(server.requests) == 2
    assert _leftovers(dest) == []


@pytest.mark.parametrize("bad", [{"deadline": 0}, {"timeout": -1.0}, {"retries": 1.5}])
def test_download_rejects_bad_limits(tmp_path, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        data.download_file("http://127.0.0.1:9/x", tmp_path / "x", **bad)


# ------------------------------------------------------------- end to end through the mirror
@pytest.fixture(scope="module")
def ml100k_zip(shared_datasets, tmp_path_factory) -> Path:
    """An ``ml-100k.zip`` laid out like GroupLens's, built from the shared real files."""
    path = tmp_path_factory.mktemp("zip") / "ml-100k.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name in ("u.data", "u.item", "u.genre", "u.user", "u.info"):
            archive.write(shared_datasets / "ml-100k" / name, f"ml-100k/{name}")
    return path


@pytest.fixture
def mirror(server, ml100k_zip, monkeypatch) -> _LocalServer:
    """The local server as the MovieLens mirror, serving the test zip as ml-100k.zip."""
    payload = ml100k_zip.read_bytes()
    server.put("ml-100k.zip", payload)
    real = data.REMOTE_DATASETS["ml-100k"]
    test_spec = dataclasses.replace(real, size=len(payload), sha256=_sha256(payload))
    assert test_spec.files == real.files  # the real per-file SHA-256 still apply
    monkeypatch.setitem(data.REMOTE_DATASETS, "ml-100k", test_spec)
    monkeypatch.setenv(data.MIRROR_ENV_VAR, server.base + "/")  # trailing slash is fine
    monkeypatch.delenv(DATA_DIR_ENV_VAR, raising=False)
    return server


def test_load_ml100k_through_mirror_then_cached(mirror, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    ratings, items = data.load_movielens("ml-100k", data_dir=cache)
    assert len(ratings) == 100_000
    assert len(items) == 1_682
    assert mirror.requests == ["/ml-100k.zip"]
    assert (cache / "ml-100k" / "u.data").is_file()
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k"]  # zip (and .part) deleted

    again = data.load_movielens("ml-100k", data_dir=cache)
    assert again.ratings.equals(ratings)
    assert len(data.load_users("ml-100k", data_dir=cache)) == 943
    monkeypatch.setenv(DATA_DIR_ENV_VAR, str(cache))  # data_dir=None reads RECSYS_DATA_DIR
    assert len(data.load_movielens("ml-100k").ratings) == 100_000
    assert mirror.requests == ["/ml-100k.zip"]  # no further request: served from the cache


def test_corrupt_cached_file_is_detected(mirror, tmp_path):
    cache = tmp_path / "cache"
    data.fetch_movielens("ml-100k", data_dir=cache)
    with open(cache / "ml-100k" / "u.data", "ab") as fh:
        fh.write(b"1\t1\t5\t0\n")
    with pytest.raises(ChecksumError, match="u.data"):
        data.load_movielens("ml-100k", data_dir=cache)
    assert mirror.requests == ["/ml-100k.zip"]


def test_truncated_users_file_is_rejected(mirror, tmp_path):
    cache = tmp_path / "cache"
    path = data.fetch_movielens("ml-100k", data_dir=cache) / "u.user"
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:471]))
    with pytest.raises(ChecksumError, match="u.user"):
        data.load_users("ml-100k", data_dir=cache)


def test_missing_users_file_is_restored(mirror, tmp_path):
    cache = tmp_path / "cache"
    (data.fetch_movielens("ml-100k", data_dir=cache) / "u.user").unlink()
    assert len(data.load_users("ml-100k", data_dir=cache)) == 943
    assert mirror.requests == ["/ml-100k.zip", "/ml-100k.zip"]


def test_clear_cache_forces_a_new_download(mirror, tmp_path):
    cache = tmp_path / "cache"
    data.fetch_movielens("ml-100k", data_dir=cache)
    data.clear_cache("ml-100k", data_dir=cache)
    assert not (cache / "ml-100k").exists()
    data.fetch_movielens("ml-100k", data_dir=cache)
    assert mirror.requests == ["/ml-100k.zip", "/ml-100k.zip"]


def test_offline_message_points_to_bundled(closed_port, tmp_path, monkeypatch, sleeps):
    monkeypatch.setenv(data.MIRROR_ENV_VAR, f"http://127.0.0.1:{closed_port}")
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError) as excinfo:
        data.load_movielens("ml-100k", data_dir=cache)
    message = str(excinfo.value)
    assert "load_movielens('bundled')" in message
    assert str(cache / "ml-100k" / "u.data") in message  # where to put the files by hand
    assert "data_dir=" in message and DATA_DIR_ENV_VAR in message
    assert f"127.0.0.1:{closed_port}/ml-100k.zip" in message
    assert len(sleeps) == 2  # the default 3 attempts were made
    assert not any(cache.rglob("*"))  # nothing half-downloaded left behind


# ------------------------------------------------------------- a toy dataset (no real data)
TOY_FILES = {
    "ratings.csv": b"userId,movieId,rating,timestamp\n1,10,4.0,100\n1,11,3.5,200\n2,10,5.0,150\n",
    "movies.csv": b"movieId,title,genres\n10,Toy (1995),Comedy\n11,Other (2001),Drama\n",
}


def _toy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, payload in TOY_FILES.items():
            archive.writestr(f"toy/{name}", payload)
    return buffer.getvalue()


@pytest.fixture
def toy(server, monkeypatch) -> data.RemoteDataset:
    """A tiny dataset "toy" in GroupLens's CSV layout, served by the local server as toy.zip."""
    payload = _toy_zip()
    server.put("toy.zip", payload)
    spec = data.RemoteDataset("toy.zip", "toy", len(payload), _sha256(payload),
                              {name: _sha256(body) for name, body in TOY_FILES.items()})
    monkeypatch.setitem(data.REMOTE_DATASETS, "toy", spec)
    monkeypatch.setenv(data.MIRROR_ENV_VAR, server.base)
    return spec


def test_toy_dataset_loads_through_the_mirror(toy, server, tmp_path):
    cache = tmp_path / "cache"
    ratings, items = data.load_movielens("toy", data_dir=cache)
    assert len(ratings) == 3 and len(items) == 2
    assert sorted(p.name for p in cache.iterdir()) == ["toy"]  # zip and temporary files gone
    assert server.requests == ["/toy.zip"]


@pytest.mark.parametrize("field", ["sha256", "size"])
def test_fetch_checksum_failure_is_a_checksum_error(toy, server, tmp_path, monkeypatch, field):
    wrong = {"sha256": "0" * 64, "size": toy.size + 1}[field]
    monkeypatch.setitem(data.REMOTE_DATASETS, "toy", dataclasses.replace(toy, **{field: wrong}))
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match="toy.zip") as excinfo:
        data.load_movielens("toy", data_dir=cache)
    assert "load_movielens('bundled')" in str(excinfo.value)  # what to do instead
    assert server.requests == ["/toy.zip"]
    assert not any(cache.rglob("*"))


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_interrupted_extraction_is_repaired_from_the_verified_zip(toy, server, tmp_path,
                                                                  damage):
    # What an extraction killed half-way leaves: the verified zip and part of the files.
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(server.root / "toy.zip", cache / "toy.zip")
    with zipfile.ZipFile(cache / "toy.zip") as archive:
        archive.extractall(cache)
    ratings_csv = cache / "toy" / "ratings.csv"
    if damage == "truncated":
        ratings_csv.write_bytes(ratings_csv.read_bytes()[:40])
    else:
        ratings_csv.unlink()
    ratings, _ = data.load_movielens("toy", data_dir=cache)
    assert len(ratings) == 3
    assert server.requests == []  # unpacked again from the zip, nothing downloaded
    assert sorted(p.name for p in cache.iterdir()) == ["toy"]


def test_corrupt_file_without_a_zip_is_reported_not_replaced(toy, server, tmp_path):
    cache = tmp_path / "cache"
    folder = data.fetch_movielens("toy", data_dir=cache)
    (folder / "movies.csv").write_bytes(b"movieId,title,genres\n")
    with pytest.raises(ChecksumError, match="movies.csv"):
        data.load_movielens("toy", data_dir=cache)
    assert server.requests == ["/toy.zip"]


def test_a_zip_that_does_not_verify_is_downloaded_again(toy, server, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "toy.zip").write_bytes(b"half a zip")  # e.g. left by another program
    data.fetch_movielens("toy", data_dir=cache)
    assert server.requests == ["/toy.zip"]
    assert sorted(p.name for p in cache.iterdir()) == ["toy"]


def test_clear_cache_also_deletes_a_kept_zip(toy, server, tmp_path):
    cache = tmp_path / "cache"
    data.fetch_movielens("toy", data_dir=cache)
    shutil.copyfile(server.root / "toy.zip", cache / "toy.zip")
    data.clear_cache("toy", data_dir=cache)
    assert not any(cache.iterdir())


_FETCH_IN_A_CHILD = """
import json, sys
from recsys_lib import data
data.REMOTE_DATASETS["toy"] = data.RemoteDataset(**json.loads(sys.argv[1]))
folder = data.fetch_movielens("toy", data_dir=sys.argv[2])
print(sorted(p.name for p in folder.iterdir()))
"""


def test_two_processes_fetch_the_same_dataset_at_once(toy, server, tmp_path):
    # The server holds the first request until the second arrives, then sends both slowly:
    # the two downloads, and the unpacking after them, overlap.
    server.plan["toy.zip"] = ["together", "together"]
    cache = tmp_path / "cache"
    command = [sys.executable, "-c", _FETCH_IN_A_CHILD, json.dumps(dataclasses.asdict(toy)),
               str(cache)]
    env = {**os.environ, data.MIRROR_ENV_VAR: server.base}
    children = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        outputs = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(10)
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err[-2000:]
        assert out.strip() == "['movies.csv', 'ratings.csv']"
    assert server.requests == ["/toy.zip", "/toy.zip"]
    assert sorted(p.name for p in cache.iterdir()) == ["toy"]  # no temporary file left
    assert len(data.load_movielens("toy", data_dir=cache).ratings) == 3


# ------------------------------------------------------------------------------ zip safety
def _zip_with(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return path


@pytest.mark.parametrize("member", ["../outside.txt", "../cache-evil/pwned.txt"])
def test_extract_refuses_paths_outside_the_cache(tmp_path, member):
    root = tmp_path / "cache"
    root.mkdir()
    zip_path = _zip_with(tmp_path / "evil.zip", {"ml-100k/u.data": b"x", member: b"x"})
    with pytest.raises(DatasetError, match="unsafe path"):
        data._extract(zip_path, root)
    assert not (root / member).resolve().exists()
    assert not (root / "ml-100k").exists()


def test_extract_bad_zip_is_deleted(tmp_path):
    zip_path = tmp_path / "ml-100k.zip"
    zip_path.write_bytes(b"this is not a zip file")
    with pytest.raises(DatasetError, match="not a valid zip"):
        data._extract(zip_path, tmp_path)
    assert not zip_path.exists()


# ================================================================================= bad input
def test_unknown_dataset_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown dataset 'ml-20m'") as excinfo:
        data.load_movielens("ml-20m")
    for name in ("bundled", "ml-latest-small", "ml-100k", "ml-1m", "ml-25m"):
        assert name in str(excinfo.value)
    assert set(data.DATASET_NAMES) == {"bundled", "ml-latest-small", "ml-100k", "ml-1m",
                                       "ml-25m"}


@pytest.mark.parametrize("call", [
    lambda: data.fetch_movielens("bundled"),
    lambda: data.clear_cache("movielens"),
    lambda: data.load_users("ml-latest-small"),
])
def test_other_entry_points_reject_bad_names(call):
    with pytest.raises(ValueError, match="ml-100k"):
        call()
