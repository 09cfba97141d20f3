"""A SASRec-style Transformer recommender trained for next-item prediction (notebook 10).

Model: causal self-attention blocks over the user's item sequence (learned positions,
pre-LN, dropout), a final layer norm, and scores for every catalogue item from the same item
embedding matrix used at the input (shared / tied embeddings).

Training: next-item prediction at every position of every training sequence with a *full
softmax cross-entropy* over the catalogue (Klenitskiy & Vasilev, 2023, found it much stronger
than the one-negative binary loss of the original SASRec paper). Histories are truncated from
the left, keeping the most recent items; padding never enters the loss, the attention or the
read-out (the last real position is always the last position, as sequences are left-padded).
Training runs through the course's one loop (:mod:`recsys_lib.training`): early stopping
watches validation NDCG@10 over the full catalogue and restores the best weights. A subclass
can change the loss alone by overriding :meth:`SASRecRecommender._training_model` and
:meth:`SASRecRecommender._epoch_data` (notebook 10 trains the one-negative loss that way).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp
from keras import ops

from recsys_lib.checks import check_float, check_int, check_k
from recsys_lib.config import DEFAULT_SEED
from recsys_lib.models.transformer import CausalTransformerBlock, ItemPositionEmbedding
from recsys_lib.preprocessing import IdEncoder
from recsys_lib.splits import order_by_user_time
from recsys_lib.training import KerasRecommender


def tied_logits(hidden, table, n_items: int):
    """Scores of every item index for each hidden state, ``hidden @ table.T`` (tied item
    embeddings), with column 0 (padding) forced to a large negative number.

    Args:
        hidden: (..., d) hidden states.
        table: (n_items + 1, d) the input item embedding matrix.
        n_items: catalogue size.

    Returns:
        (..., n_items + 1) float32 logits (also under a mixed precision policy).

    Explained in notebook 10 (mixed precision in notebook 13).
    """
    # Under a mixed precision policy (notebook 13) the product runs in the hidden states'
    # 16-bit type, but the scores are returned in float32: the softmax over the whole
    # catalogue (and its -1e9 for padding) needs float32's range and precision.
    scores = ops.matmul(hidden, ops.transpose(ops.cast(table, hidden.dtype)))
    scores = ops.cast(scores, "float32")
    pad = ops.one_hot(ops.zeros((), "int32"), n_items + 1) * -1e9
    return scores + ops.cast(pad, scores.dtype)


def plain_ids(item_ids: list) -> list:
    """Item ids as plain Python values (NumPy scalars become int/str) for a JSON config."""
    return [i.item() if isinstance(i, np.generic) else i for i in item_ids]


@keras.saving.register_keras_serializable(package="recsys_lib")
class SASRec(keras.Model):
    """Maps left-padded item sequences (batch, T) to logits over items (batch, T, n_items + 1).

    Column 0 of the logits (padding) is forced to a large negative number, so the model never
    predicts padding. ``item_ids`` (the original id of index 1..n) is stored in the config so a
    saved model can turn its outputs back into ids.

    Explained in notebook 10.
    """

    def __init__(self, n_items: int, max_len: int = 50, d_model: int = 64, num_heads: int = 2,
                 num_blocks: int = 2, d_ff: int | None = None, dropout: float = 0.2,
                 item_ids: list | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_items, self.max_len, self.d_model = n_items, max_len, d_model
        self.num_heads, self.num_blocks = num_heads, num_blocks
        self.d_ff = d_ff or 4 * d_model
        self.dropout_rate = dropout
        self.item_ids = list(item_ids) if item_ids is not None else list(range(1, n_items + 1))
        self.embed = ItemPositionEmbedding(n_items, max_len, d_model, dropout, name="embed")
        self.blocks = [CausalTransformerBlock(d_model, num_heads, self.d_ff, dropout,
                                              name=f"block_{i}") for i in range(num_blocks)]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")

    def build(self, input_shape) -> None:
        self.embed.build(input_shape)
        shape = (*input_shape, self.d_model)
        for block in self.blocks:
            block.build(shape)
        self.final_norm.build(shape)
        self.built = True

    def hidden(self, sequences, training=None, return_attention=False, item_vectors=None):
        """Hidden states (batch, T, d_model); optionally each block's attention weights
        (a list of (batch, heads, T, T) arrays). ``item_vectors`` (batch, T, d_model), if
        given, replaces the item embedding lookup (see :class:`ItemPositionEmbedding`; the
        attributions of notebook 14 differentiate with respect to it)."""
        real = ops.not_equal(sequences, 0)
        x = self.embed(sequences, training=training, item_vectors=item_vectors)
        maps = []
        for block in self.blocks:
            if return_attention:
                x, scores = block(x, real, training=training, return_attention_scores=True)
                maps.append(scores)
            else:
                x = block(x, real, training=training)
        x = self.final_norm(x)
        return (x, maps) if return_attention else x

    def logits(self, hidden):
        """Scores of every item index for each hidden state (tied item embeddings)."""
        return tied_logits(hidden, self.embed.item_embedding.embeddings, self.n_items)

    def call(self, sequences, training=None):
        return self.logits(self.hidden(sequences, training=training))

    def get_config(self) -> dict:
        return {"n_items": self.n_items, "max_len": self.max_len, "d_model": self.d_model,
                "num_heads": self.num_heads, "num_blocks": self.num_blocks, "d_ff": self.d_ff,
                "dropout": self.dropout_rate,
                "item_ids": plain_ids(self.item_ids),
                "name": self.name}


def left_pad(sequences: list[np.ndarray], max_len: int) -> np.ndarray:
    """Keep the last ``max_len`` entries of each sequence and pad with 0 on the left.

    Returns:
        (len(sequences), max_len) int32 array.

    Explained in notebook 10.
    """
    out = np.zeros((len(sequences), max_len), dtype=np.int32)
    for row, seq in enumerate(sequences):
        seq = np.asarray(seq)[-max_len:]
        if len(seq):
            out[row, max_len - len(seq):] = seq
    return out


def _bucket_width(batch: np.ndarray, max_len: int) -> int:
    """The smallest bucket width that holds every real item of a left-padded batch."""
    longest = int((batch > 0).sum(axis=1).max()) if len(batch) else 1
    return next(w for w in bucket_boundaries(max_len) if w >= longest)


def training_windows(sequences: list[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-item targets for every position: input = s[:-1], target = s[1:].

    A history longer than ``max_len + 1`` is cut into several windows from the end, so no
    interaction is wasted; the most recent window comes first.

    Returns:
        ``(inputs, targets)``, both (n_windows, max_len) int32, 0 = padding (no loss).

    Explained in notebook 10.
    """
    inputs, targets = [], []
    for seq in sequences:
        seq = np.asarray(seq)
        end = len(seq)
        while end >= 2:
            window = seq[max(0, end - max_len - 1):end]
            inputs.append(window[:-1])
            targets.append(window[1:])
            end -= max_len
    return left_pad(inputs, max_len), left_pad(targets, max_len)


