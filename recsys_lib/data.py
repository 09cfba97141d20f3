"""Load MovieLens datasets into one consistent shape.

Every dataset comes back as two pandas tables (notebook 00 tours them):

* ``ratings``: ``user_id, item_id, rating, timestamp`` with the dataset's original ids
  (int64), ratings as float64 and Unix timestamps in seconds (int64), in file order.
* ``items``: ``item_id, title, genres, year``; ``genres`` is ``|``-separated and ``year``
  (nullable Int64) is parsed from a title that ends in ``(YYYY)`` or ``(YYYY-YYYY)``.

``"bundled"`` ships with the course (no network needed). The other names download from
GroupLens once, are checked against pinned SHA-256 sums, and are cached in
:func:`recsys_lib.config.default_data_dir`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from recsys_lib.config import DATA_DIR_ENV_VAR, REPO_ROOT, default_data_dir

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"
#: Set this environment variable to a mirror that serves the same zip files.
MIRROR_ENV_VAR = "RECSYS_MOVIELENS_URL"
BUNDLED_DIR = REPO_ROOT / "datasets" / "movielens-small-2016"

RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
ITEM_COLUMNS = ["item_id", "title", "genres", "year"]


class MovieLens(NamedTuple):
    """The two tables of a MovieLens dataset; unpack with ``ratings, items = ...``."""

    ratings: pd.DataFrame
    items: pd.DataFrame


class DatasetError(RuntimeError):
    """A dataset could not be downloaded, verified or read."""


class ChecksumError(DatasetError):
    """A file's SHA-256 differs from the pinned value (the file was deleted)."""


@dataclass(frozen=True)
class RemoteDataset:
    """Where a GroupLens archive lives and which files of it we read and verify."""

    archive: str  # e.g. "ml-100k.zip"
    folder: str  # folder the zip unpacks into
    size: int  # bytes of the zip
    sha256: str  # SHA-256 of the zip
    files: dict[str, str | None]  # file inside folder -> SHA-256 (None: not pinned)


# Zip sizes and SHA-256 are those pinned by TensorFlow Datasets for the GroupLens files;
# per-file SHA-256 are the values for GroupLens's files (see datasets/README.md).
REMOTE_DATASETS: dict[str, RemoteDataset] = {
    "ml-100k": RemoteDataset(
        "ml-100k.zip", "ml-100k", 4924029,
        "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        {
            "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
            "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
        },
    ),
    "ml-1m": RemoteDataset(
        "ml-1m.zip", "ml-1m", 5917549,
        "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        {
            "ratings.dat": "506d64ca44484487c11dc2d9a28de5c54948213e6b96285e298afe28d6ea4e0f",
            "movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
        },
    ),
    "ml-latest-small": RemoteDataset(
        "ml-latest-small.zip", "ml-latest-small", 978202,
        "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        {
            "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
            "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
        },
    ),
    "ml-25m": RemoteDataset(
        "ml-25m.zip", "ml-25m", 261978986,
        "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
        {"ratings.csv": None, "movies.csv": None},
    ),
}
DATASET_NAMES = ("bundled", *REMOTE_DATASETS)


# ----------------------------------------------------------------------------- public API
def load_movielens(name: str = "bundled", data_dir: str | Path | None = None) -> MovieLens:
    """Load a MovieLens dataset as ``(ratings, items)`` tables of one shape for all datasets.

    Args:
        name: ``"bundled"`` (ships with the course: the 2016 ``ml-latest-small``, 100,004
            ratings), ``"ml-latest-small"`` (2018, 100,836 ratings), ``"ml-100k"``,
            ``"ml-1m"`` or ``"ml-25m"``.
        data_dir: folder that holds (or will cache) downloaded datasets, each in a subfolder
            named like the dataset (``<data_dir>/ml-100k/u.data``). Default: the
            ``RECSYS_DATA_DIR`` environment variable, else ``~/.cache/recsys_course``.
            Ignored for ``"bundled"``.

    Returns:
        ``MovieLens(ratings, items)``; see the module docstring for the columns.

    Raises:
        ValueError: unknown ``name``.
        DatasetError: the files cannot be downloaded (offline, HTTP error) or read.
        ChecksumError: a downloaded or cached file does not match its pinned SHA-256.

    Explained in notebook 00.
    """
    if name == "bundled":
        verify_manifest(BUNDLED_DIR)
        return _read_grouplens_csv(BUNDLED_DIR)
    if name not in REMOTE_DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}"
        )
    folder = fetch_movielens(name, data_dir)
    readers = {"ml-100k": _read_ml100k, "ml-1m": _read_ml1m}
    return readers.get(name, _read_grouplens_csv)(folder)


