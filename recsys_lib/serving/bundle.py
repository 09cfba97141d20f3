"""Model bundles: everything the service needs, in one folder with checksums (notebook 12).

A bundle folder holds::

    model.keras       the trained SASRec (SASRecRecommender.save)
    items.csv         item_id,title,genres of every item the model knows
    popularity.csv    item_id,count, most popular first (the cold-start fallback)
    manifest.json     model_version, dataset, trained_at (UTC), test metrics, max_len,
                      n_items, d_model and files: {name: sha256}

:func:`load_bundle` checks every SHA-256 before it reads anything, so a file changed by one
byte (a truncated copy, a bad disk, a hand edit) is refused with :class:`BundleError` naming
the file, and a server never starts serving a half-copied model.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MODEL_FILE = "model.keras"
ITEMS_FILE = "items.csv"
POPULARITY_FILE = "popularity.csv"
MANIFEST_FILE = "manifest.json"
#: The files whose SHA-256 the manifest records, in the order they are written.
BUNDLE_FILES = (MODEL_FILE, ITEMS_FILE, POPULARITY_FILE)
#: Keys every manifest must have.
MANIFEST_KEYS = ("model_version", "dataset", "trained_at", "metrics", "max_len", "n_items",
                 "files")
EXPORT_ADVICE = ("export the bundle again with `python -m recsys_lib.serving.export "
                 "--dataset NAME --out BUNDLE`")


class BundleError(ValueError):
    """A damaged or incomplete bundle: the message names the file and says what to do.

    Notebook 12 explains it.
    """


@dataclass
class Bundle:
    """A loaded, verified bundle.

    Attributes:
        path: the bundle folder.
        manifest: the parsed ``manifest.json``.
        recommender: the :class:`~recsys_lib.models.sasrec.SASRecRecommender`.
        items: item table indexed by ``item_id`` (columns ``title, genres``).
        popularity: item ids, most popular first.
        popularity_counts: their interaction counts (same order).

    Notebook 12 explains it.
    """

    path: Path
    manifest: dict
    recommender: Any
    items: pd.DataFrame
    popularity: np.ndarray
    popularity_counts: np.ndarray

    @property
    def model_version(self) -> str:
        """The version string of the manifest (every response carries it)."""
        return str(self.manifest["model_version"])


def file_sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB chunks.

    Notebook 12 explains it.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_version(dataset: str, trained_at: datetime, model_sha: str) -> str:
    """A readable, unique version: ``sasrec-<dataset>-<UTC time>-<first 8 hex of the model>``.

    Notebook 12 explains it.
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset)
    return f"sasrec-{safe}-{trained_at:%Y%m%dT%H%M%SZ}-{model_sha[:8]}"


def item_table(recommender, items: pd.DataFrame | None) -> pd.DataFrame:
    """``item_id, title, genres`` for every item the model knows (missing titles -> "").

    Args:
        recommender: a fitted SASRecRecommender (its ``items_.ids_`` are the catalogue).
        items: the dataset's item table (``item_id, title, genres``), or None.

    Returns:
        A DataFrame in the model's item order.

    Notebook 12 explains it.
    """
    ids = pd.Series(np.asarray(recommender.items_.ids_), name="item_id")
    table = pd.DataFrame({"item_id": ids})
    if items is not None:
        extra = items.drop_duplicates("item_id").set_index("item_id")
        for column in ("title", "genres"):
            if column in extra:
                table[column] = ids.map(extra[column]).astype("string").fillna("").to_numpy()
    for column in ("title", "genres"):
        if column not in table:
            table[column] = ""
    return table


def popularity_table(recommender, interactions: pd.DataFrame) -> pd.DataFrame:
    """``item_id, count`` of the model's items in ``interactions``, most popular first.

    Items the model knows but ``interactions`` never mentions get count 0 (they come last).
    Ties keep the model's item order, so the table is reproducible.

    Notebook 12 explains it.
    """
    ids = np.asarray(recommender.items_.ids_)
    counts = interactions["item_id"].value_counts()
    table = pd.DataFrame({"item_id": ids,
                          "count": pd.Series(ids).map(counts).fillna(0).astype("int64")})
    return table.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)