def bucket_boundaries(max_len: int) -> list[int]:
    """Window widths of the length buckets: ``max_len`` / 4, / 2 and ``max_len``, each
    rounded up to a multiple of 8 (few distinct shapes, so XLA compiles few programs).

    Explained in notebook 13.
    """
    widths = {min(max_len, -(-max_len // (2 ** i) // 8) * 8) for i in range(3)}
    return sorted(w for w in widths if w > 0)


def length_batches(lengths: np.ndarray, batch_size: int, boundaries: list[int],
                   rng: np.random.Generator,
                   batch_tokens: int | None = None) -> list[tuple[np.ndarray, int]]:
    """Batches of window indices grouped by length: each window goes to the smallest bucket
    width that holds its real items, each bucket is shuffled and cut into batches, and the
    batches are shuffled, so an epoch still visits every window once in a random order.

    Args:
        lengths: (n_windows,) real items per window (>= 1).
        batch_size: windows per batch (the last batch of a bucket may be smaller).
        boundaries: increasing bucket widths, the last >= ``lengths.max()``.
        rng: a seeded NumPy Generator.
        batch_tokens: if given, a batch of width ``w`` holds ``batch_tokens // w`` windows
            instead of ``batch_size``: every step then computes about the same number of
            positions (wide batches of huge logit tensors are slower per position on a CPU).

    Returns:
        ``(indices, width)`` per batch: crop those windows to their last ``width`` columns.

    Raises:
        ValueError: a window longer than the largest bucket.

    Explained in notebook 13.
    """
    lengths = np.asarray(lengths)
    if len(lengths) and lengths.max() > boundaries[-1]:
        raise ValueError(f"a window has {lengths.max()} items, more than the largest bucket "
                         f"width {boundaries[-1]}; the last boundary must be max_len")
    bucket = np.searchsorted(np.asarray(boundaries), lengths)  # smallest width >= length
    batches = []
    for b, width in enumerate(boundaries):
        members = rng.permutation(np.flatnonzero(bucket == b))
        rows = rows_per_batch(width, batch_size, batch_tokens)
        batches += [(members[i:i + rows], width) for i in range(0, len(members), rows)]
    return [batches[i] for i in rng.permutation(len(batches))]


def rows_per_batch(width: int, batch_size: int, batch_tokens: int | None = None) -> int:
    """Windows in a batch of this width: ``batch_size``, or ``batch_tokens // width``.

    Explained in notebook 13.
    """
    return batch_size if batch_tokens is None else max(1, batch_tokens // width)


def bucketed_dataset(inputs: np.ndarray, targets: np.ndarray, batch_size: int,
                     rng: np.random.Generator, boundaries: list[int] | None = None,
                     batch_tokens: int | None = None):
    """One epoch of next-item batches as a ``tf.data.Dataset``, each batch cropped to its
    length bucket (left padding that no window of the batch needs is not computed). The
    last, smaller batch of a bucket is filled up with all-padding rows (loss weight 0), so
    each bucket has one shape and XLA compiles one program per bucket.

    The loss weights are the target mask times ``rows * width / mean targets per batch``:
    Keras divides a batch's weighted loss by ``rows * width``, so every real target
    weighs the same in every batch, whatever its width (the gradient of an epoch is that of
    the summed cross-entropy of its targets, up to one constant). The epoch loss Keras
    reports averages the batches weighted by their rows, so it is not comparable with the
    loss of ``bucketing=False``.

    Args:
        inputs, targets: (n_windows, max_len) left-padded arrays of :func:`training_windows`.
        batch_size: windows per batch.
        rng: a seeded NumPy Generator (the epoch's order).
        boundaries: bucket widths; default :func:`bucket_boundaries` of ``max_len``.
        batch_tokens: positions per batch instead of ``batch_size`` rows (see
            :func:`length_batches`).

    Returns:
        A dataset of ``(inputs, targets, weights)`` batches, prefetched.

    Explained in notebook 13.
    """
    import tensorflow as tf

    max_len = inputs.shape[1]
    boundaries = boundaries or bucket_boundaries(max_len)
    real = targets > 0
    batches = length_batches(real.sum(axis=1), batch_size, boundaries, rng, batch_tokens)
    per_batch = real.sum() / max(len(batches), 1)

    def generate():
        for rows, width in batches:
            x, y = inputs[rows, max_len - width:], targets[rows, max_len - width:]
            missing = rows_per_batch(width, batch_size, batch_tokens) - len(rows)
            if missing > 0:  # all-padding rows: no loss, no attention to them
                x, y = (np.pad(a, ((0, missing), (0, 0))) for a in (x, y))
            weight = (y > 0) * np.float32(len(x) * width / per_batch)
            yield x, y, weight.astype(np.float32)

    spec = tf.TensorSpec((None, None), tf.int32)
    return tf.data.Dataset.from_generator(
        generate, output_signature=(spec, spec, tf.TensorSpec((None, None), tf.float32))
    ).apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(tf.data.AUTOTUNE)


class SequenceRecommender(KerasRecommender):
    """What every next-item model of the course shares: time-ordered histories, left-padded
    training windows with a target at every position, the full-softmax loss, scoring after a
    history, ``add_history`` and saving. Subclasses (:class:`SASRecRecommender`, GRU4Rec) set
    ``label`` and ``max_len`` and build their network in :meth:`_build_model`; its ``hidden``
    and ``logits`` methods are all this class uses.

    Explained in notebook 10.
    """

    #: The model's name in messages.
    label = "sequence model"
    #: Longest history the network reads (set by the subclass).
    max_len: int
    #: Compile the training step with XLA (set by the subclass).
    jit_compile: bool

    def _build_model(self) -> keras.Model:
        """The untrained network for ``len(self.items_)`` items (subclasses implement it)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ fitting
    def fit(self, train: pd.DataFrame, items=None,
            validation: pd.DataFrame | None = None) -> SequenceRecommender:
        """Train on ``train`` (needs ``timestamp``); early-stop on ``validation`` if given.

        Args:
            train: interactions with ``user_id, item_id, timestamp``.
            items: extra catalogue item ids (never seen in training).
            validation: held-out next interactions of some training users (e.g.
                ``leave_last_out(...).val``), scored with full-ranking NDCG@10.

        Raises:
            ValueError: no ``timestamp`` column, or what the base class rejects.
        """
        if isinstance(train, pd.DataFrame) and "timestamp" not in train:
            raise ValueError(f"{self.label} needs a timestamp column to order each user's "
                             "history")
        return super().fit(train, items, validation)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        keras.utils.set_random_seed(self.seed)
        self.histories_ = self._histories(self.train_)
        self.windows_ = self._training_windows(list(self.histories_.values()))
        if not len(self.windows_[0]):
            raise ValueError("no user has two or more training interactions, so there is no "
                             f"next item to learn from; {self.label} needs histories of length "
                             ">= 2")
        self.model_ = self._build_model()
        if not self.model_.built:  # a warm start (BERT4Rec's pretrained=) is built already
            self.model_.build((None, self.max_len))
        self._train(self._training_model(), self._epoch_data, shuffle=True)

    def _training_windows(self, histories: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """The arrays :meth:`_epoch_data` draws from, one row per training window: here the
        next-item inputs and targets of :func:`training_windows` (BERT4Rec overrides it)."""
        return training_windows(histories, self.max_len)

    def _training_model(self) -> keras.Model:
        """The compiled Keras model that training fits: the network with the full softmax.

        Override it (with :meth:`_epoch_data`) to train the same network with another loss.
        """
        self.model_.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=self.jit_compile)
        return self.model_

    def _epoch_data(self, epoch: int):
        """Inputs, next-item targets and the loss mask (padding targets do not count); with
        ``bucketing``, a ``tf.data.Dataset`` of batches cropped to their length bucket
        (:func:`bucketed_dataset`, shuffled by ``(seed, epoch)``)."""
        inputs, targets = self.windows_
        if self._bucketing:
            rng = np.random.default_rng([self.seed, epoch])
            return bucketed_dataset(inputs, targets, self.batch_size, rng,
                                    batch_tokens=getattr(self, "batch_tokens", None))
        return inputs, targets, (targets > 0).astype("float32")

    @property
    def _bucketing(self) -> bool:
        """Whether training and scoring crop batches to length buckets (notebook 13)."""
        return bool(getattr(self, "bucketing", False))

    def _histories(self, table: pd.DataFrame) -> dict:
        """user_id -> array of item indices (1-based), oldest first."""
        ordered = order_by_user_time(table)
        idx = self.items_.transform(ordered["item_id"]) + 1
        users = ordered["user_id"].to_numpy()
        cuts = np.flatnonzero(users[1:] != users[:-1]) + 1
        return {chunk_users[0]: chunk for chunk_users, chunk in
                zip(np.split(users, cuts), np.split(idx, cuts), strict=True)}

    def add_history(self, interactions: pd.DataFrame,
                    unknown_items: str = "error") -> SASRecRecommender:
        """Append later interactions of known users to their histories, without retraining.

        A sequence model reads the history at prediction time, so the newest interactions
        (e.g. the validation item before predicting the test item) are used as input and are
        excluded from later recommendations as seen items.

        Args:
            interactions: rows with ``user_id, item_id, timestamp`` of training users.
            unknown_items: ``"error"`` raises for items the model has no embedding for;
                ``"skip"`` leaves them out and counts them in ``skipped_history_items_``.

        Raises:
            ValueError: unknown users, or unknown items with ``unknown_items="error"``.
        """
        if unknown_items not in ("error", "skip"):
            raise ValueError(f"unknown_items must be 'error' or 'skip', got {unknown_items!r}")
        ordered = order_by_user_time(interactions)
        known = ordered["item_id"].isin(self.items_.ids_)
        if unknown_items == "error" and not known.all():
            self.items_.transform(ordered["item_id"])  # raises, naming the unknown ids
        self.skipped_history_items_ = int((~known).sum())
        ordered = ordered[known]
        users = self.users_.transform(ordered["user_id"])
        items = self.items_.transform(ordered["item_id"])
        for user, item in zip(ordered["user_id"].to_numpy(), items, strict=True):
            self.histories_[user] = np.append(self.histories_[user], item + 1)
        extra = sp.csr_matrix((np.ones(len(items)), (users, items)), shape=self.matrix_.shape)
        self.matrix_ = (self.matrix_ + extra).tocsr()
        self.matrix_.data[:] = 1.0
        return self

    # ------------------------------------------------------------------ scoring
    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        users = self.users_.inverse_transform(user_idx)
        return self.score_histories([self.histories_[u] for u in users])

    def score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        """Scores over the catalogue (columns in ``items_.ids_`` order) for item-index histories.

        An empty history gets the scores of an all-padding input; prefer a popularity
        fallback for such users (notebook 12).
        """
        batch = left_pad(histories, self.max_len)
        out = []
        for start in range(0, len(batch), 256):
            chunk = batch[start:start + 256]
            width = _bucket_width(chunk, self.max_len) if self._bucketing else self.max_len
            hidden = self.model_.hidden(chunk[:, self.max_len - width:], training=False)
            logits = self.model_.logits(hidden[:, -1, :])  # last position = most recent item
            out.append(ops.convert_to_numpy(logits)[:, 1:])
        return np.concatenate(out) if out else np.zeros((0, len(self.items_)))

    def recommend_for_history(self, item_ids: list, k: int = 10,
                              exclude_seen: bool = True) -> list:
        """Top-k item ids after a history of item ids (oldest first), e.g. a new session.

        Unknown item ids raise ValueError; pass only items of the training catalogue.
        """
        k = check_k(k)
        history = self.items_.transform(item_ids) + 1
        scores = self.score_histories([history])[0]
        if exclude_seen:
            scores[history - 1] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        return self.items_.inverse_transform(top[np.isfinite(scores[top])]).tolist()

    # ------------------------------------------------------------------ saving
    def save(self, path: str) -> None:
        """Save the Keras model (weights, config, item ids) in the ``.keras`` format."""
        if not str(path).endswith(".keras"):
            raise ValueError(f"use a path ending in .keras, got {path}")
        self.model_.save(path)



class SASRecRecommender(SequenceRecommender):
    """Next-item Transformer recommender behind the course's recommender interface.

    Args:
        max_len: longest history the model reads (older items are dropped).
        d_model, num_heads, num_blocks, d_ff, dropout: model size (see :class:`SASRec`).
        epochs: maximum epochs; early stopping usually ends sooner.
        batch_size, learning_rate: Adam settings.
        patience: validations without a better validation NDCG@10 before stopping.
        eval_every: validate every this many epochs.
        progress: print one line per epoch (loss, validation NDCG@10 and HR@10, seconds).
        seed: seeds Keras, NumPy and Python for a reproducible run on CPU.
        jit_compile: compile the training step with XLA (1.3-1.5x faster for the benchmark's
            model on ml-100k on a CPU, slower for a small model over a large catalogue:
            notebook 13).
        bucketing: feed training batches through ``tf.data``, each cropped to the length
            bucket of its longest window, and crop scoring batches the same way (notebook
            13: the same model and loss, half the epoch time at ``max_len`` 200 on ml-100k;
            the benchmark does not use it). False (the default, which notebook 10's stored
            results were made with) pads every window to ``max_len``.
        batch_tokens: with bucketing, positions per batch (``batch_tokens // width``
            windows) instead of ``batch_size`` windows; e.g. ``128 * 50`` trains
            ``max_len=200`` with the step size of ``max_len=50`` (notebook 13).

    Raises:
        ArgumentError: a size or count that is not a positive integer, a dropout outside
            [0, 1), a learning rate that is not positive.

    Explained in notebook 10.
    """

    name = "sasrec"
    label = "SASRec"

    def __init__(self, max_len: int = 50, d_model: int = 64, num_heads: int = 2,
                 num_blocks: int = 2, d_ff: int | None = None, dropout: float = 0.2,
                 epochs: int = 200, batch_size: int = 128, learning_rate: float = 1e-3,
                 patience: int = 5, eval_every: int = 1, progress: bool = True,
                 seed: int = DEFAULT_SEED, jit_compile: bool = True,
                 bucketing: bool = False, batch_tokens: int | None = None) -> None:
        super().__init__(epochs, batch_size, learning_rate, patience, eval_every, progress,
                         seed)
        self.bucketing = bool(bucketing)
        self.batch_tokens = None if batch_tokens is None else check_int("batch_tokens",
                                                                         batch_tokens)
        self.max_len, self.d_model = check_int("max_len", max_len), check_int("d_model", d_model)
        self.num_heads = check_int("num_heads", num_heads)
        self.num_blocks = check_int("num_blocks", num_blocks)
        self.d_ff = None if d_ff is None else check_int("d_ff", d_ff)
        self.dropout = check_float("dropout", dropout, strict=False, maximum=1.0)
        self.jit_compile = bool(jit_compile)

    def _build_model(self) -> SASRec:
        return SASRec(len(self.items_), self.max_len, self.d_model, self.num_heads,
                      self.num_blocks, self.d_ff, self.dropout,
                      item_ids=self.items_.ids_.tolist())

    @classmethod
    def load(cls, path: str) -> SASRecRecommender:
        """Load a model saved with :meth:`save`; recommend with :meth:`recommend_for_history`.

        A loaded model knows its items but not the training users or their histories, so
        ``recommend(users)`` is not available: pass each user's history instead.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file is not a readable ``.keras`` archive (empty, truncated,
                corrupt), or holds another kind of model than :class:`SASRec`.
        """
        model = load_model_file(path, SASRec, "SASRecRecommender")
        rec = cls(max_len=model.max_len, d_model=model.d_model, num_heads=model.num_heads,
                  num_blocks=model.num_blocks, d_ff=model.d_ff, dropout=model.dropout_rate,
                  progress=False)
        rec.model_ = model
        rec.items_ = IdEncoder().fit(model.item_ids)
        rec.loaded_from_ = str(path)
        return rec


def load_model_file(path, model_class: type, saver: str):
    """``keras.saving.load_model`` with messages that say what is wrong with the file.

    Args:
        path: a ``.keras`` file.
        model_class: the Keras model class the file must hold (e.g. :class:`SASRec`).
        saver: what saves such files, named in the messages (e.g. ``"SASRecRecommender"``).

    Returns:
        The loaded model.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a readable ``.keras`` archive, or a model of another class.

    Explained in notebook 10.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}; save one with {saver}.save(path)")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a readable .keras archive (empty, truncated or "
                         f"corrupt); save the model again with {saver}.save(path)")
    try:
        model = keras.saving.load_model(path)
    except Exception as err:  # Keras raises many kinds for a damaged archive
        raise ValueError(f"{path} could not be loaded as a Keras model ({type(err).__name__}:"
                         f" {err}); save the model again with {saver}.save(path)") from err
    if not isinstance(model, model_class):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a {model_class.__name__} "
                         "model; load it with keras.saving.load_model or the class that saved it")
    return model
