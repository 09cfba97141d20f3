"""Scorers: turn a request's history into top-k items with a bundle's model (notebook 12).

Three ways to run the same model, so notebook 12 can measure what makes a server fast:

* :class:`Scorer` (``"compiled"``): one ``tf.function`` with a fixed input signature
  ``(None, max_len)`` int32, traced once and warmed up at start-up, that returns only the
  scores after the last position. Requests of any length are padded to ``max_len``, so no
  request retraces (``scorer.traces`` stays 1).
* :class:`NaiveScorer` (``"naive"``): the Keras model called eagerly per request; it
  computes the scores at *every* position, then keeps the last one.
* :class:`BatchingScorer` (``"batched"``): the compiled scorer behind an asyncio queue;
  concurrent requests that arrive within ``max_wait_ms`` (up to ``max_batch``) are scored in
  one call, in a worker thread, while the event loop keeps accepting requests.

Every scorer skips unknown item ids (and reports them), falls back to popularity for an
empty or all-unknown history, reads only the ``max_len`` most recent known items, and never
recommends an item of the history (the whole history, not only the part the model reads).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from recsys_lib.checks import check_choice, check_float, check_int, check_k

SCORER_KINDS = ("compiled", "naive", "batched")
POPULARITY = "popularity"


@dataclass
class Recommendation:
    """One answer: item ids and scores (best first), unknown ids, fallback, items read.

    Notebook 12 explains it.
    """

    items: list[int]
    scores: list[float]
    unknown: list[int]
    fallback: str | None
    history_used: int

    def as_tuple(self) -> tuple[list[int], list[float], list[int], str | None]:
        """``(items, scores, unknown, fallback)``, what :meth:`Scorer.recommend` returns."""
        return self.items, self.scores, self.unknown, self.fallback


def pad_left(columns: np.ndarray, max_len: int) -> np.ndarray:
    """A (1, max_len) int32 row: the last ``max_len`` item indices (1-based), 0 on the left.

    Notebook 12 explains it.
    """
    row = np.zeros((1, max_len), dtype=np.int32)
    tail = columns[-max_len:] + 1
    if len(tail):
        row[0, max_len - len(tail):] = tail
    return row


def top_k_excluding(scores: np.ndarray, exclude: np.ndarray, k: int) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """The ``k`` best columns of a score vector, leaving out ``exclude`` (best first).

    Ties are broken by the lower column index, so answers are reproducible.

    Returns:
        ``(columns, scores)``; fewer than ``k`` when the catalogue runs out.

    Notebook 12 explains it.
    """
    scores = np.array(scores, dtype=np.float64)
    scores[exclude] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    order = part[np.lexsort((part, -scores[part]))]
    return order, scores[order]


class Scorer:
    """The compiled scorer: a ``tf.function`` with a fixed signature, warmed up at creation.

    Args:
        bundle: a :class:`~recsys_lib.serving.bundle.Bundle`.

    Attributes:
        bundle, model_version, max_len, item_ids (column -> item id), titles (column ->
        title), traces (how many times the tf.function was traced).

    Notebook 12 explains it.
    """

    kind = "compiled"

    def __init__(self, bundle) -> None:
        self.bundle = bundle
        self.model_version = bundle.model_version
        recommender = bundle.recommender
        self.model = recommender.model_
        self.max_len = int(recommender.max_len)
        self.item_ids = np.asarray(recommender.items_.ids_).astype(np.int64)
        self.index_of = {int(item): col for col, item in enumerate(self.item_ids)}
        titles = bundle.items["title"].reindex(self.item_ids).fillna("")
        self.titles = [str(t) for t in titles]
        popular = [self.index_of.get(int(i), -1) for i in bundle.popularity]
        keep = np.array([c >= 0 for c in popular], dtype=bool)
        self.popular_columns = np.array(popular, dtype=np.int64)[keep]
        self.popular_counts = np.asarray(bundle.popularity_counts, dtype=np.float64)[keep]
        self.traces = 0
        self._unit_vectors: np.ndarray | None = None
        self._setup()
        self.warm_up()

    # ---------------------------------------------------------------- the model call
    def _setup(self) -> None:
        """Build the compiled function (subclasses build what they need)."""
        import tensorflow as tf

        model, spec = self.model, tf.TensorSpec((None, self.max_len), tf.int32,
                                                name="sequences")

        @tf.function(input_signature=[spec])
        def last_scores(sequences):
            self.traces += 1  # Python side effect: runs only while tracing
            hidden = model.hidden(sequences, training=False)
            return model.logits(hidden[:, -1, :])[:, 1:]

        self._compiled = last_scores

    def score_batch(self, sequences: np.ndarray) -> np.ndarray:
        """Scores (batch, n_items) after each left-padded (batch, max_len) int32 row.

        Notebook 12 explains it.
        """
        return self._compiled(sequences).numpy()

    def warm_up(self) -> None:
        """Run the model once (and trace it), so the first request is not the slow one.

        Notebook 12 explains it.
        """
        self.score_batch(np.zeros((1, self.max_len), dtype=np.int32))

    # ---------------------------------------------------------------- requests
    def known_columns(self, history: list[int]) -> tuple[np.ndarray, list[int]]:
        """Split a history of item ids into model columns (in order) and unknown ids.

        Returns:
            ``(columns, unknown)``: 0-based columns of the known items, oldest first, and
            the unknown ids in first-seen order, each once.

        Notebook 12 explains it.
        """
        columns, unknown = [], {}
        for item in history:
            col = self.index_of.get(item)
            if col is None:
                unknown[item] = None
            else:
                columns.append(col)
        return np.asarray(columns, dtype=np.int64), list(unknown)

    def popular(self, exclude: np.ndarray, k: int) -> tuple[list[int], list[float]]:
        """The ``k`` most popular items not in ``exclude`` (columns); score = count.

        Notebook 12 explains it.
        """
        mask = ~np.isin(self.popular_columns, exclude)
        columns = self.popular_columns[mask][:k]
        return self.item_ids[columns].tolist(), self.popular_counts[mask][:k].tolist()

    def _prepare(self, history: list[int], k: int) -> tuple:
        """``(k, columns, unknown, fallback)``: the checked k, the known columns, the unknown
        ids, and the popularity answer when no item is known (cold start), else None."""
        k = check_k(k)
        columns, unknown = self.known_columns(history)
        if len(columns):
            return k, columns, unknown, None
        items, scores = self.popular(columns, k)
        return k, columns, unknown, Recommendation(items, scores, unknown, POPULARITY, 0)

    def recommend_detailed(self, history: list[int], k: int = 10) -> Recommendation:
        """Like :meth:`recommend`, returning a :class:`Recommendation` (with history_used).

        Notebook 12 explains it.
        """
        k, columns, unknown, fallback = self._prepare(history, k)
        if fallback is not None:
            return fallback
        scores = self.score_batch(pad_left(columns, self.max_len))[0]
        return self._ranked(scores, columns, k, unknown)

    def _ranked(self, scores: np.ndarray, columns: np.ndarray, k: int,
                unknown: list[int]) -> Recommendation:
        """Top-k of one score row, the history excluded, as a Recommendation."""
        top, values = top_k_excluding(scores, columns, k)
        return Recommendation(self.item_ids[top].tolist(), values.tolist(), unknown, None,
                              min(len(columns), self.max_len))

    def recommend(self, history: list[int], k: int = 10) -> tuple:
        """Top-k items after a history of item ids (oldest first).

        Args:
            history: item ids; unknown ones are skipped; only the ``max_len`` most recent
                known ones are read; none of them is recommended.
            k: how many items (fewer when the catalogue runs out).

        Returns:
            ``(items, scores, unknown, fallback)``: item ids best first, their scores, the
            unknown ids of the history, and None or ``"popularity"`` (empty or all-unknown
            history; scores are then interaction counts).

        Raises:
            ArgumentError: ``k`` is not an integer >= 1.

        Notebook 12 explains it.
        """
        return self.recommend_detailed(history, k).as_tuple()

    async def arecommend(self, history: list[int], k: int = 10) -> Recommendation:
        """:meth:`recommend_detailed` for the async server (runs at once, in the event loop).

        Notebook 12 explains it.
        """
        return self.recommend_detailed(history, k)

    # ---------------------------------------------------------------- similar items
    def item_vectors(self) -> np.ndarray:
        """The model's item embeddings, (n_items, d_model), in column order.

        Notebook 12 explains it.
        """
        table = self.model.embed.item_embedding.embeddings
        return np.asarray(table.numpy() if hasattr(table, "numpy") else table)[1:]

    def similar(self, item_id: int, k: int = 10) -> tuple[list[int], list[float]]:
        """The ``k`` items whose embeddings are closest (cosine) to ``item_id``'s.

        Returns:
            ``(items, scores)``, best first, the item itself left out.

        Raises:
            KeyError: ``item_id`` is not in the model's catalogue.
            ArgumentError: ``k`` is not an integer >= 1.

        Notebook 12 explains it.
        """
        k = check_k(k)
        if item_id not in self.index_of:
            raise KeyError(f"item {item_id} is not in the catalogue of model "
                           f"{self.model_version}")
        if self._unit_vectors is None:  # computed on first use, once per model
            vectors = self.item_vectors().astype(np.float64)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            self._unit_vectors = vectors / np.maximum(norms, 1e-12)
        col = self.index_of[item_id]
        sims = self._unit_vectors @ self._unit_vectors[col]
        top, values = top_k_excluding(sims, np.array([col]), k)
        return self.item_ids[top].tolist(), values.tolist()

    def close(self) -> None:
        """Release what the scorer holds (nothing for this one).

        Notebook 12 explains it.
        """


class NaiveScorer(Scorer):
    """The model called eagerly per request (scores at every position), for comparison.

    Notebook 12 explains it.
    """

    kind = "naive"

    def _setup(self) -> None:
        pass

    def score_batch(self, sequences: np.ndarray) -> np.ndarray:
        """All-position logits computed eagerly, then the last position kept."""
        logits = self.model(sequences, training=False)
        return np.asarray(logits)[:, -1, 1:]


class BatchingScorer(Scorer):
    """The compiled scorer behind a queue that scores concurrent requests in one batch.

    Args:
        bundle: a Bundle.
        max_batch: the most requests scored in one call.
        max_wait_ms: how long the first request of a batch waits for others.

    :meth:`arecommend` queues the request; a worker task (one per event loop) takes the
    first waiting request, gathers more for up to ``max_wait_ms`` or ``max_batch``, then
    scores and ranks the batch in a worker thread. :meth:`recommend` (synchronous) scores
    one request alone.

    Notebook 12 explains it.
    """

    kind = "batched"

    def __init__(self, bundle, max_batch: int = 64, max_wait_ms: float = 2.0) -> None:
        self.max_batch = check_int("max_batch", max_batch)
        self.max_wait = check_float("max_wait_ms", max_wait_ms, strict=False) / 1000.0
        self._loop = self._queue = self._task = None
        self._closed = False
        self.batch_sizes: list[int] = []
        super().__init__(bundle)

    def _ensure_worker(self) -> asyncio.Queue:
        """The queue of the worker of the running event loop (started on first use)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._worker(self._queue))
        return self._queue

    async def arecommend(self, history: list[int], k: int = 10) -> Recommendation:
        """Queue one request and wait for its batch to be scored.

        Returns:
            A :class:`Recommendation`.

        Raises:
            ArgumentError: ``k`` is not an integer >= 1.

        Notebook 12 explains it.
        """
        k, columns, unknown, fallback = self._prepare(history, k)
        if fallback is not None:
            return fallback
        if self._closed:
            return await asyncio.to_thread(self.recommend_detailed, history, k)
        future = asyncio.get_running_loop().create_future()
        self._ensure_worker().put_nowait((columns, k, unknown, future))
        return await future

    async def _worker(self, queue: asyncio.Queue) -> None:
        """Gather requests into batches and score each batch in a thread, until closed."""
        while True:
            batch, stop = await self._gather(queue)
            if batch:
                await self._score_requests(batch)
            if stop:
                return

    async def _gather(self, queue: asyncio.Queue) -> tuple[list, bool]:
        """The next batch: the first waiting request and those within max_wait / max_batch."""
        first = await queue.get()
        if first is None:
            return [], True
        batch, loop = [first], asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                wait = deadline - loop.time()
                item = queue.get_nowait() if wait <= 0 else await asyncio.wait_for(
                    queue.get(), wait)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    async def _score_requests(self, batch: list) -> None:
        """Score and rank a batch in a worker thread; hand each request its answer."""
        self.batch_sizes.append(len(batch))
        try:
            answers = await asyncio.to_thread(self._answers, batch)
        except Exception as err:  # every waiting request gets the error, none hangs
            for *_, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        for (*_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)

    def _answers(self, batch: list) -> list[Recommendation]:
        """One model call for the whole batch, then one ranking per request."""
        sequences = np.concatenate([pad_left(cols, self.max_len) for cols, *_ in batch])
        scores = self.score_batch(sequences)
        return [self._ranked(scores[row], cols, k, unknown)
                for row, (cols, k, unknown, _) in enumerate(batch)]

    def close(self) -> None:
        """Let the worker finish the queued requests, then stop; later calls score alone.

        Notebook 12 explains it.
        """
        self._closed = True
        if self._queue is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._queue.put_nowait, None)


def make_scorer(bundle, kind: str = "compiled", **options) -> Scorer:
    """Build and warm up the scorer of ``kind`` for a bundle.

    Args:
        bundle: a loaded Bundle.
        kind: ``"compiled"``, ``"naive"`` or ``"batched"``.
        options: ``max_batch`` and ``max_wait_ms`` for ``"batched"``.

    Returns:
        A ready :class:`Scorer`.

    Raises:
        ArgumentError: an unknown kind or bad options.

    Notebook 12 explains it.
    """
    check_choice("scorer", kind, SCORER_KINDS)
    classes = {"compiled": Scorer, "naive": NaiveScorer, "batched": BatchingScorer}
    if options and kind != "batched":
        raise TypeError(f"scorer {kind!r} takes no options, got {sorted(options)}")
    return classes[kind](bundle, **options)
