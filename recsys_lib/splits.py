"""Train / validation / test splits that cannot leak (notebook 01 explains and compares them).

All three functions take a ratings table with at least ``user_id, item_id, timestamp`` and
return a :class:`Split`. Rows keep their original index, so ``split.train.index`` tells which
rows of the input went where. Every input row ends up in exactly one of ``train``, ``val``,
``test`` or ``dropped``; ``dropped`` is only used when you ask for it, and is reported.

Ordering rule (``leave_last_out``): within a user, interactions are ordered by timestamp with
a *stable* sort, so interactions with the same timestamp keep the order they have in the
input table (file order). The "last" interaction is the last one in that order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SHORT_USER_POLICIES = ("train", "drop", "error")


@dataclass
class Split:
    """The parts of a split plus what happened to users who could not be split.

    Attributes:
        train, val, test: the parts (``val`` may be empty when no validation was asked for).
        dropped: rows removed on purpose (``short_users="drop"``); empty otherwise.
        notes: counts a notebook can print (see :meth:`summary`).
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    dropped: pd.DataFrame
    notes: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """A small table: rows and users in each part."""
        parts = {"train": self.train, "val": self.val, "test": self.test,
                 "dropped": self.dropped}
        return pd.DataFrame(
            {
                "rows": {k: len(v) for k, v in parts.items()},
                "users": {k: v["user_id"].nunique() for k, v in parts.items()},
                "items": {k: v["item_id"].nunique() for k, v in parts.items()},
            }
        )


def _check_ratings(ratings: pd.DataFrame, columns: tuple[str, ...]) -> None:
    if not isinstance(ratings, pd.DataFrame):
        raise TypeError(f"ratings must be a pandas DataFrame, got {type(ratings).__name__}")
    missing = [c for c in columns if c not in ratings.columns]
    if missing:
        raise ValueError(
            f"ratings is missing column(s) {missing}; it has {list(ratings.columns)}. "
            "Use recsys_lib.data.load_movielens() or rename your columns."
        )
    if ratings.empty:
        raise ValueError("ratings is empty: there is nothing to split")
    nulls = ratings[list(columns)].isna().sum()
    if nulls.any():
        raise ValueError(f"ratings has missing values in {nulls[nulls > 0].to_dict()}; "
                         "clean them first (notebook 01)")
    if not ratings.index.is_unique:
        raise ValueError("ratings has a duplicated index; call .reset_index(drop=True) first")


