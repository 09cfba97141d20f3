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

from recsys_lib.checks import check_float, check_int

SHORT_USER_POLICIES = ("train", "drop", "error")


@dataclass
class Split:
    """The parts of a split plus what happened to users who could not be split.

    Attributes:
        train, val, test: the parts (``val`` may be empty when no validation was asked for).
        dropped: rows removed on purpose (``short_users="drop"``); empty otherwise.
        notes: counts a notebook can print (see :meth:`summary`).

    Explained in notebook 01.
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


def _check_fraction(name: str, value: float) -> float:
    """A share of rows: a finite number in [0, 1) (ArgumentError otherwise)."""
    return check_float(name, value, strict=False, maximum=1.0)


def _check_fraction_sum(test_frac: float, val_frac: float) -> None:
    if test_frac + val_frac >= 1:
        raise ValueError(f"test_frac + val_frac must be < 1 so that rows are left for "
                         f"training, got {test_frac} + {val_frac} = {test_frac + val_frac}")


def _check_unique_pairs(ratings: pd.DataFrame) -> None:
    """Refuse repeated (user, item) pairs: a held-out item would also be in train."""
    repeated = ratings.duplicated(["user_id", "item_id"])
    if repeated.any():
        user, item = ratings.loc[repeated, ["user_id", "item_id"]].iloc[0]
        raise ValueError(
            f"ratings has {int(repeated.sum())} duplicated (user_id, item_id) pair(s), e.g. "
            f"user {user}, item {item}: a held-out item would also stay in train, where it "
            "counts as seen and can never be recommended. Keep one row per pair first: "
            "recsys_lib.preprocessing.clean_ratings(ratings) keeps the latest (notebook 01)."
        )


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
        ValueError: empty input, missing columns, or fractions outside [0, 1) (or not
            numbers) or summing to 1 or more.

    Explained in notebook 01.
    """
    _check_ratings(ratings, ("user_id", "item_id", "timestamp"))
    test_frac = _check_fraction("test_frac", test_frac)
    val_frac = _check_fraction("val_frac", val_frac)
    _check_fraction_sum(test_frac, val_frac)
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
    test_start: int | pd.Timestamp | None = None,
    val_start: int | pd.Timestamp | None = None,
) -> Split:
    """Cut all interactions at one global time: the past trains, the future tests.

    Nothing at or after the first cut-off is in training. With validation, the parts are
    ``train: t < val_start``, ``val: val_start <= t < test_start``, ``test: t >= test_start``.

    Args:
        ratings: table with ``user_id, item_id, timestamp``; timestamps are numbers (e.g.
            Unix seconds) or datetimes (``datetime64``).
        test_frac: used when ``test_start`` is None: the cut-off is the timestamp at this
            quantile from the end, so roughly this share of rows is in test (more if many
            rows share the cut-off time, since ties all go to the later part).
        val_frac: likewise for validation, counted before test.
        test_start: explicit cut-off time for test (overrides ``test_frac``), of the same
            kind as the timestamps (a number, or a date such as ``pd.Timestamp``).
        val_start: explicit cut-off time for validation (overrides ``val_frac``).

    Returns:
        A :class:`Split`; ``notes`` holds the cut-offs (ints for integer timestamps,
        ``pd.Timestamp`` for datetimes) and how many test users have no training history
        (cold-start users, which a global cut-off always creates).

    Raises:
        ValueError: bad input, a fraction outside [0, 1), ``test_frac + val_frac >= 1``,
            ``val_start > test_start``, or cut-offs that leave no training rows.
        TypeError: timestamps that are neither numbers nor datetimes, or a cut-off of the
            other kind.

    Explained in notebook 01.
    """
    _check_ratings(ratings, ("user_id", "item_id", "timestamp"))
    ts = ratings["timestamp"]
    _check_timestamps(ts)
    fractions = (test_frac, val_frac)
    # the first cut-off was given, not computed from the fractions
    given = val_start is not None or (test_start is not None and val_frac == 0)
    test_start, val_start = _cutoffs(ts, fractions, test_start, val_start)
    if val_start > test_start:
        raise ValueError(f"val_start ({val_start}) must not be after test_start ({test_start})")
    train = ratings[(ts < val_start).to_numpy()]
    if train.empty:
        raise ValueError(_no_training_message(ts, None if given else fractions, val_start))
    val = ratings[((ts >= val_start) & (ts < test_start)).to_numpy()]
    test = ratings[(ts >= test_start).to_numpy()]
    known = set(train["user_id"])
    return Split(
        train=train, val=val, test=test, dropped=_empty_like(ratings),
        notes={
            "kind": "temporal", "val_start": _note(val_start, ts),
            "test_start": _note(test_start, ts),
            "test_users_without_history": int(test["user_id"].drop_duplicates()
                                               .map(lambda u: u not in known).sum()),
        },
    )


