"""Measure the service and retrieval at scale; write ``serving.json`` (notebook 12).

    python -m recsys_lib.serving.bench --bundle BUNDLE --out results/serving [--quick]

Latency: for each scorer (naive, compiled, batched) a server is started on 127.0.0.1 with
:func:`~recsys_lib.serving.process.start_server`, warmed up, then measured with the bounded
load generator: one client, then 50 concurrent clients (p50, p90, p99, throughput). The
histories are drawn from the bundle's catalogue by popularity, 1 to 50 items long.

Retrieval: exact top-10 (matrix product) against FAISS flat, IVF (several ``nprobe``) and
HNSW (several ``ef_search``): recall@10 against the exact lists and latency per query (one
query at a time, FAISS searching on one thread), on the model's own item embeddings with its real
query vectors (the last hidden state after real-looking histories) and on a synthetic
catalogue of 1,000,000 items (50,000 with ``--quick``) of the model's embedding size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from recsys_lib.checks import check_int
from recsys_lib.serving.loadtest import run_load
from recsys_lib.serving.scoring import SCORER_KINDS

K = 10
CONCURRENT_CLIENTS = 50
#: (single-client requests, concurrent requests, seconds per run) in full and quick mode.
LOAD_SIZES = {False: (500, 3000, 60.0), True: (100, 500, 20.0)}
SYNTHETIC_ITEMS = {False: 1_000_000, True: 50_000}
IVF_NPROBE = (1, 4, 16, 64)
HNSW_EF_SEARCH = (16, 64, 256)


def sample_histories(bundle, n: int, seed: int = 0, max_length: int = 50) -> list[list[int]]:
    """``n`` histories of 1..max_length item ids drawn by popularity from the bundle.

    Notebook 12 explains it.
    """
    rng = np.random.default_rng(seed)
    ids = np.asarray(bundle.popularity)
    weights = np.asarray(bundle.popularity_counts, dtype=np.float64) + 1.0
    weights /= weights.sum()
    lengths = rng.integers(1, max_length + 1, size=n)
    return [rng.choice(ids, size=int(m), replace=False, p=weights).tolist() for m in lengths]


def measure_server(bundle_path, scorer: str, payloads: list[dict], quick: bool) -> dict:
    """Start one server, warm it up, measure one client and 50 concurrent clients.

    Returns:
        ``{"single": summary, "concurrent": summary}`` (see LoadResult.summary).

    Notebook 12 explains it.
    """
    from recsys_lib.serving.process import start_server

    single_n, concurrent_n, seconds = LOAD_SIZES[quick]
    with start_server(bundle_path, scorer=scorer, timeout=180) as server:
        url = f"{server.url}/recommend"
        run_load(url, payloads, concurrency=4, n_requests=40, time_limit=seconds)  # warm-up
        single = run_load(url, payloads, concurrency=1, n_requests=single_n,
                          time_limit=seconds)
        many = run_load(url, payloads, concurrency=CONCURRENT_CLIENTS,
                        n_requests=concurrent_n, time_limit=seconds)
    return {"single": single.summary(), "concurrent": many.summary()}


def query_vectors(bundle, histories: list[list[int]]) -> np.ndarray:
    """The model's last hidden state after each history: its query for item retrieval.

    Notebook 12 explains it.
    """
    from recsys_lib.serving.scoring import pad_left

    index_of = {int(i): c for c, i in enumerate(bundle.recommender.items_.ids_)}
    model, max_len = bundle.recommender.model_, int(bundle.recommender.max_len)
    rows = [pad_left(np.array([index_of[i] for i in h if i in index_of], dtype=np.int64),
                     max_len) for h in histories]
    hidden = model.hidden(np.concatenate(rows), training=False)[:, -1, :]
    return np.asarray(hidden, dtype=np.float32)


def per_query_ms(search_one, queries: np.ndarray) -> dict:
    """Median and mean milliseconds of ``search_one(query_row)`` over the queries.

    Notebook 12 explains it.
    """
    times = []
    for row in range(len(queries)):
        started = time.perf_counter()
        search_one(queries[row:row + 1])
        times.append((time.perf_counter() - started) * 1000.0)
    return {"p50_ms": round(float(np.median(times)), 4),
            "mean_ms": round(float(np.mean(times)), 4)}


def compare_retrieval(items: np.ndarray, queries: np.ndarray, label: str) -> dict:
    """Exact top-10 against FAISS flat, IVF and HNSW: recall@10, ms per query, build time.

    Notebook 12 explains it.
    """
    from recsys_lib.serving.retrieval import (
        build_index,
        exact_top_k,
        import_faiss,
        recall_against_exact,
        search,
    )

    faiss = import_faiss()
    threads = faiss.omp_get_max_threads()
    exact, _ = exact_top_k(queries, items, K)
    rows = [{"method": "exact (numpy)", "recall@10": 1.0, "build_s": 0.0,
             **per_query_ms(lambda q: exact_top_k(q, items, K), queries)}]
    settings = [("flat", {}, [{}]), ("ivf", {}, [{"nprobe": p} for p in IVF_NPROBE]),
                ("hnsw", {}, [{"ef_search": e} for e in HNSW_EF_SEARCH])]
    for kind, build_params, search_grid in settings:
        started = time.perf_counter()
        index = build_index(items, kind, **build_params)
        build_s = round(time.perf_counter() - started, 2)
        faiss.omp_set_num_threads(1)  # latency of one query on one core
        for params in search_grid:
            found, _ = search(index, queries, K, **params)
            rows.append({"method": kind, **params, "build_s": build_s,
                         "recall@10": round(recall_against_exact(found, exact), 4),
                         **per_query_ms(lambda q, p=params, i=index: search(i, q, K, **p),
                                        queries)})
        faiss.omp_set_num_threads(threads)
        print(f"  {label}: {kind} done ({build_s} s to build)", flush=True)
    return {"n_items": int(len(items)), "dim": int(items.shape[1]),
            "n_queries": int(len(queries)), "rows": rows}


def run(bundle_path, out, *, quick: bool = False, parts=("latency", "retrieval"),
        synthetic_items: int | None = None, dim: int | None = None, seed: int = 0) -> dict:
    """Run the measurements and write ``out/serving.json``.

    Args:
        bundle_path: the bundle folder.
        out: the output folder.
        quick: smaller loads and a 50,000-item synthetic catalogue.
        parts: ``"latency"`` and/or ``"retrieval"``.
        synthetic_items: override the synthetic catalogue size.
        dim: embedding size of the synthetic catalogue (default: the model's).
        seed: seeds the histories and the synthetic catalogue.

    Returns:
        The content of serving.json.

    Notebook 12 explains it.
    """
    from recsys_lib.config import import_tensorflow_quietly
    from recsys_lib.serving.bundle import load_bundle
    from recsys_lib.serving.retrieval import synthetic_catalogue, synthetic_queries

    import_tensorflow_quietly()
    bundle = load_bundle(bundle_path)
    histories = sample_histories(bundle, 200, seed)
    result = {"bundle": str(bundle_path), "model_version": bundle.model_version,
              "quick": quick, "machine": {"cpus": os.cpu_count(),
                                          "python": platform.python_version()}}
    if "latency" in parts:
        payloads = [{"history": h, "k": K} for h in histories]
        result["latency"] = {}
        for kind in ("naive", "compiled", "batched"):
            print(f"latency: {kind} server ...", flush=True)
            result["latency"][kind] = measure_server(bundle_path, kind, payloads, quick)
            print(f"  {kind}: {json.dumps(result['latency'][kind])}", flush=True)
    if "retrieval" in parts:
        items = np.asarray(bundle.recommender.model_.embed.item_embedding.embeddings)[1:]
        queries = query_vectors(bundle, histories)
        print("retrieval: course catalogue ...", flush=True)
        result["retrieval"] = {"catalogue": compare_retrieval(items.astype(np.float32),
                                                              queries, "catalogue")}
        n = synthetic_items or SYNTHETIC_ITEMS[quick]
        dim = dim or items.shape[1]
        print(f"retrieval: synthetic catalogue of {n:,} items, dim {dim} ...", flush=True)
        synthetic = synthetic_catalogue(n, dim, seed)
        result["retrieval"]["synthetic"] = compare_retrieval(
            synthetic, synthetic_queries(synthetic, 200, seed + 1), "synthetic")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line of the benchmark; prints a summary and writes serving.json.

    Notebook 12 explains it.
    """
    parser = argparse.ArgumentParser(prog="python -m recsys_lib.serving.bench",
                                     description="Measure serving latency and retrieval.")
    parser.add_argument("--bundle", required=True, help="bundle folder (serving.export)")
    parser.add_argument("--out", required=True, type=Path, help="folder for serving.json")
    parser.add_argument("--quick", action="store_true", help="small loads and catalogue")
    parser.add_argument("--parts", nargs="+", choices=("latency", "retrieval"),
                        default=["latency", "retrieval"])
    parser.add_argument("--synthetic-items", type=int, default=None)
    parser.add_argument("--dim", type=int, default=None,
                        help="synthetic embedding size (default: the model's)")
    args = parser.parse_args(argv)
    if args.synthetic_items is not None:
        check_int("--synthetic-items", args.synthetic_items)
    run(args.bundle, args.out, quick=args.quick, parts=tuple(args.parts),
        synthetic_items=args.synthetic_items, dim=args.dim)
    print(f"wrote {args.out / 'serving.json'} (scorers: {', '.join(SCORER_KINDS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
