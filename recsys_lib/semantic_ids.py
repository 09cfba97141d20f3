"""Semantic IDs: each item becomes a short tuple of codes learnt from its vector.

Generative retrieval (Rajput et al., 2023, "Recommender Systems with Generative Retrieval",
TIGER) does not give every item an arbitrary id; it describes an item by a few *codes*,
coarse to fine, so that similar items share their first codes. TIGER learns the codes with an
RQ-VAE; this module uses the simpler, non-neural version of the same idea, **residual
k-means** (residual quantisation):

    level 1: k-means on the vectors x                       -> code c1, centroid C1[c1]
    level 2: k-means on the residuals r1 = x - C1[c1]        -> code c2, centroid C2[c2]
    level 3: k-means on r2 = r1 - C2[c2]                     -> code c3 ...

An item's approximation is the sum of its chosen centroids; each level can only lower the
mean squared error (``level_errors_``). Two items can still get the same code tuple (a
*collision*); TIGER then appends one more code that counts the items sharing the tuple
(0, 1, 2, ...), so every item has a unique semantic ID (:func:`semantic_ids`)::

    quantiser = ResidualKMeans(levels=3, codes=32).fit(vectors)   # (n_items, d) floats
    codes = quantiser.encode(vectors)                             # (n_items, 3) ints
    ids = semantic_ids(codes)                                     # (n_items, 4), unique rows
    collision_rate(codes)                                         # share of items needing it

NumPy only. Explained in notebook 14.
"""

from __future__ import annotations

import numpy as np

from recsys_lib.checks import check_int


def _check_vectors(vectors: object, name: str = "vectors") -> np.ndarray:
    """``vectors`` as a (n, d) float64 array; ValueError if not 2-D, empty or not finite."""
    try:
        x = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a 2-D array of numbers (n, d): {err}") from None
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n vectors, d dimensions), got shape "
                         f"{x.shape}; reshape a single vector with x.reshape(1, -1)")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}); pass at least one vector of at "
                         "least one dimension")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(f"{name} has NaN or infinite values in {int(bad.sum())} row(s), e.g. "
                         f"rows {np.flatnonzero(bad)[:5].tolist()}; fill or drop them first")
    return x


