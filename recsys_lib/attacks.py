"""Dirty data and shilling attacks: inject them, measure what they do, and clean them up.

Three kinds of damage a ratings table can suffer, each injected at a chosen strength::

    noisy = inject_random_interactions(train, share=0.05, seed=0)   # random (user, item) pairs
    doubled = inject_duplicates(train, share=0.05, seed=0)          # double clicks, logging bugs
    attacked = shilling_attack(train, target_item=42, n_profiles=20, filler_size=30,
                               kind="random", seed=0)                # fake profiles pushing 42

Every returned table has a boolean column ``injected`` (True for the rows that were added),
so an experiment can measure what cleaning finds. **Models must never see it**: fit them on
``without_labels(table)``. Apply the damage to the *training part of a split* (e.g.
``protocol_split(ratings).train``), not to the whole table: the test part then stays the
same real interactions in every condition, and a leave-last-out split does not move each
fake profile's last interaction (its target) into the test part.

Shilling (profile injection) attacks, in the taxonomy of Lam & Riedl (WWW 2004) and Mobasher
et al. (ACM TOIT 2007): each fake profile rates the *target* item (the maximum rating, a
"push" attack) plus ``filler_size`` *filler* items that make it look like a real user:

* ``"random"``: random filler items, ratings drawn around the global mean (low knowledge);
* ``"average"``: random filler items, ratings drawn around each item's own mean (needs the
  item means: more knowledge, harder to tell apart from real users);
* ``"bandwagon"``: the most-rated items, rated the maximum (popular items co-occur with
  everyone, so the target gets close to many users).

Here all profiles arrive in a burst near the end of the data (an attack happens recently),
and the target is the last interaction of each profile, so a sequence model learns
"filler -> target".

Measuring: :func:`exposure` (share of users whose top k holds the pushed item) next to
NDCG@10 on the clean test part. Cleaning: :func:`drop_duplicate_interactions` (exact);
:func:`suspicious_profiles` scores every user with unsupervised detectors (RDMA, DegSim, a
time-burst score and a group co-burst score), :func:`flag_suspicious` picks the most
suspicious users (their maximum detector percentile, a review budget), :func:`drop_users`
removes them, and :func:`detection_report` / :func:`detection_auc` use the known fakes only
to *measure* the detection. Random noise cannot be told apart from real taste without
labels; :func:`drop_low_support` is the honest blunt tool (it removes real rare items too).

Explained in notebook 14.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_lib.checks import check_choice, check_float, check_int, check_k

#: The columns every function here needs.
COLUMNS = ("user_id", "item_id", "rating", "timestamp")
#: The label column the injectors add (True: an injected row). Never give it to a model.
LABEL = "injected"
ATTACK_KINDS = ("random", "average", "bandwagon")
DETECTORS = ("rdma", "degsim", "burst", "co_burst")
#: The detectors :func:`flag_suspicious` combines by default. ``burst`` is left out: most
#: genuine MovieLens users rate all their films in one sitting (61% of the bundled users
#: within one day), so a burst alone says little there.
DEFAULT_DETECTORS = ("rdma", "degsim", "co_burst")


# --------------------------------------------------------------------------- helpers
def _check_ratings(ratings: object, name: str = "ratings") -> pd.DataFrame:
    """A non-empty table with the four columns, no missing values, a bool label if any."""
    if not isinstance(ratings, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(ratings).__name__}")
    missing = [c for c in COLUMNS if c not in ratings.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it has "
                         f"{list(ratings.columns)}. Use recsys_lib.data.load_movielens().")
    if ratings.empty:
        raise ValueError(f"{name} is empty: there is nothing to inject into or clean")
    nulls = ratings[list(COLUMNS)].isna().sum()
    if nulls.any():
        raise ValueError(f"{name} has missing values in {nulls[nulls > 0].to_dict()}; "
                         "clean them first (notebook 01)")
    if LABEL in ratings.columns and ratings[LABEL].dtype != bool:
        raise ValueError(f"{name}[{LABEL!r}] must be boolean (True for injected rows), got "
                         f"dtype {ratings[LABEL].dtype}")
    return ratings


def _labelled(ratings: pd.DataFrame) -> pd.DataFrame:
    """A copy with the ``injected`` column (False everywhere unless it was there)."""
    out = ratings.reset_index(drop=True).copy()
    if LABEL not in out.columns:
        out[LABEL] = False
    return out


def _append(ratings: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``ratings`` (labelled) followed by ``new`` rows (labelled True), original dtypes."""
    out = _labelled(ratings)
    new = new[list(COLUMNS)].astype({c: ratings[c].dtype for c in COLUMNS})
    new[LABEL] = True
    return pd.concat([out, new], ignore_index=True)


