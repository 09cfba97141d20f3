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

import contextlib
import gzip
import hashlib
import http.client
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from typing import NamedTuple

import pandas as pd

from recsys_lib.checks import check_float, check_int
from recsys_lib.config import DATA_DIR_ENV_VAR, REPO_ROOT, default_data_dir

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"
#: Set this environment variable to a mirror that serves the same zip files.
MIRROR_ENV_VAR = "RECSYS_MOVIELENS_URL"
BUNDLED_DIR = REPO_ROOT / "datasets" / "movielens-small-2016"

#: Seconds one download attempt may take in all (``download_file(deadline=...)``).
DOWNLOAD_DEADLINE_S = 600.0
#: ``fetch_movielens`` gives a big archive more time: at least this many bytes per second.
MIN_DOWNLOAD_RATE = 100_000

RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
ITEM_COLUMNS = ["item_id", "title", "genres", "year"]


class MovieLens(NamedTuple):
    """The two tables of a MovieLens dataset; unpack with ``ratings, items = ...``.

    Explained in notebook 00.
    """

    ratings: pd.DataFrame
    items: pd.DataFrame


class DatasetError(RuntimeError):
    """A dataset could not be downloaded, verified or read.

    Explained in notebook 00.
    """


class ChecksumError(DatasetError):
    """A file's SHA-256 or size differs from the pinned value (the message says what to do).

    Explained in notebook 00.
    """


@dataclass(frozen=True)
class RemoteDataset:
    """Where a GroupLens archive lives and which files of it we read and verify.

    Explained in notebook 00.
    """

    archive: str  # e.g. "ml-100k.zip"
    folder: str  # folder the zip unpacks into
    size: int  # bytes of the zip
    sha256: str  # SHA-256 of the zip
    files: dict[str, str | None]  # file inside folder -> SHA-256 (None: not pinned)