def squared_distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``||x_i - c_j||^2`` as an (n, k) array (never negative).

    Explained in notebook 14.
    """
    d = (x * x).sum(axis=1)[:, None] - 2.0 * x @ centroids.T + (centroids * centroids).sum(1)
    return np.maximum(d, 0.0)


def kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ start: the first centroid is a random point, each next one a point drawn
    with probability proportional to its squared distance to the nearest centroid so far
    (uniformly when every point already is a centroid).

    Args:
        x: (n, d) points, n >= 1.
        k: number of centroids.
        rng: a seeded NumPy Generator.

    Returns:
        (k, d) array of centroids (copies of points of ``x``).

    Explained in notebook 14.
    """
    n = len(x)
    chosen = [int(rng.integers(n))]
    nearest = ((x - x[chosen[0]]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = nearest.sum()
        pick = int(rng.integers(n)) if total <= 0 else int(rng.choice(n, p=nearest / total))
        chosen.append(pick)
        nearest = np.minimum(nearest, ((x - x[pick]) ** 2).sum(axis=1))
    return x[chosen].copy()


def lloyd(x: np.ndarray, centroids: np.ndarray,
          iterations: int) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Lloyd's k-means iterations: assign each point to its nearest centroid, move each
    centroid to the mean of its points, repeat until no assignment changes.

    A centroid that loses all its points is moved onto the point farthest from its own
    centroid (several empty ones: the farthest points, one each), so no code is wasted.
    After the loop every point is assigned to its nearest final centroid.

    Args:
        x: (n, d) points.
        centroids: (k, d) starting centroids (not modified).
        iterations: at most this many update steps (>= 1).

    Returns:
        ``(centroids, labels, steps, converged)``: the final centroids, each point's
        nearest centroid, the update steps run, and whether the assignments stopped changing
        (then every centroid is the mean of its points).

    Explained in notebook 14.
    """
    centroids = centroids.copy()
    k = len(centroids)
    labels, steps, converged = None, 0, False
    for _ in range(iterations):
        distances = squared_distances(x, centroids)
        new = distances.argmin(axis=1)
        if labels is not None and np.array_equal(new, labels):
            converged = True
            break
        labels = new
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
        empty = np.flatnonzero(~filled)
        if len(empty):
            own = distances[np.arange(len(x)), labels]
            farthest = np.argsort(-own, kind="stable")[:len(empty)]
            centroids[empty[:len(farthest)]] = x[farthest]
        steps += 1
    labels = squared_distances(x, centroids).argmin(axis=1)
    return centroids, labels, steps, converged


class ResidualKMeans:
    """Residual quantisation by k-means: ``levels`` codebooks of ``codes`` centroids each.

    Level 1 clusters the vectors, level 2 clusters what level 1 left over (the residuals),
    and so on; an item's code at each level is its nearest centroid to the current residual,
    and its reconstruction is the sum of its chosen centroids. Each level uses k-means++
    starts and Lloyd iterations (:func:`lloyd`).

    Args:
        levels: number of codebooks (>= 1).
        codes: centroids per codebook (>= 1); at most the number of vectors fitted on.
        iterations: at most this many Lloyd update steps per level (>= 1).
        seed: seeds the k-means++ starts; same seed and data, same codebooks.

    Attributes set by ``fit``:
        codebooks_: list of ``levels`` (codes, d) arrays.
        level_errors_: mean squared error (``||x - reconstruction||^2`` averaged over the
            vectors) after each level; never increasing.
        n_iter_, converged_: Lloyd update steps run and whether they converged, per level.

    Raises:
        ArgumentError: a count that is not a positive integer, a negative seed.

    Explained in notebook 14.
    """

    def __init__(self, levels: int = 3, codes: int = 32, iterations: int = 25,
                 seed: int = 0) -> None:
        self.levels = check_int("levels", levels)
        self.codes = check_int("codes", codes)
        self.iterations = check_int("iterations", iterations)
        self.seed = check_int("seed", seed, minimum=0)

    def fit(self, vectors: np.ndarray) -> ResidualKMeans:
        """Learn the codebooks, level by level on the residuals.

        Args:
            vectors: (n, d) finite numbers, n >= ``codes``.

        Returns:
            self.

        Raises:
            ValueError: not 2-D, empty, NaN or infinite values, or fewer vectors than codes.

        Explained in notebook 14.
        """
        x = _check_vectors(vectors)
        if len(x) < self.codes:
            raise ValueError(f"fewer vectors ({len(x)}) than codes per level ({self.codes}): "
                             f"k-means cannot place {self.codes} centroids; use codes <= "
                             f"{len(x)} or fit on more vectors")
        rng = np.random.default_rng(self.seed)
        residual = x.copy()
        self.codebooks_, self.level_errors_ = [], []
        self.n_iter_, self.converged_ = [], []
        for _ in range(self.levels):
            start = kmeans_plus_plus(residual, self.codes, rng)
            centroids, labels, steps, converged = lloyd(residual, start, self.iterations)
            residual = residual - centroids[labels]
            self.codebooks_.append(centroids)
            self.level_errors_.append(float((residual ** 2).sum(axis=1).mean()))
            self.n_iter_.append(steps)
            self.converged_.append(converged)
        return self

    def _fitted(self) -> None:
        if not hasattr(self, "codebooks_"):
            raise RuntimeError("ResidualKMeans is not fitted: call fit(vectors) first")

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """Each vector's code at every level: the nearest centroid to the current residual.

        Args:
            vectors: (n, d) with the ``d`` of the fitted vectors.

        Returns:
            (n, levels) int64 array of codes in ``0..codes-1``.

        Raises:
            ValueError: bad vectors (see :meth:`fit`) or another dimension ``d``.
            RuntimeError: not fitted.

        Explained in notebook 14.
        """
        self._fitted()
        x = _check_vectors(vectors)
        d = self.codebooks_[0].shape[1]
        if x.shape[1] != d:
            raise ValueError(f"vectors have {x.shape[1]} dimensions but the quantiser was "
                             f"fitted on {d}; encode vectors of the same kind")
        out = np.empty((len(x), self.levels), dtype=np.int64)
        residual = x.copy()
        for level, codebook in enumerate(self.codebooks_):
            out[:, level] = squared_distances(residual, codebook).argmin(axis=1)
            residual -= codebook[out[:, level]]
        return out

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The reconstruction of each code tuple: the sum of its chosen centroids.

        Args:
            codes: (n, levels) integers in ``0..codes-1``.

        Returns:
            (n, d) float64 array.

        Raises:
            ValueError: wrong shape, non-integers or codes out of range.
            RuntimeError: not fitted.

        Explained in notebook 14.
        """
        self._fitted()
        c = np.asarray(codes)
        if c.ndim != 2 or c.shape[1] != self.levels:
            raise ValueError(f"codes must be an (n, {self.levels}) array (one column per "
                             f"level), got shape {c.shape}")
        if c.size and not np.issubdtype(c.dtype, np.integer):
            raise ValueError(f"codes must be integers, got dtype {c.dtype}")
        if c.size and (c.min() < 0 or c.max() >= self.codes):
            raise ValueError(f"codes must be in 0..{self.codes - 1}, got values "
                             f"{int(c.min())}..{int(c.max())}")
        out = np.zeros((len(c), self.codebooks_[0].shape[1]))
        for level, codebook in enumerate(self.codebooks_):
            out += codebook[c[:, level]]
        return out

    def reconstruction_error(self, vectors: np.ndarray) -> float:
        """Mean squared error ``mean_i ||x_i - decode(encode(x_i))||^2``.

        Raises:
            ValueError, RuntimeError: as :meth:`encode`.

        Explained in notebook 14.
        """
        x = _check_vectors(vectors)
        return float(((x - self.decode(self.encode(x))) ** 2).sum(axis=1).mean())


def _check_codes(codes: object) -> np.ndarray:
    """``codes`` as a non-empty (n, levels) integer array, or ValueError."""
    c = np.asarray(codes)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(f"codes must be a non-empty (n_items, levels) array, got shape "
                         f"{c.shape}")
    if not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {c.dtype}")
    return c


def semantic_ids(codes: np.ndarray) -> np.ndarray:
    """Append TIGER's disambiguation code, so that every row (item) is unique.

    The extra code counts earlier rows with the same code tuple: 0 for the first item with
    a tuple, 1 for the next one, and so on (in row order).

    Args:
        codes: (n_items, levels) integers, e.g. :meth:`ResidualKMeans.encode`.

    Returns:
        (n_items, levels + 1) int64 array with unique rows.

    Raises:
        ValueError: not a non-empty 2-D integer array.

    Explained in notebook 14.
    """
    c = _check_codes(codes).astype(np.int64)
    _, group = np.unique(c, axis=0, return_inverse=True)
    group = group.ravel()
    order = np.argsort(group, kind="stable")  # rows of a group together, in row order
    sorted_groups = group[order]
    starts = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    extra = np.empty(len(c), dtype=np.int64)
    extra[order] = np.arange(len(order)) - first
    return np.column_stack([c, extra])


def collision_rate(codes: np.ndarray) -> float:
    """Share of items whose code tuple an earlier item already has (they need a non-zero
    disambiguation code): ``1 - distinct tuples / items``.

    Raises:
        ValueError: not a non-empty 2-D integer array.

    Explained in notebook 14.
    """
    c = _check_codes(codes)
    return 1.0 - len(np.unique(c, axis=0)) / len(c)
