"""Cleaning, id encoding, normalisation, implicit feedback and k-core filtering (notebook 01)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from recsys_lib.checks import check_ints
from recsys_lib.splits import order_by_user_time


def _require(ratings: pd.DataFrame, columns: Iterable[str]) -> None:
    if not isinstance(ratings, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(ratings).__name__}")
    missing = [c for c in columns if c not in ratings.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; the table has {list(ratings.columns)}")
    if ratings.empty:
        raise ValueError("the ratings table is empty")


def clean_ratings(
    ratings: pd.DataFrame, min_rating: float = 0.5, max_rating: float = 5.0
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Remove rows with missing fields, ratings outside the scale, and duplicate pairs.

    When a user rated the same item more than once, the latest rating is kept (ties in
    time: the later row in the table), as a rating service would overwrite the old one.

    Args:
        ratings: table with ``user_id, item_id, rating, timestamp``.
        min_rating, max_rating: the valid scale, inclusive.

    Returns:
        ``(clean, report)``: the kept rows (original index, original order) and how many
        rows each rule removed: ``{"missing": .., "out_of_range": .., "duplicates": ..}``.

    Raises:
        ValueError: missing columns, empty table, or ``min_rating > max_rating``.

    Explained in notebook 01.
    """
    _require(ratings, ("user_id", "item_id", "rating", "timestamp"))
    if min_rating > max_rating:
        raise ValueError(f"min_rating ({min_rating}) is above max_rating ({max_rating})")
    complete = ratings.dropna(subset=["user_id", "item_id", "rating", "timestamp"])
    in_range = complete[complete["rating"].between(min_rating, max_rating)]
    latest = order_by_user_time(in_range)
    deduped = latest[~latest.duplicated(["user_id", "item_id"], keep="last")]
    clean = ratings.loc[ratings.index.isin(deduped.index)]
    report = {
        "missing": len(ratings) - len(complete),
        "out_of_range": len(complete) - len(in_range),
        "duplicates": len(in_range) - len(deduped),
    }
    return clean, report


class IdEncoder:
    """Map arbitrary ids (e.g. MovieLens movie ids) to 0..n-1 and back.

    Embedding tables and matrices need contiguous indices; original ids have gaps.
    ``fit`` assigns indices in sorted order of the ids, so the result does not depend on
    row order. Notebook 01 builds one by hand first.
    """

    def __init__(self) -> None:
        self.ids_: np.ndarray | None = None
        self._index: dict = {}

    def fit(self, ids: Iterable) -> IdEncoder:
        """Learn the ids. Raises ValueError when there are none."""
        unique = np.unique(np.asarray(list(ids) if not hasattr(ids, "__array__") else ids))
        if unique.size == 0:
            raise ValueError("cannot fit an IdEncoder on no ids")
        self.ids_ = unique
        self._index = {v: i for i, v in enumerate(unique.tolist())}
        return self

    def __len__(self) -> int:
        return 0 if self.ids_ is None else len(self.ids_)

    def _fitted(self) -> np.ndarray:
        if self.ids_ is None:
            raise RuntimeError("call fit() before transform() or inverse_transform()")
        return self.ids_

    def transform(self, ids: Iterable) -> np.ndarray:
        """Indices of ``ids``; raises ValueError naming ids that were not seen in fit."""
        self._fitted()
        values = np.asarray(ids).tolist()
        unknown = [v for v in values if v not in self._index]
        if unknown:
            raise ValueError(
                f"{len(unknown)} unknown id(s), e.g. {unknown[:5]}: they were not in the "
                "data the encoder was fitted on (a cold-start user or item?)"
            )
        return np.fromiter((self._index[v] for v in values), dtype=np.int64, count=len(values))

    def inverse_transform(self, indices: Iterable[int]) -> np.ndarray:
        """Original ids of ``indices``; raises ValueError for indices outside 0..n-1."""
        ids = self._fitted()
        idx = np.asarray(indices, dtype=np.int64)
        bad = idx[(idx < 0) | (idx >= len(ids))]
        if bad.size:
            raise ValueError(f"indices out of range 0..{len(ids) - 1}: {bad[:5].tolist()}")
        return ids[idx]


def encode_ids(ratings: pd.DataFrame) -> tuple[pd.DataFrame, IdEncoder, IdEncoder]:
    """Add ``user_idx`` and ``item_idx`` columns (0..n-1) to a ratings table.

    Returns:
        ``(encoded, user_encoder, item_encoder)``; ``encoded`` is a copy.

    Explained in notebook 01.
    """
    _require(ratings, ("user_id", "item_id"))
    users = IdEncoder().fit(ratings["user_id"])
    items = IdEncoder().fit(ratings["item_id"])
    encoded = ratings.assign(
        user_idx=users.transform(ratings["user_id"]),
        item_idx=items.transform(ratings["item_id"]),
    )
    return encoded, users, items


def mean_center(ratings: pd.DataFrame, by: str = "user_id") -> pd.Series:
    """Each rating minus the mean rating of its user (or item, with ``by="item_id"``).

    Explained in notebook 01.
    """
    _require(ratings, (by, "rating"))
    return ratings["rating"] - ratings.groupby(by)["rating"].transform("mean")


def zscore(ratings: pd.DataFrame, by: str = "user_id") -> pd.Series:
    """Mean-centred ratings divided by the group's standard deviation (population, ddof=0).

    A user who gave every item the same rating (standard deviation 0) gets z = 0 for all
    of them rather than a division by zero.

    Explained in notebook 01.
    """
    _require(ratings, (by, "rating"))
    grouped = ratings.groupby(by)["rating"]
    std = grouped.transform(lambda r: r.std(ddof=0)).replace(0.0, np.nan)
    return ((ratings["rating"] - grouped.transform("mean")) / std).fillna(0.0)


def to_implicit(ratings: pd.DataFrame, threshold: float = 4.0) -> pd.DataFrame:
    """Turn explicit ratings into implicit positives: keep rows with rating >= threshold.

    Returns:
        The kept rows without the ``rating`` column (original index).

    Explained in notebook 01.
    """
    _require(ratings, ("rating",))
    return ratings.loc[ratings["rating"] >= threshold].drop(columns="rating")


def k_core(ratings: pd.DataFrame, k_users: int = 5, k_items: int = 5) -> pd.DataFrame:
    """Keep the largest subset where every user and every item has at least k interactions.

    Removing a rare item can push a user below ``k_users`` and the other way round, so
    the filter repeats until nothing changes.

    Args:
        ratings: table with ``user_id`` and ``item_id``.
        k_users, k_items: minimum interactions per user / per item (>= 1).

    Returns:
        The kept rows (original index); may be empty if k is too large.

    Raises:
        ValueError: k < 1.

    Explained in notebook 01.
    """
    _require(ratings, ("user_id", "item_id"))
    check_ints(k_users=k_users, k_items=k_items)
    current = ratings
    while True:
        user_counts = current.groupby("user_id")["user_id"].transform("size")
        item_counts = current.groupby("item_id")["item_id"].transform("size")
        keep = (user_counts >= k_users) & (item_counts >= k_items)
        if keep.all():
            return current
        current = current[keep]
        if current.empty:
            return current