def fetch_movielens(name: str, data_dir: str | Path | None = None) -> Path:
    """Make sure a GroupLens dataset is unpacked and verified in the cache; download if not.

    Args:
        name: one of the names in ``REMOTE_DATASETS``.
        data_dir: cache folder (see :func:`load_movielens`).

    Returns:
        The folder holding the dataset's files.

    Raises:
        ValueError: unknown ``name``.
        DatasetError, ChecksumError: see :func:`load_movielens`.
    """
    if name not in REMOTE_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(REMOTE_DATASETS)}")
    spec = REMOTE_DATASETS[name]
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = root / spec.folder
    if not all((folder / f).is_file() for f in spec.files):
        zip_path = root / spec.archive
        url = f"{os.environ.get(MIRROR_ENV_VAR, GROUPLENS_URL).rstrip('/')}/{spec.archive}"
        try:
            download_file(url, zip_path, sha256=spec.sha256, size=spec.size)
        except DatasetError as err:
            raise DatasetError(
                f"{err}\nTo go on: use load_movielens('bundled'), which ships with the course "
                f"and needs no network; or download {url} yourself and unzip it so that "
                f"{folder}/{next(iter(spec.files))} exists (set {DATA_DIR_ENV_VAR} or pass "
                "data_dir= to use another folder)."
            ) from err
        _extract(zip_path, root)
        zip_path.unlink()
    for filename, digest in spec.files.items():
        if digest is not None:
            verify_sha256(folder / filename, digest)
    return folder


def sha256_of(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str, delete_on_mismatch: bool = False) -> None:
    """Raise :class:`ChecksumError` if ``path``'s SHA-256 is not ``expected``.

    Args:
        path: file to check.
        expected: hex digest.
        delete_on_mismatch: remove the file before raising (used for downloads).
    """
    actual = sha256_of(path)
    if actual != expected.lower():
        if delete_on_mismatch:
            Path(path).unlink(missing_ok=True)
        action = (
            "It was deleted; run again to download it afresh."
            if delete_on_mismatch
            else "Delete it (or its folder) and load again to download a fresh copy."
        )
        raise ChecksumError(
            f"{path} is corrupt or not the expected file: SHA-256 {actual}, "
            f"expected {expected}. {action}"
        )


def verify_manifest(folder: str | Path, manifest: str = "SHA256SUMS") -> None:
    """Check every file listed in ``folder/manifest`` (``sha256sum`` format).

    Raises:
        DatasetError: the manifest or a listed file is missing.
        ChecksumError: a file differs from the manifest.
    """
    folder = Path(folder)
    manifest_path = folder / manifest
    if not manifest_path.is_file():
        raise DatasetError(
            f"{manifest_path} is missing: the bundled dataset is incomplete. Restore the "
            "datasets/ folder from the repository (git checkout -- datasets)."
        )
    for line in manifest_path.read_text().splitlines():
        if not line.strip():
            continue
        digest, filename = line.split(maxsplit=1)
        path = folder / filename.lstrip("*")
        if not path.is_file():
            raise DatasetError(
                f"{path} is missing. Restore it with `git checkout -- datasets`."
            )
        verify_sha256(path, digest)


