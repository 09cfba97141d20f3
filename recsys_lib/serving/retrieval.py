"""Top-k retrieval at catalogue scale: exact matrix product against FAISS (notebook 12).

SASRec scores an item by the inner product of the user's last hidden state with the item's
embedding, so serving is *maximum inner product search*: :func:`exact_top_k` does it exactly
(one matrix product and ``argpartition``, linear in the catalogue); FAISS indexes
(:func:`build_index`) trade a little recall for speed:

* ``"flat"``: exact, brute force in optimised C++ (recall 1.0);
* ``"ivf"``: k-means cells, search only the ``nprobe`` nearest cells;
* ``"hnsw"``: a navigable small-world graph, ``ef_search`` candidates explored.

:func:`recall_against_exact` measures how many of the exact top-k the approximate search
found. FAISS is imported lazily (``pip install faiss-cpu``).
"""

from __future__ import annotations

import numpy as np

from recsys_lib.checks import ArgumentError, check_choice, check_int, check_k

INDEX_KINDS = ("flat", "ivf", "hnsw")
#: Most scores computed at once by :func:`exact_top_k` (bounds its memory, ~256 MB).
EXACT_CHUNK_SCORES = 1 << 26


def import_faiss():
    """Import FAISS, or raise ImportError saying how to install it.

    Notebook 12 explains it.
    """
    try:
        import faiss
    except ImportError as err:
        raise ImportError("approximate retrieval needs FAISS: pip install faiss-cpu") from err
    return faiss