def _is_datetime(ts: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(ts)


def _check_timestamps(ts: pd.Series) -> None:
    numeric = pd.api.types.is_numeric_dtype(ts) and not pd.api.types.is_bool_dtype(ts)
    if not (numeric or _is_datetime(ts)):
        raise TypeError(f"timestamp must hold numbers (e.g. Unix seconds) or datetimes, got "
                        f"dtype {ts.dtype}; convert it with pd.to_datetime(...) first")


def _cutoffs(ts: pd.Series, fractions: tuple[float, float], test_start, val_start) -> tuple:
    """The test and validation cut-off times, from the fractions where not given."""
    test_frac, val_frac = fractions
    ordered = ts.sort_values(kind="stable").reset_index(drop=True)
    n = len(ordered)
    if test_start is None:
        test_frac = _check_fraction("test_frac", test_frac)
        test_start = ordered.iloc[min(n - 1, int(np.floor(n * (1 - test_frac))))]
    else:
        test_start = _as_time("test_start", test_start, ts)
    if val_start is None:
        val_frac = _check_fraction("val_frac", val_frac)
        _check_fraction_sum(test_frac, val_frac)
        val_start = test_start if val_frac == 0 else ordered.iloc[
            int(np.floor(n * (1 - test_frac - val_frac)))]
    else:
        val_start = _as_time("val_start", val_start, ts)
    return test_start, val_start


def _as_time(name: str, value, ts: pd.Series):
    """A cut-off given by the caller, checked to be of the same kind as the timestamps."""
    is_number = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    if _is_datetime(ts) and not is_number:
        return pd.Timestamp(value)
    if not _is_datetime(ts) and is_number:
        return value
    kind = "a date such as pd.Timestamp('2012-06-09')" if _is_datetime(ts) else "a number"
    raise TypeError(f"{name} must be {kind}, like the timestamp column, got {value!r}")


def _note(cutoff, ts: pd.Series):
    """A cut-off as notes show it: int for integer timestamps, pd.Timestamp for dates."""
    if _is_datetime(ts):
        return pd.Timestamp(cutoff)
    return int(cutoff) if pd.api.types.is_integer_dtype(ts) else float(cutoff)


def _no_training_message(ts: pd.Series, fractions: tuple[float, float] | None,
                         val_start) -> str:
    """Why the training part is empty; ``fractions`` is None when the cut-offs were given."""
    earliest = ts.min()
    tied = int((ts == earliest).sum())
    fix = "pass val_start / test_start later than the earliest timestamp"
    if fractions is not None:
        fix = (f"lower test_frac and val_frac (now {fractions[0]} and {fractions[1]}; the "
               f"earliest timestamp alone holds {tied / len(ts):.1%} of the rows), or {fix}")
    return (f"this split leaves no training rows: every timestamp is at or after the first "
            f"cut-off {val_start} (the earliest timestamp, {earliest}, is shared by {tied} of "
            f"{len(ts)} rows). To fix it, {fix}.")


def order_by_user_time(ratings: pd.DataFrame) -> pd.DataFrame:
    """Sort by user, then timestamp; ties keep the input's order (a stable sort).

    Args:
        ratings: table with ``user_id`` and ``timestamp``.

    Returns:
        The same rows, reordered (index kept).

    Explained in notebook 01.
    """
    order = np.lexsort(
        (np.arange(len(ratings)), ratings["timestamp"].to_numpy(),
         ratings["user_id"].to_numpy())
    )
    return ratings.iloc[order]


def shuffle_ties(ratings: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Shuffle the rows so that interactions with equal timestamps get a random order.

    Every split and sequence model of the course orders a user's interactions by time and
    keeps the table's order for ties. MovieLens files list each user's ratings by ascending
    item id, and many ratings share a timestamp (a user rating a batch of films in one
    minute), so which tied film counts as "last" is decided by its id, not by the user.
    Shuffling first replaces that rule by a random one: a control for how much a result
    depends on it (Hidasi & Czapp, RecSys 2023).

    Args:
        ratings: any table (its index is kept).
        seed: seeds the shuffle; the same seed gives the same order.

    Returns:
        The same rows in a random order.

    Explained in notebook 01; notebook 10 measures what the tie rule does to the results.
    """
    order = np.random.default_rng(check_int("seed", seed, minimum=0)).permutation(len(ratings))
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
        ValueError: bad input, unknown policy, short users with ``short_users="error"``, or a
            repeated (user, item) pair (remove them with
            :func:`recsys_lib.preprocessing.clean_ratings`).

    Explained in notebook 01.
    """
    _check_ratings(ratings, ("user_id", "item_id", "timestamp"))
    if short_users not in SHORT_USER_POLICIES:
        raise ValueError(f"short_users must be one of {SHORT_USER_POLICIES}, got {short_users!r}")
    _check_unique_pairs(ratings)
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