def download_file(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    size: int | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` with a progress bar, a timeout, retries and a checksum.

    The file is written to ``dest.part`` and renamed only once it is complete and, when
    ``sha256`` is given, verified. A file that fails verification is deleted.

    Args:
        url: http(s) address.
        dest: where the file ends up.
        sha256: expected hex digest, or None to skip the check.
        size: expected number of bytes, or None (used for the progress bar).
        timeout: seconds to wait for the server on each read.
        retries: attempts in all (network errors and timeouts are retried).
        backoff: seconds before the 2nd attempt, doubled for each later one.
        progress: show a tqdm progress bar.

    Returns:
        ``dest`` as a Path.

    Raises:
        DatasetError: every attempt failed (offline, timeout, HTTP 4xx/5xx); 4xx is not
            retried.
        ChecksumError: the downloaded bytes do not match ``sha256``.
    """
    from tqdm.auto import tqdm

    if retries < 1:
        raise ValueError(f"retries must be >= 1, got {retries}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or size
                with tqdm(
                    total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress
                ) as bar:
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        bar.update(len(chunk))
                # http.client does not raise when the server closes before Content-Length.
                length = int(response.headers.get("Content-Length") or 0)
                if length and out.tell() != length:
                    raise ConnectionError(f"connection closed after {out.tell()} of {length} bytes")
            break
        except urllib.error.HTTPError as err:
            part.unlink(missing_ok=True)
            last_error = err
            if 400 <= err.code < 500:
                raise DatasetError(
                    f"Downloading {url} failed: the server answered HTTP {err.code} "
                    f"({err.reason}). Check the address (or the {MIRROR_ENV_VAR} mirror)."
                ) from err
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
            part.unlink(missing_ok=True)
            last_error = err
        if attempt < retries:
            time.sleep(backoff * 2 ** (attempt - 1))
    else:
        reason = getattr(last_error, "reason", last_error)
        raise DatasetError(
            f"Could not download {url} after {retries} attempts ({reason}). "
            "Are you offline, or is the server down?"
        ) from last_error
    if size is not None and part.stat().st_size != size:
        got = part.stat().st_size
        part.unlink()
        raise ChecksumError(
            f"Downloaded {got} bytes from {url} but expected {size}; the partial file was "
            "deleted. Run again to retry."
        )
    if sha256 is not None:
        verify_sha256(part, sha256, delete_on_mismatch=True)
    part.replace(dest)
    return dest


# ----------------------------------------------------------------------------- parsers
def _extract(zip_path: Path, root: Path) -> None:
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for member in archive.namelist():  # refuse paths that escape the cache folder
                target = (root / member).resolve()
                if not target.is_relative_to(root.resolve()):
                    raise DatasetError(f"{zip_path} holds an unsafe path {member!r}")
            archive.extractall(root)
    except zipfile.BadZipFile as err:
        zip_path.unlink(missing_ok=True)
        raise DatasetError(f"{zip_path} is not a valid zip file; it was deleted.") from err


def _items_with_year(items: pd.DataFrame) -> pd.DataFrame:
    items = items.copy()
    items["title"] = items["title"].astype("string").str.strip()
    year = items["title"].str.extract(r"\((\d{4})(?:\s*[-–]\s*\d{4})?\)$", expand=False)
    items["year"] = pd.to_numeric(year, errors="coerce").astype("Int64")
    items["genres"] = items["genres"].astype("string")
    items["item_id"] = items["item_id"].astype("int64")
    return items[ITEM_COLUMNS].reset_index(drop=True)


def _typed_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
    ratings = ratings[RATING_COLUMNS].astype(
        {"user_id": "int64", "item_id": "int64", "rating": "float64", "timestamp": "int64"}
    )
    if ratings.empty:
        raise DatasetError("the ratings file is empty")
    return ratings.reset_index(drop=True)


def _read_grouplens_csv(folder: Path) -> MovieLens:
    """GroupLens's CSV layout (ml-latest, ml-latest-small, ml-25m and the bundled data)."""
    ratings = pd.read_csv(folder / "ratings.csv", encoding="utf-8")
    ratings = ratings.rename(columns={"userId": "user_id", "movieId": "item_id"})
    items = pd.read_csv(folder / "movies.csv", encoding="utf-8", keep_default_na=False,
                        na_values={"title": [""]})
    items = items.rename(columns={"movieId": "item_id"})
    return MovieLens(_typed_ratings(ratings), _items_with_year(items))


def _read_ml100k(folder: Path) -> MovieLens:
    """ml-100k: tab-separated ``u.data``; pipe-separated Latin-1 ``u.item`` with genre flags."""
    ratings = pd.read_csv(folder / "u.data", sep="\t", header=None, names=RATING_COLUMNS)
    genres = pd.read_csv(folder / "u.genre", sep="|", header=None, names=["genre", "index"],
                         encoding="latin-1").dropna()
    genre_names = genres.sort_values("index")["genre"].tolist()
    columns = ["item_id", "title", "release_date", "video_release_date", "url", *genre_names]
    raw = pd.read_csv(folder / "u.item", sep="|", header=None, names=columns,
                      encoding="latin-1")
    flags = raw[genre_names].to_numpy(dtype=bool)
    raw["genres"] = ["|".join(g for g, on in zip(genre_names, row, strict=True) if on)
                     for row in flags]
    return MovieLens(_typed_ratings(ratings), _items_with_year(raw))


def _read_ml1m(folder: Path, ratings_path: Path | None = None) -> MovieLens:
    """ml-1m: ``::``-separated ``ratings.dat`` (or ``ratings_path``, may be .gz) and Latin-1
    ``movies.dat``."""
    ratings = _read_double_colon(ratings_path or folder / "ratings.dat", RATING_COLUMNS, "ascii")
    items = _read_double_colon(folder / "movies.dat", ["item_id", "title", "genres"], "latin-1")
    return MovieLens(_typed_ratings(ratings), _items_with_year(items))


def _read_double_colon(path: Path, columns: list[str], encoding: str) -> pd.DataFrame:
    # Titles contain single colons, never "::", so splitting on the exact string is safe.
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode(encoding)
    # split on "\n" only: str.splitlines() would also break Latin-1 text at bytes like 0x85
    rows = [line.rstrip("\r").split("::") for line in text.split("\n") if line.strip()]
    bad = [i for i, row in enumerate(rows, 1) if len(row) != len(columns)]
    if bad:
        raise DatasetError(f"{path}: line {bad[0]} does not have {len(columns)} '::' fields")
    frame = pd.DataFrame(rows, columns=columns)
    for col in ("user_id", "item_id", "timestamp"):
        if col in frame:
            frame[col] = frame[col].astype("int64")
    if "rating" in frame:
        frame["rating"] = frame["rating"].astype("float64")
    return frame


def load_users(name: str, data_dir: str | Path | None = None) -> pd.DataFrame:
    """Load the user demographics that ml-100k and ml-1m ship (used for cold start).

    Args:
        name: ``"ml-100k"`` or ``"ml-1m"``.
        data_dir: cache folder (see :func:`load_movielens`).

    Returns:
        A table ``user_id, gender, age, occupation, zip_code``. In ml-1m ``age`` is an age
        group and ``occupation`` a code (see the dataset's README); in ml-100k they are the
        age in years and the occupation's name.

    Raises:
        ValueError: ``name`` has no user table.
    """
    if name not in ("ml-100k", "ml-1m"):
        raise ValueError(f"{name!r} has no user table; only 'ml-100k' and 'ml-1m' do")
    folder = fetch_movielens(name, data_dir)
    return read_users_file(folder, name)


def read_users_file(folder: str | Path, name: str) -> pd.DataFrame:
    """Parse ``u.user`` (ml-100k, ``|``-separated) or ``users.dat`` (ml-1m, ``::``)."""
    folder = Path(folder)
    if name == "ml-100k":
        users = pd.read_csv(folder / "u.user", sep="|", header=None, encoding="latin-1",
                            names=["user_id", "age", "gender", "occupation", "zip_code"],
                            dtype={"zip_code": str})
    else:
        users = _read_double_colon(folder / "users.dat",
                                   ["user_id", "gender", "age", "occupation", "zip_code"],
                                   "latin-1")
        users = users.astype({"age": "int64", "occupation": "int64"})
    return users[["user_id", "gender", "age", "occupation", "zip_code"]]


def clear_cache(name: str, data_dir: str | Path | None = None) -> None:
    """Delete a downloaded dataset from the cache, so the next load downloads it again."""
    if name not in REMOTE_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(REMOTE_DATASETS)}")
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    shutil.rmtree(root / REMOTE_DATASETS[name].folder, ignore_errors=True)
