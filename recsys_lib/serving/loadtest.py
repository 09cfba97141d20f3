"""A bounded load generator for the service, and latency summaries (notebook 12).

:func:`run_load` sends at most ``n_requests`` POSTs from ``concurrency`` concurrent clients
and stops after ``time_limit`` seconds whatever happens, so a slow or hung server cannot
keep it running. It only ever talks to the URL it is given (a server on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from dataclasses import dataclass, field

import numpy as np

from recsys_lib.checks import ArgumentError, check_float, check_int


@dataclass
class LoadResult:
    """What a load run measured.

    Attributes:
        latencies_ms: one latency per completed request (ms), in completion order.
        errors: requests that failed (no answer, or a status that is not 2xx).
        statuses: HTTP status -> count (``0`` for a request that got no answer).
        seconds: wall time of the run.
        throughput: completed requests per second.
        n: completed requests.

    Notebook 12 explains it.
    """

    latencies_ms: np.ndarray
    errors: int
    statuses: dict = field(default_factory=dict)
    seconds: float = 0.0
    throughput: float = 0.0
    n: int = 0

    def summary(self) -> dict:
        """:func:`latency_summary` plus errors, seconds and throughput."""
        return latency_summary(self.latencies_ms) | {
            "errors": self.errors, "seconds": round(self.seconds, 3),
            "throughput": round(self.throughput, 1)}


def latency_summary(latencies_ms) -> dict:
    """p50, p90, p99 (``np.percentile``, linear interpolation), mean and count.

    Args:
        latencies_ms: latencies in milliseconds.

    Returns:
        ``{"p50", "p90", "p99", "mean", "n"}`` (NaN percentiles when empty).

    Notebook 12 explains it.
    """
    values = np.asarray(latencies_ms, dtype=np.float64)
    if values.ndim != 1:
        raise ArgumentError(f"latencies_ms must be one-dimensional, got shape {values.shape}")
    if not len(values):
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"),
                "mean": float("nan"), "n": 0}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": round(float(p50), 3), "p90": round(float(p90), 3),
            "p99": round(float(p99), 3), "mean": round(float(values.mean()), 3),
            "n": int(len(values))}


def run_load(url: str, payloads: list, *, concurrency: int = 1, n_requests: int = 200,
             time_limit: float = 30.0) -> LoadResult:
    """POST ``payloads`` (cycled) to ``url`` from ``concurrency`` clients, bounded.

    Works in a script and in Jupyter (where an event loop already runs: the load then runs
    in a helper thread with its own loop).

    Args:
        url: the endpoint, e.g. ``http://127.0.0.1:8000/recommend``.
        payloads: JSON bodies; request ``i`` sends ``payloads[i % len(payloads)]``.
        concurrency: clients sending at the same time (each waits for its answer).
        n_requests: the most requests sent in all.
        time_limit: seconds after which no request is started and unfinished ones are
            abandoned (counted as errors with status 0).

    Returns:
        A :class:`LoadResult`.

    Raises:
        ArgumentError: no payloads, or a bad count or limit.

    Notebook 12 explains it.
    """
    if not len(payloads):
        raise ArgumentError("payloads must hold at least one JSON body, got none")
    concurrency = check_int("concurrency", concurrency)
    n_requests = check_int("n_requests", n_requests)
    time_limit = check_float("time_limit", time_limit)
    coroutine = _load(url, list(payloads), concurrency, n_requests, time_limit)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # inside Jupyter's running loop
        return pool.submit(asyncio.run, coroutine).result()


async def _load(url: str, payloads: list, concurrency: int, n_requests: int,
                time_limit: float) -> LoadResult:
    """The async loop behind :func:`run_load`."""
    import httpx

    latencies, statuses = [], {}
    counter = iter(range(n_requests))
    started = time.perf_counter()
    deadline = started + time_limit
    async def client_loop() -> None:
        async with httpx.AsyncClient() as client:  # one connection each: no shared pool
            await requests_loop(client)

    async def requests_loop(client: httpx.AsyncClient) -> None:
        for i in counter:
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            sent = time.perf_counter()
            try:
                response = await client.post(url, json=payloads[i % len(payloads)],
                                              timeout=left)
                status = response.status_code
            except (httpx.HTTPError, OSError):
                status = 0
            latencies.append((time.perf_counter() - sent) * 1000.0)
            statuses[status] = statuses.get(status, 0) + 1

    tasks = [asyncio.create_task(client_loop()) for _ in range(concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=time_limit + 5.0)
    for task in pending:
        task.cancel()
    seconds = time.perf_counter() - started
    errors = sum(count for status, count in statuses.items() if not 200 <= status < 300)
    return LoadResult(np.asarray(latencies), errors, dict(sorted(statuses.items())), seconds,
                      len(latencies) / seconds if seconds > 0 else 0.0, len(latencies))