def _matrix(name: str, values, dim: int | None = None) -> np.ndarray:
    """A C-contiguous float32 2-D array (ArgumentError otherwise)."""
    array = np.ascontiguousarray(values, dtype=np.float32)
    if array.ndim != 2 or not array.shape[0] or not array.shape[1]:
        raise ArgumentError(f"{name} must be a non-empty 2-D array (rows x dim), got shape "
                            f"{array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise ArgumentError(f"{name} has dimension {array.shape[1]}, the items have {dim}")
    if not np.isfinite(array).all():
        raise ArgumentError(f"{name} holds NaN or infinite values")
    return array


def exact_top_k(queries, item_vectors, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` items with the largest inner product for each query, exactly.

    Args:
        queries: (n_queries, dim).
        item_vectors: (n_items, dim).
        k: how many items per query (at most n_items).

    Returns:
        ``(indices, scores)``, both (n_queries, k), best first (ties: lower index first).

    Raises:
        ArgumentError: bad shapes, ``k`` < 1 or above the number of items.

    Notebook 12 explains it.
    """
    items = _matrix("item_vectors", item_vectors)
    queries = _matrix("queries", queries, items.shape[1])
    k = check_int("k", k, maximum=items.shape[0])
    step = max(1, EXACT_CHUNK_SCORES // items.shape[0])
    parts = [_exact_chunk(queries[i:i + step], items, k) for i in range(0, len(queries), step)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _exact_chunk(queries: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """exact_top_k for a block of queries small enough to hold all its scores."""
    scores = queries @ items.T
    if k < items.shape[0]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(items.shape[0]), scores.shape).copy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    indices = np.take_along_axis(part, order, axis=1)
    return indices.astype(np.int64), np.take_along_axis(scores, indices, axis=1)


def build_index(item_vectors, kind: str = "flat", **params):
    """A FAISS inner-product index over the item vectors.

    Args:
        item_vectors: (n_items, dim).
        kind: ``"flat"`` (exact), ``"ivf"`` or ``"hnsw"``.
        params: for ``"ivf"``: ``nlist`` (cells; default about ``4 * sqrt(n_items)``, at
            most ``n_items // 39``) and ``seed``; for ``"hnsw"``: ``m`` (links per node,
            default 32) and ``ef_construction`` (default 80).

    Returns:
        The trained, filled FAISS index.

    Raises:
        ImportError: FAISS is not installed (the message says ``pip install faiss-cpu``).
        ArgumentError: an unknown kind, bad vectors or parameters.

    Notebook 12 explains it.
    """
    check_choice("kind", kind, INDEX_KINDS)
    items = _matrix("item_vectors", item_vectors)
    faiss = import_faiss()
    builders = {"flat": _flat, "ivf": _ivf, "hnsw": _hnsw}
    return builders[kind](faiss, items, **params)


def _flat(faiss, items: np.ndarray):
    index = faiss.IndexFlatIP(items.shape[1])
    index.add(items)
    return index


def _default_nlist(n_items: int) -> int:
    """About ``4 * sqrt(n)`` cells, but at least 39 training points per cell (FAISS's rule)."""
    return max(1, min(int(4 * np.sqrt(n_items)), n_items // 39))


def _ivf(faiss, items: np.ndarray, nlist: int | None = None, seed: int = 0):
    n, dim = items.shape
    nlist = check_int("nlist", nlist if nlist is not None else _default_nlist(n),
                      maximum=n)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = items
    if n > 64 * nlist:  # k-means needs tens of points per cell, not all of them
        rows = np.random.default_rng(seed).choice(n, 64 * nlist, replace=False)
        sample = items[np.sort(rows)]
    index.cp.seed = seed
    index.train(sample)
    index.add(items)
    return index


def _hnsw(faiss, items: np.ndarray, m: int = 32, ef_construction: int = 80):
    index = faiss.IndexHNSWFlat(items.shape[1], check_int("m", m), faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = check_int("ef_construction", ef_construction)
    index.add(items)
    return index


def search(index, queries, k: int, *, nprobe: int | None = None,
           ef_search: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Search a FAISS index built by :func:`build_index`.

    Args:
        index: the index.
        queries: (n_queries, dim).
        k: results per query.
        nprobe: cells an IVF index visits (more: higher recall, slower).
        ef_search: candidates an HNSW index explores (more: higher recall, slower).

    Returns:
        ``(indices, scores)``, (n_queries, k), best first; -1 where fewer were found.

    Raises:
        ArgumentError: bad queries or parameters, or a parameter the index does not have.

    Notebook 12 explains it.
    """
    k = check_k(k)
    queries = _matrix("queries", queries, index.d)
    if nprobe is not None:
        if not hasattr(index, "nprobe"):
            raise ArgumentError("nprobe applies to an IVF index only (build_index(kind='ivf'))")
        index.nprobe = check_int("nprobe", nprobe)
    if ef_search is not None:
        if not hasattr(index, "hnsw"):
            raise ArgumentError("ef_search applies to an HNSW index only "
                                "(build_index(kind='hnsw'))")
        index.hnsw.efSearch = check_int("ef_search", ef_search)
    scores, indices = index.search(queries, k)
    return indices.astype(np.int64), scores


def recall_against_exact(approx_idx, exact_idx) -> float:
    """Mean share of each query's exact top-k that the approximate top-k found.

    Args:
        approx_idx: (n_queries, k) indices from :func:`search` (-1 = nothing found).
        exact_idx: (n_queries, k) indices from :func:`exact_top_k`.

    Returns:
        Recall in [0, 1] (1.0: every exact item was found).

    Raises:
        ArgumentError: the two arrays are not 2-D of the same shape.

    Notebook 12 explains it.
    """
    approx, exact = np.asarray(approx_idx), np.asarray(exact_idx)
    if approx.ndim != 2 or approx.shape != exact.shape or not exact.size:
        raise ArgumentError(f"approx_idx and exact_idx must be non-empty 2-D arrays of the same "
                            f"shape (n_queries, k), got {approx.shape} and {exact.shape}")
    found = [len(np.intersect1d(a[a >= 0], e)) for a, e in zip(approx, exact, strict=True)]
    return float(np.mean(found) / exact.shape[1])


def synthetic_catalogue(n_items: int, dim: int = 64, seed: int = 0,
                        n_clusters: int = 1000) -> np.ndarray:
    """Clustered random item vectors, like learned embeddings (genres, eras) but at any size.

    Items are drawn around ``n_clusters`` Gaussian centres (uniform noise alone would make
    every index look bad: real embeddings have structure).

    Returns:
        (n_items, dim) float32.

    Raises:
        ArgumentError: a bad size or seed.

    Notebook 12 explains it.
    """
    n_items, dim = check_int("n_items", n_items), check_int("dim", dim)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    n_clusters = min(check_int("n_clusters", n_clusters), n_items)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    members = rng.integers(n_clusters, size=n_items)
    out = rng.standard_normal((n_items, dim), dtype=np.float32)
    out *= 0.5
    out += centres[members]
    return out / np.sqrt(dim, dtype=np.float32)


def synthetic_queries(item_vectors, n_queries: int, seed: int = 1) -> np.ndarray:
    """Queries near random catalogue items (a user vector resembles what they like).

    Returns:
        (n_queries, dim) float32.

    Notebook 12 explains it.
    """
    items = _matrix("item_vectors", item_vectors)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    rows = rng.integers(len(items), size=check_int("n_queries", n_queries))
    noise = rng.standard_normal((len(rows), items.shape[1]), dtype=np.float32)
    return items[rows] + noise * items.std() * 0.5
