"""Exact top-k against FAISS indexes (notebook 12): correctness, recall, messages."""

import builtins

import numpy as np
import pytest

from recsys_lib.checks import ArgumentError
from recsys_lib.serving import retrieval
from recsys_lib.serving.retrieval import (
    exact_top_k,
    recall_against_exact,
    synthetic_catalogue,
    synthetic_queries,
)

try:
    import faiss  # noqa: F401

    HAVE_FAISS = True
except ImportError:
    HAVE_FAISS = False
faiss_needed = pytest.mark.skipif(not HAVE_FAISS, reason="needs faiss-cpu")


@pytest.fixture(scope="module")
def catalogue():
    items = synthetic_catalogue(5000, dim=16, seed=0, n_clusters=50)
    return items, synthetic_queries(items, 50, seed=1)


def test_exact_top_k_matches_a_brute_force_argsort(catalogue):
    items, queries = catalogue
    indices, scores = exact_top_k(queries, items, k=10)
    full = queries @ items.T
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, axis=1), rtol=1e-6)
    assert indices.shape == scores.shape == (50, 10) and indices.dtype == np.int64


def test_exact_top_k_in_chunks_and_with_k_equal_to_the_catalogue(catalogue, monkeypatch):
    items, queries = catalogue
    whole = exact_top_k(queries, items, k=7)
    monkeypatch.setattr(retrieval, "EXACT_CHUNK_SCORES", 3 * len(items))  # 3 queries a chunk
    chunked = exact_top_k(queries, items, k=7)
    np.testing.assert_array_equal(whole[0], chunked[0])
    small = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    indices, scores = exact_top_k(np.array([[1.0, 0.0]]), small, k=3)
    assert indices.tolist() == [[0, 2, 1]] and scores.tolist() == [[1.0, 1.0, 0.0]]  # ties


def test_exact_top_k_rejects_bad_input(catalogue):
    items, queries = catalogue
    with pytest.raises(ArgumentError, match="k must be an integer >= 1 and <= 5000"):
        exact_top_k(queries, items, k=5001)
    with pytest.raises(ArgumentError, match="dimension 3, the items have 16"):
        exact_top_k(np.ones((2, 3)), items, k=1)
    with pytest.raises(ArgumentError, match="2-D"):
        exact_top_k(queries, np.ones(16), k=1)


def test_recall_against_exact():
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_against_exact(exact, exact) == 1.0
    assert recall_against_exact(np.array([[3, 9, 1], [-1, -1, 4]]), exact) == pytest.approx(
        0.5)
    with pytest.raises(ArgumentError, match="same shape"):
        recall_against_exact(exact[:, :2], exact)
    with pytest.raises(ArgumentError, match="same shape"):
        recall_against_exact(exact[0], exact[0])


def test_synthetic_catalogue_is_reproducible_and_shaped():
    a, b = synthetic_catalogue(100, dim=8, seed=3), synthetic_catalogue(100, dim=8, seed=3)
    assert a.shape == (100, 8) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, synthetic_catalogue(100, dim=8, seed=4))
    with pytest.raises(ArgumentError, match="n_items"):
        synthetic_catalogue(0)


@faiss_needed
def test_flat_index_is_exact(catalogue):
    items, queries = catalogue
    exact, _ = exact_top_k(queries, items, k=10)
    approx, scores = retrieval.search(retrieval.build_index(items, "flat"), queries, k=10)
    assert recall_against_exact(approx, exact) == 1.0
    assert approx.shape == scores.shape == (50, 10)


@faiss_needed
def test_ivf_recall_rises_with_nprobe_and_hnsw_with_ef_search(catalogue):
    items, queries = catalogue
    exact, _ = exact_top_k(queries, items, k=10)
    ivf = retrieval.build_index(items, "ivf", nlist=64)
    recalls = [recall_against_exact(retrieval.search(ivf, queries, 10, nprobe=p)[0], exact)
               for p in (1, 8, 64)]
    assert recalls[0] < recalls[1] <= recalls[2] == 1.0, recalls  # 64 of 64 cells: exact
    hnsw = retrieval.build_index(items, "hnsw", m=16, ef_construction=40)
    low, high = (recall_against_exact(retrieval.search(hnsw, queries, 10, ef_search=e)[0],
                                      exact) for e in (10, 200))
    assert low <= high and high > 0.95, (low, high)


@faiss_needed
def test_search_parameters_must_fit_the_index(catalogue):
    items, queries = catalogue
    flat = retrieval.build_index(items, "flat")
    with pytest.raises(ArgumentError, match="nprobe applies to an IVF index only"):
        retrieval.search(flat, queries, 5, nprobe=4)
    with pytest.raises(ArgumentError, match="ef_search applies to an HNSW index only"):
        retrieval.search(flat, queries, 5, ef_search=4)
    with pytest.raises(ArgumentError, match="kind must be one of"):
        retrieval.build_index(items, "lsh")


def test_missing_faiss_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        retrieval.build_index(np.ones((4, 2)), "flat")