def export_bundle(recommender, interactions: pd.DataFrame, items: pd.DataFrame | None,
                  out: str | Path, *, dataset: str, metrics: dict,
                  model_version: str | None = None) -> Path:
    """Write a bundle folder for a fitted SASRec recommender.

    Args:
        recommender: a fitted (or loaded) SASRecRecommender.
        interactions: the interactions to count for the popularity fallback (``item_id``).
        items: the dataset's item table (``item_id, title, genres``), or None.
        out: the bundle folder (created; the four files in it are overwritten).
        dataset: the dataset's name, written to the manifest.
        metrics: test metrics, e.g. ``{"ndcg@10": 0.05, ...}`` (written as given).
        model_version: the version string; default :func:`default_version`.

    Returns:
        The bundle folder as a Path.

    Raises:
        ValueError: ``interactions`` has no ``item_id`` column.

    Notebook 12 explains it.
    """
    if "item_id" not in interactions:
        raise ValueError("interactions needs an item_id column to count item popularity")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recommender.save(str(out / MODEL_FILE))
    item_table(recommender, items).to_csv(out / ITEMS_FILE, index=False)
    popularity_table(recommender, interactions).to_csv(out / POPULARITY_FILE, index=False)
    files = {name: file_sha256(out / name) for name in BUNDLE_FILES}
    trained_at = datetime.now(UTC).replace(microsecond=0)
    manifest = {
        "model_version": model_version or default_version(dataset, trained_at,
                                                          files[MODEL_FILE]),
        "dataset": dataset, "trained_at": trained_at.isoformat(),
        "metrics": _plain(metrics), "max_len": int(recommender.max_len),
        "n_items": len(recommender.items_), "d_model": int(recommender.d_model),
        "files": files,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


def _plain(value):
    """NumPy numbers -> Python numbers, recursively, so json.dumps accepts them."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def read_manifest(path: str | Path) -> dict:
    """Parse and check ``manifest.json`` of a bundle folder.

    Returns:
        The manifest dict.

    Raises:
        BundleError: no such folder, no manifest, invalid JSON or missing keys.

    Notebook 12 explains it.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise BundleError(f"no bundle folder at {folder}; {EXPORT_ADVICE}")
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path} is missing: {folder} is not a complete bundle; "
                          f"{EXPORT_ADVICE}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{manifest_path} is not valid JSON ({err}); {EXPORT_ADVICE}") from err
    missing = [key for key in MANIFEST_KEYS if not isinstance(manifest, dict) or key not in
               manifest]
    if missing or not isinstance(manifest["files"], dict):
        raise BundleError(f"{manifest_path} lacks {missing or ['files as a mapping']}; "
                          f"{EXPORT_ADVICE}")
    return manifest


def verify_bundle(path: str | Path) -> dict:
    """Check that every file the manifest lists exists and has its recorded SHA-256.

    Returns:
        The manifest dict.

    Raises:
        BundleError: see :func:`read_manifest`; a listed file missing; a checksum mismatch
            (the message names the file and both digests).

    Notebook 12 explains it.
    """
    folder = Path(path)
    manifest = read_manifest(folder)
    absent = [name for name in BUNDLE_FILES if name not in manifest["files"]]
    if absent:
        raise BundleError(f"{folder / MANIFEST_FILE} has no checksum for {absent}; "
                          f"{EXPORT_ADVICE}")
    for name, expected in manifest["files"].items():
        file = folder / name
        if not file.is_file():
            raise BundleError(f"{file} is missing from the bundle; {EXPORT_ADVICE}")
        actual = file_sha256(file)
        if actual != expected:
            raise BundleError(f"{file} is damaged: its SHA-256 is {actual}, the manifest says "
                              f"{expected}. Copy the bundle again or {EXPORT_ADVICE}")
    return manifest


def load_bundle(path: str | Path) -> Bundle:
    """Verify a bundle's checksums, then load its model, item table and popularity.

    Imports TensorFlow (quietly) the first time it is called.

    Args:
        path: the bundle folder written by :func:`export_bundle`.

    Returns:
        A :class:`Bundle`.

    Raises:
        BundleError: a missing or damaged file, bad JSON, or files that do not fit together
            (the model's item count differs from the manifest's). The message names the file
            and says to export the bundle again.

    Notebook 12 explains it.
    """
    folder = Path(path)
    manifest = verify_bundle(folder)
    recommender = _load_model(folder / MODEL_FILE)
    if len(recommender.items_) != manifest["n_items"]:
        raise BundleError(f"{folder / MODEL_FILE} knows {len(recommender.items_)} items, the "
                          f"manifest says {manifest['n_items']}; {EXPORT_ADVICE}")
    items = _read_csv(folder / ITEMS_FILE, ("item_id", "title", "genres"))
    items["title"] = items["title"].fillna("").astype(str)
    items["genres"] = items["genres"].fillna("").astype(str)
    popularity = _read_csv(folder / POPULARITY_FILE, ("item_id", "count"))
    return Bundle(path=folder, manifest=manifest, recommender=recommender,
                  items=items.set_index("item_id"),
                  popularity=popularity["item_id"].to_numpy(np.int64),
                  popularity_counts=popularity["count"].to_numpy(np.int64))


def _load_model(path: Path):
    """SASRecRecommender.load with TensorFlow imported quietly; errors become BundleError."""
    from recsys_lib.config import import_tensorflow_quietly

    import_tensorflow_quietly()
    from recsys_lib.models.sasrec import SASRecRecommender

    try:
        return SASRecRecommender.load(str(path))
    except (OSError, ValueError) as err:
        raise BundleError(f"{path} could not be loaded ({err}); {EXPORT_ADVICE}") from err


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a bundle CSV and check its columns (BundleError otherwise)."""
    try:
        table = pd.read_csv(path, keep_default_na=False, na_values={"title": [], "genres": []})
    except (ValueError, UnicodeDecodeError) as err:
        raise BundleError(f"{path} is not a readable CSV ({err}); {EXPORT_ADVICE}") from err
    missing = [c for c in columns if c not in table]
    if missing:
        raise BundleError(f"{path} lacks the column(s) {missing}; {EXPORT_ADVICE}")
    return table[list(columns)]