# Zip sizes and SHA-256 are those pinned by TensorFlow Datasets for the GroupLens files;
# per-file SHA-256 are the values for GroupLens's files (see datasets/README.md). The user
# files (u.user, users.dat) are pinned too, so that load_users never reads a truncated one.
REMOTE_DATASETS: dict[str, RemoteDataset] = {
    "ml-100k": RemoteDataset(
        "ml-100k.zip", "ml-100k", 4924029,
        "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        {
            "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
            "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
            "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
        },
    ),
    "ml-1m": RemoteDataset(
        "ml-1m.zip", "ml-1m", 5917549,
        "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        {
            "ratings.dat": "506d64ca44484487c11dc2d9a28de5c54948213e6b96285e298afe28d6ea4e0f",
            "movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
            "users.dat": "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3",
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
#: The user table of each dataset that has one: file name and number of users.
USER_FILES = {"ml-100k": ("u.user", 943), "ml-1m": ("users.dat", 6_040)}


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
        ChecksumError: a downloaded, cached or bundled file does not match its pinned
            SHA-256 or size (the message says what to do).

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

    The zip is unpacked into a temporary folder and moved into place in one rename, so a
    process that is stopped half-way never leaves a half-unpacked dataset, and two processes
    that fetch the same dataset at once both succeed. A zip that is still in the cache (from
    an unpacking that was interrupted) is checked and unpacked again instead of downloaded.

    Args:
        name: one of the names in ``REMOTE_DATASETS``.
        data_dir: cache folder (see :func:`load_movielens`).

    Returns:
        The folder holding the dataset's files.

    Raises:
        ValueError: unknown ``name``.
        DatasetError, ChecksumError: see :func:`load_movielens`.

    Used by :func:`load_movielens`; loading data is explained in notebooks 00 and 01.
    """
    spec = _remote_spec(name)
    root = _cache_root(data_dir)
    folder = root / spec.folder
    if all((folder / f).is_file() for f in spec.files):
        try:
            _verify_folder(folder, spec)
            return folder
        except ChecksumError:
            if not _zip_is_verified(root / spec.archive, spec):
                raise  # nothing to restore the files from: report them
    try:
        _install(spec, root)
    except (DatasetError, FileNotFoundError):
        if not _folder_is_verified(folder, spec):
            raise
        # another process installed the same verified files meanwhile
    _verify_folder(folder, spec)
    return folder


def _remote_spec(name: str) -> RemoteDataset:
    if name not in REMOTE_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(REMOTE_DATASETS)}")
    return REMOTE_DATASETS[name]


def _cache_root(data_dir: str | Path | None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


def _verify_folder(folder: Path, spec: RemoteDataset) -> None:
    """Check that every file of ``spec`` is in ``folder`` and has its pinned SHA-256."""
    for filename, digest in spec.files.items():
        path = folder / filename
        if not path.is_file():
            raise DatasetError(
                f"{path} is missing: the {spec.folder} folder is incomplete. Delete it with "
                f"clear_cache({spec.folder!r}) and load again to download it afresh."
            )
        if digest is not None:
            verify_sha256(path, digest)


def _folder_is_verified(folder: Path, spec: RemoteDataset) -> bool:
    try:
        _verify_folder(folder, spec)
    except (DatasetError, OSError):
        return False
    return True


def _zip_is_verified(zip_path: Path, spec: RemoteDataset) -> bool:
    try:
        return zip_path.stat().st_size == spec.size and sha256_of(zip_path) == spec.sha256
    except OSError:  # missing, or deleted meanwhile by another process
        return False


def _install(spec: RemoteDataset, root: Path) -> None:
    """Download the zip unless a verified one is in the cache, unpack it, delete it."""
    zip_path = root / spec.archive
    if not _zip_is_verified(zip_path, spec):
        _download_archive(spec, zip_path)
    _unpack_into_place(zip_path, root, spec)
    with contextlib.suppress(OSError):  # another process may have deleted it already
        zip_path.unlink()


def _download_archive(spec: RemoteDataset, zip_path: Path) -> None:
    url = f"{os.environ.get(MIRROR_ENV_VAR, GROUPLENS_URL).rstrip('/')}/{spec.archive}"
    folder = zip_path.parent / spec.folder
    first, *rest = spec.files
    others = f" (and {', '.join(rest)} beside it)" if rest else ""
    try:
        download_file(url, zip_path, sha256=spec.sha256, size=spec.size,
                      deadline=max(DOWNLOAD_DEADLINE_S, spec.size / MIN_DOWNLOAD_RATE))
    except DatasetError as err:  # keeps its class: a ChecksumError stays a ChecksumError
        raise type(err)(
            f"{err}\nTo go on: use load_movielens('bundled'), which ships with the course "
            f"and needs no network; or download {url} yourself and unzip it so that "
            f"{folder / first} exists{others} (set {DATA_DIR_ENV_VAR} or pass data_dir= to "
            "use another folder)."
        ) from err


def _unpack_into_place(zip_path: Path, root: Path, spec: RemoteDataset) -> None:
    """Unpack ``zip_path`` into a private temporary folder, then rename it into place."""
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{spec.folder}.", suffix=".unpacking"))
    try:
        _extract(zip_path, staging)
        unpacked = staging / spec.folder
        if not unpacked.is_dir():
            raise DatasetError(f"{zip_path} has no folder {spec.folder}/: it is not the "
                               f"{spec.archive} of GroupLens. Delete it and load again.")
        _move_into_place(unpacked, root / spec.folder, spec)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(unpacked: Path, folder: Path, spec: RemoteDataset) -> None:
    """Rename ``unpacked`` to ``folder``, replacing a stale ``folder`` but not a verified one."""
    for _ in range(3):
        try:
            os.rename(unpacked, folder)
            return
        except OSError:
            if not folder.exists():
                raise
        if _folder_is_verified(folder, spec):
            return  # another process put the same files there first
        _discard(folder)  # incomplete or corrupt (e.g. an interrupted unpacking): replace it
    raise DatasetError(f"could not move the unpacked files into {folder}; another program "
                       "keeps changing it. Close it, or pass another data_dir=.")


def _discard(folder: Path) -> None:
    """Move ``folder`` aside under a unique name (one atomic step), then delete it."""
    trash = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:12]}.old")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        return  # another process moved it already
    shutil.rmtree(trash, ignore_errors=True)


def sha256_of(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file, read in chunks.

    Explained in notebook 00.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str, delete_on_mismatch: bool = False,
                  advice: str | None = None) -> None:
    """Raise :class:`ChecksumError` if ``path``'s SHA-256 is not ``expected``.

    Args:
        path: file to check.
        expected: hex digest.
        delete_on_mismatch: remove the file before raising (used for downloads).
        advice: what the message tells the reader to do; the default fits a cached
            download (delete it and load again).

    Raises:
        ChecksumError: the digests differ.

    Explained in notebook 00.
    """
    actual = sha256_of(path)
    if actual != expected.lower():
        if delete_on_mismatch:
            Path(path).unlink(missing_ok=True)
        if advice is None:
            advice = (
                "It was deleted; run again to download it afresh."
                if delete_on_mismatch
                else "Delete it (or its folder) and load again to download a fresh copy."
            )
        raise ChecksumError(
            f"{path} is corrupt or not the expected file: SHA-256 {actual}, "
            f"expected {expected}. {advice}"
        )


def _bundled_advice(path: Path) -> str:
    """What to do about a bundled file whose SHA-256 is wrong (it is never downloaded)."""
    with open(path, "rb") as fh:
        crlf = b"\r\n" in fh.read(1 << 16)
    cause = ("It has Windows line endings (CRLF), most likely written by Git's line-ending "
             "conversion (core.autocrlf) on Windows" if crlf else
             "The file was changed on disk, for example by Git's line-ending conversion "
             "(core.autocrlf) or an editor")
    return (f"{cause}. The bundled files must stay byte for byte as in the repository: "
            "restore them with `git checkout -- datasets/` (if that changes nothing, delete "
            "datasets/movielens-small-2016 first), or clone the course again after "
            "`git config --global core.autocrlf false`.")


_MANIFEST_LINE = re.compile(r"([0-9a-fA-F]{64})\s+\*?(\S.*)")


def verify_manifest(folder: str | Path, manifest: str = "SHA256SUMS") -> None:
    """Check every file listed in ``folder/manifest`` (``sha256sum`` format).

    Used for the bundled dataset, so the messages say how to restore it with Git.

    Raises:
        DatasetError: the manifest or a listed file is missing, or a manifest line is not
            ``<64 hex digits>  <file name>``.
        ChecksumError: a file differs from the manifest.

    Explained in notebook 00.
    """
    folder = Path(folder)
    manifest_path = folder / manifest
    if not manifest_path.is_file():
        raise DatasetError(
            f"{manifest_path} is missing: the bundled dataset is incomplete. Restore the "
            "datasets/ folder from the repository (git checkout -- datasets)."
        )
    for number, line in enumerate(manifest_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        match = _MANIFEST_LINE.fullmatch(line.strip())
        if match is None:
            raise DatasetError(
                f"{manifest_path}, line {number}: expected '<64 hex digits>  <file name>', "
                f"got {line!r}. Restore the file with `git checkout -- datasets/`."
            )
        path = folder / match.group(2)
        if not path.is_file():
            raise DatasetError(
                f"{path} is missing. Restore it with `git checkout -- datasets`."
            )
        verify_sha256(path, match.group(1), advice=_bundled_advice(path))


def download_file(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    size: int | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
    progress: bool = True,
    deadline: float = DOWNLOAD_DEADLINE_S,
) -> Path:
    """Download ``url`` to ``dest`` with a progress bar, time limits, retries and a checksum.

    Each attempt writes to its own temporary file beside ``dest`` (so processes that
    download the same file at once do not clash); the file is renamed to ``dest`` in one
    atomic step only once it is complete and, when ``sha256`` is given, verified. A file
    that fails a check is deleted.

    Args:
        url: http(s) address.
        dest: where the file ends up.
        sha256: expected hex digest, or None to skip the check.
        size: expected number of bytes, or None (also used for the progress bar).
        timeout: seconds to wait for the server to connect or to send the next bytes.
        retries: attempts in all (network errors and time-outs are retried).
        backoff: seconds before the 2nd attempt, doubled for each later one.
        progress: show a tqdm progress bar.
        deadline: seconds one attempt may take in all, however steadily the server trickles
            data (checked after each read, so an attempt may overrun it by up to
            ``timeout``).

    Returns:
        ``dest`` as a Path.

    Raises:
        ValueError: ``retries`` is not an integer >= 1, or ``timeout``, ``deadline`` or
            ``backoff`` is not a positive number (``backoff`` may be 0).
        DatasetError: every attempt failed (offline, time-out, HTTP 4xx/5xx); 4xx is not
            retried.
        ChecksumError: the downloaded file has the wrong size or SHA-256 (not retried: the
            server sent a different file).

    Used by :func:`load_movielens`; loading data is explained in notebooks 00 and 01.
    """
    retries = check_int("retries", retries)
    limits = (check_float("timeout", timeout), check_float("deadline", deadline))
    backoff = check_float("backoff", backoff, strict=False)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part, announced = _download_with_retries(url, dest, size, limits, retries, backoff,
                                             progress)
    try:
        _check_download(part, url, sha256, size, announced)
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return dest


def _download_with_retries(url: str, dest: Path, size: int | None,
                           limits: tuple[float, float], retries: int, backoff: float,
                           progress: bool) -> tuple[Path, int]:
    """Run attempts until one completes; returns its temporary file and announced length."""
    last_error: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            return _attempt(url, dest, size, limits, progress)
        except urllib.error.HTTPError as err:
            last_error = err
            if 400 <= err.code < 500:
                raise DatasetError(
                    f"Downloading {url} failed: the server answered HTTP {err.code} "
                    f"({err.reason}). Check the address (or the {MIRROR_ENV_VAR} mirror)."
                ) from err
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            last_error = err
        if attempt < retries:
            time.sleep(backoff * 2 ** (attempt - 1))
    reason = getattr(last_error, "reason", last_error)
    raise DatasetError(
        f"Could not download {url} after {retries} attempts ({reason}). "
        "Are you offline, or is the server down or too slow?"
    ) from last_error


def _attempt(url: str, dest: Path, size: int | None, limits: tuple[float, float],
             progress: bool) -> tuple[Path, int]:
    """One GET into a new temporary file beside ``dest``; deleted if the attempt fails."""
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    part = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            announced = _stream(url, out, size, limits, progress, dest.name)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return part, announced


def _stream(url: str, out, size: int | None, limits: tuple[float, float], progress: bool,
            label: str) -> int:
    """Copy the response body to ``out`` within the deadline; returns Content-Length (or 0)."""
    from tqdm.auto import tqdm

    timeout, deadline = limits
    stop_at = monotonic() + deadline
    with urllib.request.urlopen(url, timeout=timeout) as response:
        announced = int(response.headers.get("Content-Length") or 0)
        with tqdm(total=announced or size, unit="B", unit_scale=True, desc=label,
                  disable=not progress) as bar:
            while chunk := response.read1(1 << 16):  # one read: returns what has arrived
                out.write(chunk)
                bar.update(len(chunk))
                if monotonic() > stop_at:
                    raise TimeoutError(f"the attempt passed its {deadline:g} s deadline after "
                                       f"{out.tell()} bytes")
    # http.client does not raise when the server closes before Content-Length.
    if announced and out.tell() != announced:
        raise ConnectionError(f"connection closed after {out.tell()} of {announced} bytes")
    return announced


def _check_download(part: Path, url: str, sha256: str | None, size: int | None,
                    announced: int) -> None:
    """Raise ChecksumError if the complete download has the wrong size or SHA-256."""
    where = f"Check the address (or the {MIRROR_ENV_VAR} mirror) or download it yourself."
    got = part.stat().st_size
    if size is not None and got != size:
        cause = ("the server sent a different file (for example, a mirror that serves "
                 "another version)" if announced else "the server sent a different file, or "
                 "(it announced no length) the connection broke")
        raise ChecksumError(f"Downloaded {got} bytes from {url} but expected {size}: "
                            f"{cause}. The file was deleted. {where}")
    actual = sha256_of(part) if sha256 is not None else None
    if actual is not None and actual != sha256.lower():
        raise ChecksumError(f"The file downloaded from {url} has SHA-256 {actual}, expected "
                            f"{sha256}: the server sent a different file (for example, a "
                            f"mirror that serves another version). It was deleted. {where}")


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

    The file is checked against its pinned SHA-256 first, so a truncated copy is refused.

    Args:
        name: ``"ml-100k"`` or ``"ml-1m"``.
        data_dir: cache folder (see :func:`load_movielens`).

    Returns:
        A table ``user_id, gender, age, occupation, zip_code``. In ml-1m ``age`` is an age
        group and ``occupation`` a code (see the dataset's README); in ml-100k they are the
        age in years and the occupation's name.

    Raises:
        ValueError: ``name`` has no user table.
        DatasetError, ChecksumError: see :func:`load_movielens`.

    Loading data is explained in notebooks 00 and 01.
    """
    if name not in USER_FILES:
        raise ValueError(f"{name!r} has no user table; only 'ml-100k' and 'ml-1m' do")
    folder = fetch_movielens(name, data_dir)  # verifies the user file too
    return read_users_file(folder, name)


def read_users_file(folder: str | Path, name: str) -> pd.DataFrame:
    """Parse ``u.user`` (ml-100k, ``|``-separated) or ``users.dat`` (ml-1m, ``::``).

    Args:
        folder: the folder that holds the file.
        name: ``"ml-100k"`` or ``"ml-1m"``.

    Returns:
        See :func:`load_users`.

    Raises:
        ValueError: ``name`` has no user table.
        DatasetError: the file is missing or does not have the dataset's number of users.

    Explained in notebook 00.
    """
    if name not in USER_FILES:
        raise ValueError(f"{name!r} has no user table; only 'ml-100k' and 'ml-1m' do")
    filename, n_users = USER_FILES[name]
    path = Path(folder) / filename
    if not path.is_file():
        raise DatasetError(f"{path} is missing: the {name} folder is incomplete. Delete it "
                           f"with clear_cache({name!r}) and load again to download it afresh.")
    if name == "ml-100k":
        users = pd.read_csv(path, sep="|", header=None, encoding="latin-1",
                            names=["user_id", "age", "gender", "occupation", "zip_code"],
                            dtype={"zip_code": str})
    else:
        users = _read_double_colon(path, ["user_id", "gender", "age", "occupation",
                                          "zip_code"], "latin-1")
        users = users.astype({"age": "int64", "occupation": "int64"})
    if len(users) != n_users:
        raise DatasetError(f"{path} has {len(users)} users but {name} has {n_users}: the file "
                           f"is truncated or not {name}'s. Delete it with "
                           f"clear_cache({name!r}) and load again.")
    return users[["user_id", "gender", "age", "occupation", "zip_code"]]


def clear_cache(name: str, data_dir: str | Path | None = None) -> None:
    """Delete a downloaded dataset from the cache, so the next load downloads it again.

    Deletes the unpacked folder, a zip kept from an interrupted unpacking, and temporary
    files that stopped downloads or unpackings left behind.

    Raises:
        ValueError: unknown ``name``.

    Loading data is explained in notebooks 00 and 01.
    """
    spec = _remote_spec(name)
    root = _cache_root(data_dir)
    shutil.rmtree(root / spec.folder, ignore_errors=True)
    (root / spec.archive).unlink(missing_ok=True)
    for pattern in (f".{spec.folder}.*.unpacking", f".{spec.folder}.*.old"):
        for path in root.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(f".{spec.archive}.*.part"):
        path.unlink(missing_ok=True)