def _share(share: object) -> float:
    return check_float("share", share, strict=False, maximum=1.0, strict_maximum=False)


def _snap(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Each value moved to the nearest value of the sorted ``grid`` (e.g. the half stars)."""
    pos = np.clip(np.searchsorted(grid, values), 1, len(grid) - 1) if len(grid) > 1 else None
    if pos is None:
        return np.full(len(values), grid[0], dtype=float)
    left, right = grid[pos - 1], grid[pos]
    return np.where(np.abs(values - left) <= np.abs(right - values), left, right)


def without_labels(table: pd.DataFrame) -> pd.DataFrame:
    """The table without the ``injected`` column: what a model may be trained on.

    Args:
        table: a table from one of the injectors (or any table; then a copy of it).

    Returns:
        A copy without the ``injected`` column.

    Explained in notebook 14.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    return table.drop(columns=[LABEL], errors="ignore")


def fake_users(table: pd.DataFrame) -> np.ndarray:
    """Users every row of whom was injected: the fake profiles of a shilling attack.

    Users who only received some random or duplicated rows are genuine and not listed.

    Args:
        table: a labelled table (with the ``injected`` column).

    Returns:
        The sorted user ids.

    Raises:
        ValueError: the table has no ``injected`` column.

    Explained in notebook 14.
    """
    if LABEL not in table.columns:
        raise ValueError(f"table has no {LABEL!r} column: only the injectors' tables say "
                         "which rows are fake")
    all_injected = table.groupby("user_id")[LABEL].all()
    return np.sort(all_injected.index[all_injected.to_numpy()].to_numpy())


# --------------------------------------------------------------------------- injectors
def inject_random_interactions(ratings: pd.DataFrame, share: float,
                               seed: int = 0) -> pd.DataFrame:
    """Add random (user, item) interactions: noise, e.g. mis-clicks or bot traffic.

    ``round(share * len(ratings))`` new rows; each pairs a uniformly drawn existing user with
    a uniformly drawn existing item that the user has not interacted with yet (no new pair
    repeats an existing one or another new one). Ratings are drawn from the table's own
    rating distribution; each timestamp is uniform in the user's active period (first to
    last timestamp, both included), so the noise interleaves in time with the real rows.

    Args:
        ratings: ``user_id, item_id, rating, timestamp`` (other columns are kept; new rows
            get missing values there).
        share: new rows as a share of ``len(ratings)``, in [0, 1].
        seed: seeds the draw.

    Returns:
        The original rows (in their order) followed by the new ones, index reset, with the
        boolean column ``injected`` (drop it with :func:`without_labels` before fitting).

    Raises:
        ValueError: a bad table or share, or fewer free (user, item) pairs than new rows.

    Explained in notebook 14.
    """
    ratings = _check_ratings(ratings)
    share = _share(share)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    n_new = int(round(share * len(ratings)))
    users = np.sort(ratings["user_id"].unique())
    items = np.sort(ratings["item_id"].unique())
    u = np.searchsorted(users, ratings["user_id"].to_numpy())
    i = np.searchsorted(items, ratings["item_id"].to_numpy())
    existing = np.unique(u.astype(np.int64) * len(items) + i)
    total = len(users) * len(items)
    if n_new > total - len(existing):
        raise ValueError(f"cannot add {n_new} new pairs: only {total - len(existing)} "
                         "(user, item) pairs are free; use a smaller share")
    codes = _free_pairs(existing, total, n_new, rng)
    user_ids, item_ids = users[codes // len(items)], items[codes % len(items)]
    span = ratings.groupby("user_id")["timestamp"].agg(["min", "max"]).loc[user_ids]
    first, last = span["min"].to_numpy(np.int64), span["max"].to_numpy(np.int64)
    new = pd.DataFrame({
        "user_id": user_ids, "item_id": item_ids,
        "rating": rng.choice(ratings["rating"].to_numpy(), size=n_new),
        "timestamp": rng.integers(first, last + 1) if n_new else np.zeros(0, np.int64),
    })
    return _append(ratings, new)


def _free_pairs(existing: np.ndarray, total: int, n: int,
                rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct pair codes in ``[0, total)`` that are not in sorted ``existing``."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if total <= 5_000_000:  # small: list the free pairs and draw without replacement
        free = np.setdiff1d(np.arange(total, dtype=np.int64), existing, assume_unique=True)
        return rng.choice(free, size=n, replace=False)
    chosen = np.zeros(0, dtype=np.int64)  # large and sparse: draw, reject, repeat
    while len(chosen) < n:
        draw = rng.integers(0, total, size=2 * (n - len(chosen)) + 100)
        draw = draw[~np.isin(draw, existing)]
        chosen = np.concatenate([chosen, draw[~np.isin(draw, chosen)]])
        _, first = np.unique(chosen, return_index=True)
        chosen = chosen[np.sort(first)]
    return chosen[:n]


def inject_duplicates(ratings: pd.DataFrame, share: float, seed: int = 0,
                      max_delay: int = 600) -> pd.DataFrame:
    """Repeat some rows a little later: accidental double clicks or a logging bug.

    ``round(share * len(ratings))`` rows, drawn without replacement, are copied (same user,
    item and rating) with the timestamp moved 1 to ``max_delay`` seconds later.

    Args:
        ratings: ``user_id, item_id, rating, timestamp`` (other columns are copied too).
        share: copies as a share of ``len(ratings)``, in [0, 1].
        seed: seeds the draw.
        max_delay: the largest delay in seconds (>= 1).

    Returns:
        The original rows followed by the copies, index reset, with the boolean column
        ``injected`` (True for the copies).

    Raises:
        ValueError: a bad table, share or delay.

    Explained in notebook 14.
    """
    ratings = _check_ratings(ratings)
    share = _share(share)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    max_delay = check_int("max_delay", max_delay)
    labelled = _labelled(ratings)
    picked = np.sort(rng.choice(len(ratings), size=int(round(share * len(ratings))),
                                replace=False))
    copies = labelled.iloc[picked].copy()
    delay = rng.integers(1, max_delay + 1, size=len(copies))
    copies["timestamp"] = (copies["timestamp"].to_numpy() + delay).astype(
        ratings["timestamp"].dtype)
    copies[LABEL] = True
    return pd.concat([labelled, copies], ignore_index=True)


def shilling_attack(ratings: pd.DataFrame, target_item, n_profiles: int, filler_size: int,
                    kind: str = "random", seed: int = 0, start_user_id: int | None = None,
                    burst_seconds: int = 86_400) -> pd.DataFrame:
    """Add fake user profiles that push ``target_item`` (a shilling / profile injection attack).

    Each fake profile rates the target with the table's maximum rating and ``filler_size``
    other items (the fillers, never the target), chosen and rated by ``kind``:

    * ``"random"``: fillers drawn uniformly from the catalogue, ratings from a normal
      distribution with the global mean and standard deviation (Lam & Riedl, 2004);
    * ``"average"``: fillers drawn uniformly, each rated around its own item mean (normal
      with the item's mean and standard deviation, the global one for items rated once);
    * ``"bandwagon"``: the ``filler_size`` most-rated items (ties: smaller id first), the
      same for every profile, rated the maximum (Mobasher et al., 2007; their profiles add
      random fillers as well, left out here so that the effect of popularity is clear).

    Drawn ratings are rounded to the nearest rating value that occurs in the table. Each
    profile is one session that starts at a uniform time in the last ``burst_seconds`` of
    the data; its ratings follow each other 5 to 120 seconds apart, fillers first in random
    order and the target last (a sequence model sees "filler -> target").

    Args:
        ratings: ``user_id, item_id, rating, timestamp``.
        target_item: the item id to push; it must occur in ``ratings``.
        n_profiles: number of fake users (>= 1).
        filler_size: filler items per profile (>= 0, at most the number of other items).
        kind: ``"random"``, ``"average"`` or ``"bandwagon"``.
        seed: seeds the draws.
        start_user_id: the first fake user id (then consecutive ids); None: the largest
            existing id + 1.
        burst_seconds: length of the window at the end of the data in which profiles start.

    Returns:
        The original rows followed by the fake profiles' rows, index reset, with the boolean
        column ``injected``. :func:`fake_users` lists the fake ids.

    Raises:
        ValueError: an unknown target item, ``n_profiles < 1``, more fillers than other
            items, an unknown kind, or fake ids that collide with existing users.

    Explained in notebook 14.
    """
    ratings = _check_ratings(ratings)
    n_profiles = check_int("n_profiles", n_profiles)
    filler_size = check_int("filler_size", filler_size, minimum=0)
    kind = check_choice("kind", kind, ATTACK_KINDS)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    burst_seconds = check_int("burst_seconds", burst_seconds)
    counts = ratings["item_id"].value_counts()
    if target_item not in counts.index:
        raise ValueError(f"unknown target item {target_item!r}: it does not occur in ratings; "
                         "pick an item id from ratings['item_id']")
    others = np.sort(counts.index.drop(target_item).to_numpy())
    if filler_size > len(others):
        raise ValueError(f"filler_size={filler_size} is larger than the {len(others)} items "
                         "other than the target; use a smaller filler_size")
    fake_ids = _fake_ids(ratings, n_profiles, start_user_id)
    fillers, filler_ratings = _fillers(ratings, counts, others, n_profiles, filler_size,
                                       kind, rng)
    top = float(ratings["rating"].max())
    items = np.column_stack([fillers, np.full(n_profiles, target_item, dtype=others.dtype)])
    values = np.column_stack([filler_ratings, np.full(n_profiles, top)])
    length = filler_size + 1
    end = int(ratings["timestamp"].max())
    starts = rng.integers(end - burst_seconds, end + 1, size=n_profiles)
    gaps = rng.integers(5, 121, size=(n_profiles, length))
    gaps[:, 0] = 0
    times = starts[:, None] + np.cumsum(gaps, axis=1)
    new = pd.DataFrame({"user_id": np.repeat(fake_ids, length), "item_id": items.ravel(),
                        "rating": values.ravel(), "timestamp": times.ravel()})
    return _append(ratings, new)


def _fake_ids(ratings: pd.DataFrame, n: int, start: int | None) -> np.ndarray:
    existing = ratings["user_id"].to_numpy()
    if start is None:
        start = int(existing.max()) + 1
    start = check_int("start_user_id", start, minimum=0)
    ids = np.arange(start, start + n, dtype=np.int64)
    clash = np.intersect1d(ids, existing)
    if len(clash):
        raise ValueError(f"fake user ids {start}..{start + n - 1} collide with existing users "
                         f"(e.g. {clash[:5].tolist()}); pass start_user_id above "
                         f"{int(existing.max())} or leave it None")
    return ids


def _fillers(ratings: pd.DataFrame, counts: pd.Series, others: np.ndarray, n_profiles: int,
             filler_size: int, kind: str, rng: np.random.Generator):
    """(n_profiles, filler_size) filler item ids and their ratings for one attack kind."""
    grid = np.sort(ratings["rating"].unique())
    shape = (n_profiles, filler_size)
    if kind == "bandwagon":
        ranked = counts.loc[others].sort_index().sort_values(ascending=False, kind="stable")
        chosen = ranked.index.to_numpy()[:filler_size]
        return np.tile(chosen, (n_profiles, 1)), np.full(shape, grid[-1])
    fillers = np.stack([rng.choice(others, size=filler_size, replace=False)
                        for _ in range(n_profiles)])
    overall = ratings["rating"]
    spread = float(overall.std(ddof=0))
    if kind == "random":
        drawn = rng.normal(float(overall.mean()), spread, size=shape)
    else:  # average
        stats = ratings.groupby("item_id")["rating"].agg(["mean", "std", "size"])
        stats["std"] = stats["std"].where(stats["size"] >= 2, spread).fillna(spread)
        chosen = stats.loc[fillers.ravel()]
        drawn = rng.normal(chosen["mean"].to_numpy(), chosen["std"].to_numpy()).reshape(shape)
    return fillers, _snap(drawn.ravel(), grid).reshape(shape)


# --------------------------------------------------------------------------- measuring
def exposure(recommendations: Mapping, item, k: int = 10) -> float:
    """Share of users whose top ``k`` recommendations contain ``item``.

    Args:
        recommendations: user -> ranked list of item ids (best first), e.g. from
            ``model.recommend(users, k)``.
        item: the item id (e.g. the attack's target).
        k: cut-off (>= 1); lists shorter than k are used whole.

    Returns:
        A share in [0, 1].

    Raises:
        ValueError: no users, or k < 1.

    Explained in notebook 14.
    """
    k = check_k(k)
    if not isinstance(recommendations, Mapping) or not recommendations:
        raise ValueError("recommendations must be a non-empty dict user -> list of items")
    hits = sum(item in list(ranked)[:k] for ranked in recommendations.values())
    return hits / len(recommendations)


# --------------------------------------------------------------------------- cleaning
def drop_duplicate_interactions(ratings: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Keep the first (earliest) row of every (user, item) pair, drop the repeats.

    Ties in time keep the earlier row of the table. Caution: on data where users may
    re-rate an item (a rating changed later is real information) this throws the update
    away; MovieLens keeps one rating per pair, so there every repeat is an error.

    Args:
        ratings: ``user_id, item_id, rating, timestamp`` (other columns kept).

    Returns:
        ``(clean, n_dropped)``: the kept rows in their original order (index reset) and how
        many rows were dropped.

    Raises:
        ValueError: a bad table.

    Explained in notebook 14.
    """
    ratings = _check_ratings(ratings)
    order = np.lexsort((np.arange(len(ratings)), ratings["timestamp"].to_numpy()))
    repeat = ratings.iloc[order].duplicated(["user_id", "item_id"], keep="first").to_numpy()
    keep = np.ones(len(ratings), dtype=bool)
    keep[order[repeat]] = False
    return ratings[keep].reset_index(drop=True), int((~keep).sum())


def drop_low_support(ratings: pd.DataFrame,
                     min_item_count: int = 5) -> tuple[pd.DataFrame, int]:
    """Drop every interaction with an item that fewer than ``min_item_count`` users touched.

    A blunt, honest heuristic against random noise: uniform noise lands mostly on the long
    tail of rarely rated items, where one stray interaction is a large share of the item's
    data. Its cost: it removes *real* rare items and their ratings too (and with them the
    chance to ever recommend them), and it leaves the noise on popular items in place. Noise
    cannot be removed exactly without labels; compare what it drops with the ``injected``
    column to see the trade-off.

    Args:
        ratings: ``user_id, item_id, rating, timestamp`` (other columns kept).
        min_item_count: the fewest distinct users an item needs to be kept (>= 1).

    Returns:
        ``(clean, n_dropped)``: kept rows in their order (index reset), dropped row count.

    Raises:
        ValueError: a bad table or count.

    Explained in notebook 14.
    """
    ratings = _check_ratings(ratings)
    min_item_count = check_int("min_item_count", min_item_count)
    support = ratings.groupby("item_id")["user_id"].transform("nunique")
    keep = (support >= min_item_count).to_numpy()
    return ratings[keep].reset_index(drop=True), int((~keep).sum())


def drop_users(ratings: pd.DataFrame, users: Iterable) -> tuple[pd.DataFrame, int]:
    """Remove every row of the given users (e.g. those :func:`flag_suspicious` flagged).

    Returns:
        ``(clean, n_dropped)``: kept rows in their order (index reset), dropped row count.

    Explained in notebook 14.
    """
    ratings = _check_ratings(ratings)
    keep = ~ratings["user_id"].isin(list(users)).to_numpy()
    return ratings[keep].reset_index(drop=True), int((~keep).sum())


def suspicious_profiles(ratings: pd.DataFrame, n_neighbours: int = 10,
                        burst_window: int = 3_600, group_window: int = 86_400) -> pd.DataFrame:
    """Score every user with four unsupervised shilling detectors (higher = more suspicious).

    * ``rdma``, Rating Deviation from Mean Agreement (Chirita et al., 2005): the mean over
      the user's items of ``|r_ui - mean_i| / n_i`` (``n_i``: the item's number of ratings).
      Deviating from the consensus on rarely rated items is what fake profiles do.
    * ``degsim``, Degree of Similarity with top neighbours (Chirita et al., 2005): the mean
      similarity of the user to their ``n_neighbours`` most similar users. Profiles made by
      one recipe resemble each other more than real users do. Cosine on the rating vectors
      (not Pearson: an all-maximum bandwagon profile has no variance, Pearson is undefined).
    * ``burst``: the largest share of the user's interactions inside one ``burst_window``
      seconds (1.0: everything at once). Bots rate in one sitting, but so do many real
      users (most MovieLens users rate at sign-up), so alone it separates little.
    * ``co_burst``: the largest number of *other* users who gave the same rating to the
      same item within ``group_window`` seconds of one of this user's ratings: a group
      rating one item alike at the same time (the idea of time-series detectors of items
      under attack, e.g. Zhang et al., 2006).

    Repeated (user, item) rows count once (:func:`drop_duplicate_interactions` first). The
    ``injected`` column, if present, is ignored. DegSim compares all pairs of users:
    time and memory grow with the square of the number of users (fine up to ~20,000).

    Args:
        ratings: ``user_id, item_id, rating, timestamp``.
        n_neighbours: neighbours averaged by DegSim (>= 1; fewer if there are fewer users).
        burst_window: seconds of the burst window (>= 1).
        group_window: seconds either side for co_burst (>= 1).

    Returns:
        One row per user (index ``user_id``, sorted), columns ``n_ratings`` and the four
        detector scores.

    Raises:
        ValueError: a bad table (fewer than 2 users) or a bad argument.

    Explained in notebook 14.
    """
    ratings, _ = drop_duplicate_interactions(_check_ratings(ratings))
    n_neighbours = check_int("n_neighbours", n_neighbours)
    burst_window = check_int("burst_window", burst_window)
    group_window = check_int("group_window", group_window)
    users, u = np.unique(ratings["user_id"].to_numpy(), return_inverse=True)
    if len(users) < 2:
        raise ValueError("suspicious_profiles needs at least 2 users to compare")
    items, i = np.unique(ratings["item_id"].to_numpy(), return_inverse=True)
    r = ratings["rating"].to_numpy(dtype=np.float64)
    t = ratings["timestamp"].to_numpy(dtype=np.int64)
    out = pd.DataFrame(index=pd.Index(users, name="user_id"))
    out["n_ratings"] = np.bincount(u, minlength=len(users))
    out["rdma"] = _rdma(u, i, r, len(users), len(items))
    matrix = sp.csr_matrix((r, (u, i)), shape=(len(users), len(items)))
    out["degsim"] = _degsim(matrix, min(n_neighbours, len(users) - 1))
    out["burst"] = _burst(u, t, burst_window, len(users))
    rating_code = np.unique(r, return_inverse=True)[1]
    out["co_burst"] = _co_burst(u, i * (rating_code.max() + 1) + rating_code, t,
                                group_window, len(users))
    return out


def _rdma(u: np.ndarray, i: np.ndarray, r: np.ndarray, n_users: int,
          n_items: int) -> np.ndarray:
    n_i = np.bincount(i, minlength=n_items)
    mean_i = np.bincount(i, weights=r, minlength=n_items) / n_i
    deviation = np.abs(r - mean_i[i]) / n_i[i]
    return np.bincount(u, weights=deviation, minlength=n_users) / np.bincount(u, minlength=n_users)


def _degsim(matrix: sp.csr_matrix, k: int, batch: int = 512) -> np.ndarray:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    normed = sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ matrix
    transposed = normed.T.tocsc()
    scores = np.empty(matrix.shape[0])
    for start in range(0, matrix.shape[0], batch):
        stop = min(start + batch, matrix.shape[0])
        sims = np.asarray((normed[start:stop] @ transposed).todense())
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not oneself
        top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
        scores[start:stop] = top.mean(axis=1)
    return scores


def _window_counts(group: np.ndarray, t: np.ndarray, before: int, after: int) -> np.ndarray:
    """For each row, how many rows of its group have a time in ``[t - before, t + after]``."""
    t = t - t.min()
    stride = int(t.max()) + before + after + 1
    key = group.astype(np.int64) * stride + t
    ordered = np.sort(key)
    return (np.searchsorted(ordered, key + after, side="right")
            - np.searchsorted(ordered, key - before, side="left"))


def _burst(u: np.ndarray, t: np.ndarray, window: int, n_users: int) -> np.ndarray:
    inside = _window_counts(u, t, 0, window)  # rows in [t, t + window] of the same user
    best = np.zeros(n_users)
    np.maximum.at(best, u, inside)
    return best / np.bincount(u, minlength=n_users)


def _co_burst(u: np.ndarray, item_rating: np.ndarray, t: np.ndarray, window: int,
              n_users: int) -> np.ndarray:
    _, group = np.unique(item_rating, return_inverse=True)
    others = _window_counts(group, t, window, window) - 1  # one row per (user, item)
    best = np.zeros(n_users)
    np.maximum.at(best, u, others)
    return best


def suspicion_score(profiles: pd.DataFrame, detectors: Sequence[str] = DEFAULT_DETECTORS,
                    combine: str = "max") -> pd.Series:
    """One score per user from the percentile ranks of the chosen detector scores.

    Percentile ranks put detectors on different scales on one footing (0: least, 1: most
    suspicious user). ``"max"`` (default) makes a user as suspicious as the detector that
    finds them most unusual: each detector catches some attack kinds and misses others
    (DegSim catches bandwagon profiles, which look alike, and misses random ones, which do
    not), so averaging would dilute the one that fires. ``"mean"`` rewards agreement.

    Args:
        profiles: the table of :func:`suspicious_profiles`.
        detectors: names from ``DETECTORS``.
        combine: ``"max"`` or ``"mean"`` of the percentile ranks.

    Returns:
        A Series indexed by user id, values in (0, 1].

    Raises:
        ValueError: no or unknown detector names, or an unknown ``combine``.

    Explained in notebook 14.
    """
    detectors = list(detectors)
    if not detectors:
        raise ValueError(f"choose at least one detector from {DETECTORS}")
    for name in detectors:
        check_choice("detectors", name, DETECTORS)
    check_choice("combine", combine, ("max", "mean"))
    missing = [d for d in detectors if d not in profiles.columns]
    if missing:
        raise ValueError(f"profiles lacks the detector column(s) {missing}; compute it with "
                         "suspicious_profiles()")
    ranks = profiles[detectors].rank(pct=True)
    score = ranks.max(axis=1) if combine == "max" else ranks.mean(axis=1)
    return score.rename("suspicion")


def flag_suspicious(ratings: pd.DataFrame, max_share: float = 0.05,
                    threshold: float | None = None,
                    detectors: Sequence[str] = DEFAULT_DETECTORS, combine: str = "max",
                    **detector_args) -> np.ndarray:
    """Flag the most suspicious users without any label (an operator's review budget).

    Users are ranked by :func:`suspicion_score`; the top ``max_share`` of users are flagged,
    and with ``threshold`` only those among them whose score is at least that. Because the
    score is a rank, some users are always flagged even on clean data: ``max_share`` is the
    price (genuine users dropped) paid when there is no attack.

    Args:
        ratings: ``user_id, item_id, rating, timestamp`` (an ``injected`` column is ignored).
        max_share: the largest share of users flagged, in (0, 1].
        threshold: optional smallest suspicion score (in [0, 1]) to flag.
        detectors: detector names combined (``DETECTORS``).
        combine: how :func:`suspicion_score` combines them (``"max"`` or ``"mean"``).
        **detector_args: passed to :func:`suspicious_profiles` (``n_neighbours``, ...).

    Returns:
        The flagged user ids, most suspicious first.

    Raises:
        ValueError: a bad table, share, threshold or detector name.

    Explained in notebook 14.
    """
    max_share = check_float("max_share", max_share, maximum=1.0, strict_maximum=False)
    if threshold is not None:
        threshold = check_float("threshold", threshold, strict=False, maximum=1.0,
                                strict_maximum=False)
    score = suspicion_score(suspicious_profiles(ratings, **detector_args), detectors, combine)
    ranked = score.sort_values(ascending=False, kind="stable")
    ranked = ranked.iloc[:int(np.floor(max_share * len(ranked)))]
    if threshold is not None:
        ranked = ranked[ranked >= threshold]
    return ranked.index.to_numpy()


def detection_report(flagged: Collection, true_fake_users: Collection,
                     n_users: int | None = None) -> dict:
    """How well a set of flagged users matches the known fakes (labels used only here).

    Args:
        flagged: the user ids a detector flagged.
        true_fake_users: the ids of the injected fake profiles (e.g. :func:`fake_users`).
        n_users: all users (genuine + fake); when given, the false positive rate too.

    Returns:
        ``{"flagged", "fakes", "true_positives", "false_positives", "precision",
        "recall"[, "false_positive_rate"]}``; precision is 0 when nothing is flagged and
        recall is 0 when there are no fakes.

    Raises:
        ValueError: ``n_users`` smaller than the users named.

    Explained in notebook 14.
    """
    flagged, fakes = set(flagged), set(true_fake_users)
    hits = len(flagged & fakes)
    report = {"flagged": len(flagged), "fakes": len(fakes), "true_positives": hits,
              "false_positives": len(flagged) - hits,
              "precision": hits / len(flagged) if flagged else 0.0,
              "recall": hits / len(fakes) if fakes else 0.0}
    if n_users is not None:
        n_users = check_int("n_users", n_users)
        if n_users < len(flagged | fakes):
            raise ValueError(f"n_users={n_users} is smaller than the {len(flagged | fakes)} "
                             "users flagged or known fake")
        genuine = n_users - len(fakes)
        report["false_positive_rate"] = (len(flagged) - hits) / genuine if genuine else 0.0
    return report


def detection_auc(scores: pd.Series, true_fake_users: Collection) -> float:
    """Area under the ROC curve of a per-user score: the chance that a random fake profile
    scores above a random genuine user (ties count half).

    Args:
        scores: per-user score, indexed by user id (a column of :func:`suspicious_profiles`
            or :func:`suspicion_score`).
        true_fake_users: the fake ids (labels used only to measure).

    Returns:
        The AUC in [0, 1]; 0.5 is chance.

    Raises:
        ValueError: no fake or no genuine user among the scored users.

    Explained in notebook 14.
    """
    is_fake = scores.index.isin(list(true_fake_users))
    n_fake, n_real = int(is_fake.sum()), int((~is_fake).sum())
    if not n_fake or not n_real:
        raise ValueError(f"need both fake and genuine users among the scored ones, got "
                         f"{n_fake} fake and {n_real} genuine")
    ranks = scores.rank(method="average").to_numpy()
    return float((ranks[is_fake].sum() - n_fake * (n_fake + 1) / 2) / (n_fake * n_real))