def _check_fraction(name: str, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def _empty_like(ratings: pd.DataFrame) -> pd.DataFrame:
    return ratings.iloc[0:0]


def random_split(
    ratings: pd.DataFrame, test_frac: float = 0.2, val_frac: float = 0.0, seed: int = 0
) -> Split:
    """Shuffle all interactions and cut them into train / validation / test.

    This ignores time: a model may train on a user's 2018 ratings and be tested on their
    2015 ones. Notebook 01 shows how much that flatters a score.

    Args:
        ratings: table with ``user_id, item_id, timestamp``.
        test_frac: share of rows in test.
        val_frac: share of rows in validation.
        seed: seed for the shuffle; the same seed gives the same split.

    Returns:
        A :class:`Split`; part sizes are ``round(n * frac)``.

    Raises:
        ValueError: empty input, missing columns, or fractions outside [0, 1) or summing
            to 1 or more.
    """
    _check_ratings(ratings, ("user_id", "item_id", "timestamp"))
    _check_fraction("test_frac", test_frac)
    _check_fraction("val_frac", val_frac)
    if test_frac + val_frac >= 1:
        raise ValueError(f"test_frac + val_frac must be < 1, got {test_frac + val_frac}")
    n = len(ratings)
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(n * test_frac), round(n * val_frac)
    test_pos, val_pos = order[:n_test], order[n_test:n_test + n_val]
    train_pos = np.sort(order[n_test + n_val:])
    return Split(
        train=ratings.iloc[train_pos],
        val=ratings.iloc[np.sort(val_pos)],
        test=ratings.iloc[np.sort(test_pos)],
        dropped=_empty_like(ratings),
        notes={"kind": "random", "seed": seed},
    )


def temporal_split(
    ratings: pd.DataFrame,
    test_frac: float = 0.2,
    val_frac: float = 0.0,
    test_start: int | None = None,
    val_start: int | None = None,
) -> Split:
    """Cut all interactions at one global time: the past trains, the future tests.

    Nothing at or after the first cut-off is in training. With validation, the parts are
    ``train: t < val_start``, ``val: val_start <= t < test_start``, ``test: t >= test_start``.

    Args:
        ratings: table with ``user_id, item_id, timestamp``.
        test_frac: used when ``test_start`` is None: the cut-off is the timestamp at this
            quantile from the end, so roughly this share of rows is in test (more if many
            rows share the cut-off time, since ties all go to the later part).
        val_frac: likewise for validation, counted before test.
        test_start: explicit cut-off timestamp for test (overrides ``test_frac``).
        val_start: explicit cut-off timestamp for validation (overrides ``val_frac``).

    Returns:
        A :class:`Split`; ``notes`` holds the cut-offs and how many test users have no
        training history (cold-start users, which a global cut-off always creates).

    Raises:
        ValueError: bad input, fractions, or ``val_start > test_start``.
    """
    _check_ratings(ratings, ("user_id", "item_id", "timestamp"))
    ts = ratings["timestamp"].to_numpy()
    sorted_ts = np.sort(ts, kind="stable")
    if test_start is None:
        _check_fraction("test_frac", test_frac)
        test_start = int(sorted_ts[min(len(ts) - 1, int(np.floor(len(ts) * (1 - test_frac))))])
    if val_start is None:
        _check_fraction("val_frac", val_frac)
        if test_frac + val_frac >= 1:
            raise ValueError(f"test_frac + val_frac must be < 1, got {test_frac + val_frac}")
        val_start = test_start if val_frac == 0 else int(
            sorted_ts[int(np.floor(len(ts) * (1 - test_frac - val_frac)))]
        )
    if val_start > test_start:
        raise ValueError(f"val_start ({val_start}) must not be after test_start ({test_start})")
    train = ratings[ts < val_start]
    val = ratings[(ts >= val_start) & (ts < test_start)]
    test = ratings[ts >= test_start]
    known = set(train["user_id"])
    return Split(
        train=train, val=val, test=test, dropped=_empty_like(ratings),
        notes={
            "kind": "temporal", "val_start": int(val_start), "test_start": int(test_start),
            "test_users_without_history": int(test["user_id"].drop_duplicates()
                                               .map(lambda u: u not in known).sum()),
        },
    )


def order_by_user_time(ratings: pd.DataFrame) -> pd.DataFrame:
    """Sort by user, then timestamp; ties keep the input's order (a stable sort).

    Args:
        ratings: table with ``user_id`` and ``timestamp``.

    Returns:
        The same rows, reordered (index kept).
    """
    order = np.lexsort(
        (np.arange(len(ratings)), ratings["timestamp"].to_numpy(),
         ratings["user_id"].to_numpy())
    )
    return ratings.iloc[order]


def leave_last_out(
    ratings: pd.DataFrame, validation: bool = True, short_users: str = "train"
) -> Split:
    """Per user: the last interaction is test, the one before is validation, the rest train.

    Args:
        ratings: table with ``user_id, item_id, timestamp``.
        validation: hold out the second-to-last interaction as validation. Without it each
            user needs 2 interactions, with it 3.
        short_users: what to do with users who have fewer interactions than that:
            ``"train"`` keeps all their rows in train (they are still learned from but not
            evaluated), ``"drop"`` moves them to ``split.dropped``, ``"error"`` raises.

    Returns:
        A :class:`Split`; ``notes["short_users"]`` counts the users the policy applied to.

    Raises:
        ValueError: bad input, unknown policy, or short users with ``short_users="error"``.
    """
    _check_ratings(ratings, ("user_id", "item_id", "timestamp"))
    if short_users not in SHORT_USER_POLICIES:
        raise ValueError(f"short_users must be one of {SHORT_USER_POLICIES}, got {short_users!r}")
    need = 3 if validation else 2
    ordered = order_by_user_time(ratings)
    users = ordered["user_id"].to_numpy()
    # position from the end within each user: 0 = last, 1 = second to last, ...
    from_end = ordered.groupby("user_id", sort=False).cumcount(ascending=False).to_numpy()
    counts = ordered.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
    short = counts < need
    n_short = int(pd.unique(users[short]).size)
    if n_short and short_users == "error":
        raise ValueError(
            f"{n_short} user(s) have fewer than {need} interactions, e.g. user "
            f"{users[short][0]}; use short_users='train' or 'drop', or filter them first"
        )
    is_test = (from_end == 0) & ~short
    is_val = (from_end == 1) & ~short & validation
    is_dropped = short & (short_users == "drop")
    is_train = ~(is_test | is_val | is_dropped)
    return Split(
        train=ordered[is_train],
        val=ordered[is_val],
        test=ordered[is_test],
        dropped=ordered[is_dropped],
        notes={"kind": "leave_last_out", "short_users": n_short,
               "short_user_policy": short_users, "min_interactions": need},
    )
