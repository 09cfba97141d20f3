"""Item vectors from ids, from content, or both: a pooled-history next-item model (notebook 14).

A collaborative model learns one free vector per item id; an item nobody has used yet has no
trained vector, so the model cannot place it (the item cold start). A content model computes
the vector from what is known about every item on day one, here its genres, decade and title
words; it can rank new items but cannot learn what the ids know beyond the content. The
fused model adds both parts and, during training, zeroes the id part of a random share of the
items at every step (*id dropout*, the idea of DropoutNet, Volkovs et al., 2017), so it also
learns to score items from their content alone, as it must for items whose id was never
trained.

* :func:`item_content_features`: one row of content features per item (genres multi-hot,
  decade one-hot, title TF-IDF reduced by a truncated SVD), each block scaled to unit length.
* :func:`pooled_history_model`: a small Keras model. Item vectors come from an id embedding
  (``"id"``), an MLP over the content features (``"content"``) or their sum (``"fused"``);
  the user vector is the mean of the vectors of the history items (padding left out) through
  a linear Dense layer; the logits are its dot products with every item vector (tied), with
  column 0 (padding) masked.
* :func:`next_item_examples`: (history prefix -> next item) at every position of every
  history, the training examples (also of notebook 14's differentially private training).
* :class:`FusionRecommender`: the model behind the course's recommender interface, trained
  with the full softmax and validation early stopping (:mod:`recsys_lib.training`).

The id part of a catalogue item without training interactions (passed to ``fit`` with
``items=``) is exactly zero, in training and in scoring: with the full softmax every item's
output vector would otherwise get gradients (it is pushed below the targets), so an
"untrained" id vector would not be neutral. In ``"id"`` mode such an item therefore scores 0
for every user, whatever the training, and cannot be ranked against other new items.

Explained in notebook 14.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp
from keras import ops
from scipy.sparse.linalg import svds

from recsys_lib.checks import check_choice, check_float, check_int
from recsys_lib.config import DEFAULT_SEED
from recsys_lib.models.content import item_documents, tfidf_matrix
from recsys_lib.models.sasrec import SequenceRecommender, left_pad, tied_logits

#: The three ways to build an item vector.
MODES = ("id", "content", "fused")
#: The columns :func:`item_content_features` reads.
ITEM_COLUMNS = ("item_id", "title", "genres", "year")
#: Above this many cells the title SVD uses ``scipy.sparse.linalg.svds``, below it NumPy's.
DENSE_SVD_CELLS = 2_000_000


# ---------------------------------------------------------------------- content features
def item_content_features(items: pd.DataFrame, title_dims: int = 32) -> pd.DataFrame:
    """Content features of every item: genres, release decade and title words.

    Three blocks of columns:

    * ``genre:<name>``: genres multi-hot (``"(no genres listed)"`` sets none);
    * ``decade:<1990s>``: release decade one-hot, ``decade:unknown`` for a missing year;
    * ``title:<0..title_dims-1>``: the TF-IDF rows of the title words (notebook 02's
      :func:`~recsys_lib.models.content.item_documents`, year and stop words removed)
      reduced by a truncated SVD to ``title_dims`` coordinates (the item coordinates
      ``U * S``, components by decreasing singular value, each component's sign chosen so
      that its largest entry in absolute value is positive; zero columns when the titles
      have fewer dimensions).

    Scaling: each block's row is scaled to unit L2 norm per item (all zeros when the item
    has nothing in that block), so every block weighs the same: it adds at most 1 to an
    item's squared norm and exactly the cosine of the two items' blocks to a dot product,
    however many genres, decades or SVD dimensions it has.

    Args:
        items: table with ``item_id, title, genres, year`` (as from ``load_movielens``);
            ``year`` may be missing (NA) for some items.
        title_dims: SVD dimensions of the title block (>= 1).

    Returns:
        A float DataFrame indexed by item_id (the order of ``items``), one column per
        feature; the same input gives the same output.

    Raises:
        ValueError: not a DataFrame, missing columns, no rows, repeated item ids, or a year
            that is not a number.
        ArgumentError: ``title_dims`` is not an integer >= 1.

    Explained in notebook 14.
    """
    _check_items(items)
    title_dims = check_int("title_dims", title_dims)
    ids = pd.Index(items["item_id"].to_numpy(), name="item_id")
    blocks = [genre_block(items), decade_block(items), title_block(items, title_dims)]
    return pd.concat([block.set_axis(ids) for block in blocks], axis=1)


def _check_items(items: pd.DataFrame) -> None:
    if not isinstance(items, pd.DataFrame):
        raise ValueError(f"items must be a pandas DataFrame with columns {list(ITEM_COLUMNS)}, "
                         f"got {type(items).__name__}")
    missing = [c for c in ITEM_COLUMNS if c not in items.columns]
    if missing:
        raise ValueError(f"items is missing column(s) {missing}; it needs "
                         f"{list(ITEM_COLUMNS)} (as from load_movielens)")
    if items.empty:
        raise ValueError("items is empty: there is no item to build features for")
    repeated = items["item_id"][items["item_id"].duplicated()]
    if len(repeated):
        raise ValueError(f"items repeats {repeated.nunique()} item id(s), e.g. "
                         f"{repeated.unique()[:5].tolist()}: keep one row per item")


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` with every row scaled to L2 norm 1; all-zero rows stay zero.

    Explained in notebook 14.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 1e-12)


def genre_block(items: pd.DataFrame) -> pd.DataFrame:
    """Genres multi-hot (``genre:<name>`` columns, lower case), rows scaled to unit norm.

    Explained in notebook 14.
    """
    docs = item_documents(items, use_titles=False)  # genre:<name> tokens, no-genre dropped
    names = sorted({token for doc in docs for token in doc})
    position = {name: col for col, name in enumerate(names)}
    values = np.zeros((len(docs), len(names)))
    for row, doc in enumerate(docs):
        values[row, [position[token] for token in doc]] = 1.0
    return pd.DataFrame(unit_rows(values), columns=names)


def decade_block(items: pd.DataFrame) -> pd.DataFrame:
    """Release decade one-hot (``decade:1990s``, ..., ``decade:unknown`` for no year).

    Raises:
        ValueError: a year that is not a number.

    Explained in notebook 14.
    """
    raw = items["year"]
    years = pd.to_numeric(raw, errors="coerce")
    bad = raw[years.isna() & raw.notna()]
    if len(bad):
        raise ValueError(f"{len(bad)} year(s) are not numbers, e.g. {bad.tolist()[:5]}: "
                         "give a year or leave it missing (NA)")
    labels = [f"decade:{int(y) // 10 * 10}s" if pd.notna(y) else "decade:unknown"
              for y in years]
    names = sorted(set(labels) | {"decade:unknown"})
    values = np.zeros((len(labels), len(names)))
    values[np.arange(len(labels)), [names.index(label) for label in labels]] = 1.0
    return pd.DataFrame(values, columns=names)


def title_block(items: pd.DataFrame, title_dims: int) -> pd.DataFrame:
    """Title words: TF-IDF, truncated SVD to ``title_dims`` columns, rows scaled to unit norm.

    Explained in notebook 14.
    """
    docs = item_documents(items, use_titles=True)
    words = [[token for token in doc if not token.startswith("genre:")] for doc in docs]
    tfidf, _ = tfidf_matrix(words)
    coordinates = truncated_svd(tfidf, title_dims)
    return pd.DataFrame(unit_rows(coordinates), columns=[f"title:{i}" for i in range(title_dims)])


def truncated_svd(matrix: sp.spmatrix, dims: int) -> np.ndarray:
    """Row coordinates ``U * S`` of the ``dims`` largest singular values of ``matrix``.

    Components come by decreasing singular value, each with the sign that makes its
    largest entry in absolute value positive (so the result does not depend on the
    solver's arbitrary signs); missing dimensions (rank below ``dims``) are zero columns.
    Small matrices use NumPy's dense SVD; larger ones ``scipy.sparse.linalg.svds`` with a
    fixed start vector (deterministic).

    Returns:
        (n_rows, dims) float64 array.

    Explained in notebook 14.
    """
    n_rows, n_cols = matrix.shape
    out = np.zeros((n_rows, dims))
    rank = min(dims, n_rows, n_cols)
    if rank == 0 or matrix.nnz == 0:
        return out
    if n_rows * n_cols <= DENSE_SVD_CELLS or rank >= min(n_rows, n_cols) - 1:
        u, s, _ = np.linalg.svd(matrix.toarray(), full_matrices=False)
        u, s = u[:, :rank], s[:rank]
    else:
        start = np.random.default_rng(0).standard_normal(min(n_rows, n_cols))
        u, s, _ = svds(matrix.astype(np.float64), k=rank, v0=start)
        order = np.argsort(-s, kind="stable")
        u, s = u[:, order], s[order]
    coordinates = u * s
    largest = np.argmax(np.abs(coordinates), axis=0)
    signs = np.sign(coordinates[largest, np.arange(rank)])
    out[:, :rank] = coordinates * np.where(signs == 0, 1.0, signs)
    return out


# ---------------------------------------------------------------------- the Keras model
@keras.saving.register_keras_serializable(package="recsys_lib")
class PooledHistory(keras.Model):
    """Maps left-padded item-index histories (batch, T) to logits (batch, n_items + 1).

    Item index ``i`` (1..n_items) is the catalogue's item ``i - 1``; 0 is padding. Column 0
    of the logits is forced to -1e9 (never predicted). Two non-trainable weights hold the
    item data: ``item_features`` (n_items + 1, n_features), row 0 zeros, in the content
    modes; ``id_known`` (n_items + 1,), 1 for items whose id vector is used and trained,
    0 for padding and new items. Build it with :func:`pooled_history_model`.

    Explained in notebook 14.
    """

    def __init__(self, n_items: int, d_model: int = 32, max_len: int = 50, mode: str = "fused",
                 n_features: int = 0, id_dropout: float = 0.0, seed: int = 0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_items, self.d_model, self.max_len = n_items, d_model, max_len
        self.mode, self.n_features = mode, n_features
        self.id_dropout, self.seed = id_dropout, seed
        self.uses_ids, self.uses_content = mode in ("id", "fused"), mode in ("content", "fused")
        if self.uses_ids:
            self.id_embedding = keras.layers.Embedding(n_items + 1, d_model, name="id_embedding")
        if self.uses_content:
            self.content_hidden = keras.layers.Dense(d_model, activation="relu",
                                                     name="content_hidden")
            self.content_out = keras.layers.Dense(d_model, name="content_out")
        self.user_dense = keras.layers.Dense(d_model, name="user_dense")
        self.dropout_seed = keras.random.SeedGenerator(seed)

    def build(self, input_shape) -> None:
        rows = self.n_items + 1
        self.id_known = self.add_weight(shape=(rows,), initializer="zeros", trainable=False,
                                        name="id_known")
        if self.uses_ids:
            self.id_embedding.build((None,))
        if self.uses_content:
            self.item_features = self.add_weight(shape=(rows, self.n_features),
                                                 initializer="zeros", trainable=False,
                                                 name="item_features")
            self.content_hidden.build((None, self.n_features))
            self.content_out.build((None, self.d_model))
        self.user_dense.build((None, self.d_model))
        self.built = True

    def item_table(self, training=None):
        """Every item's vector, (n_items + 1, d_model), row 0 (padding) zeros.

        The id part is the embedding times ``id_known`` and, in training with id dropout,
        times a fresh 0/1 draw per item (kept with probability ``1 - id_dropout``, not
        rescaled: a dropped item looks exactly like a new one).
        """
        real = 1.0 - ops.one_hot(ops.zeros((), "int32"), self.n_items + 1)  # 0 for padding
        table = 0.0
        if self.uses_ids:
            keep = self.id_known
            if training and self.mode == "fused" and self.id_dropout > 0:
                draw = keras.random.uniform((self.n_items + 1,), seed=self.dropout_seed)
                keep = keep * ops.cast(draw >= self.id_dropout, keep.dtype)
            table = table + self.id_embedding.embeddings * keep[:, None]
        if self.uses_content:
            content = self.content_out(self.content_hidden(self.item_features))
            table = table + content * real[:, None]
        return table

    def user_vectors(self, sequences, table):
        """Mean of the history items' vectors (padding left out) through a linear Dense."""
        vectors = ops.take(table, ops.cast(sequences, "int32"), axis=0)  # (batch, T, d)
        real = ops.cast(ops.not_equal(sequences, 0), vectors.dtype)[..., None]  # (batch, T, 1)
        mean = ops.sum(vectors * real, axis=1) / ops.maximum(ops.sum(real, axis=1), 1.0)
        return self.user_dense(mean)

    def call(self, sequences, training=None):
        table = self.item_table(training)
        return tied_logits(self.user_vectors(sequences, table), table, self.n_items)

    def get_config(self) -> dict:
        return {"n_items": self.n_items, "d_model": self.d_model, "max_len": self.max_len,
                "mode": self.mode, "n_features": self.n_features,
                "id_dropout": self.id_dropout, "seed": self.seed, "name": self.name}


def pooled_history_model(n_items: int, d_model: int = 32, max_len: int = 50,
                         item_features: np.ndarray | None = None, mode: str = "fused",
                         id_dropout: float = 0.0, known_items: np.ndarray | None = None,
                         seed: int = 0) -> PooledHistory:
    """A built, untrained :class:`PooledHistory` model: histories in, logits out.

    Input: (batch, max_len) int item indices, index = position in the catalogue + 1, 0 =
    padding (left or anywhere: the mean leaves it out). Output: (batch, n_items + 1) logits,
    column 0 = padding at -1e9, so targets are item index + 1 (sparse categorical
    cross-entropy ``from_logits=True``). A plain ``keras.Model`` with no custom training
    step: ``compile`` + ``fit`` or any other trainer works.

    Args:
        n_items: catalogue size.
        d_model: width of the item and user vectors.
        max_len: history length the input has.
        item_features: (n_items, n_features) finite content features, row ``i`` for item
            index ``i + 1`` (e.g. ``item_content_features(items).loc[ids].to_numpy()``);
            required for ``"content"`` and ``"fused"``, ignored for ``"id"``.
        mode: ``"id"`` (an embedding table), ``"content"`` (Dense relu -> Dense over the
            features) or ``"fused"`` (their sum).
        id_dropout: in ``"fused"`` mode, the probability that an item's id part is zeroed
            in a training step, in [0, 1); no effect in the other modes or at inference.
        known_items: (n_items,) booleans, True for items whose id vector is used (trained
            items); False ones (new items) have an id part of exactly zero. Default: all.
        seed: seeds the id dropout draws (the initial weights follow Keras' global seed).

    Returns:
        The built model.

    Raises:
        ArgumentError: a size that is not a positive integer, an unknown mode, a dropout
            outside [0, 1).
        ValueError: features missing, of the wrong shape, or not finite; ``known_items``
            of the wrong length.

    Explained in notebook 14.
    """
    n_items, d_model = check_int("n_items", n_items), check_int("d_model", d_model)
    max_len = check_int("max_len", max_len)
    check_choice("mode", mode, MODES)
    id_dropout = check_float("id_dropout", id_dropout, strict=False, maximum=1.0)
    seed = check_int("seed", seed, minimum=0)
    features = None
    if mode != "id":
        features = _checked_features(item_features, n_items, mode)
    known = np.ones(n_items, dtype=bool) if known_items is None else np.asarray(known_items)
    if known.shape != (n_items,):
        raise ValueError(f"known_items must have one boolean per item, shape ({n_items},), "
                         f"got shape {known.shape}")
    model = PooledHistory(n_items, d_model, max_len, mode,
                          0 if features is None else features.shape[1], id_dropout, seed,
                          name=f"pooled_history_{mode}")
    model.build((None, max_len))
    model.id_known.assign(np.concatenate([[0.0], known.astype(np.float32)]).astype(np.float32))
    if features is not None:
        model.item_features.assign(np.vstack([np.zeros((1, features.shape[1])), features])
                                   .astype(np.float32))
    return model


def _checked_features(item_features, n_items: int, mode: str) -> np.ndarray:
    if item_features is None:
        raise ValueError(f"mode {mode!r} needs item_features, one row per item (e.g. from "
                         "item_content_features(items)); use mode='id' without them")
    features = np.asarray(item_features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] != n_items or features.shape[1] == 0:
        raise ValueError(f"item_features must be an (n_items, n_features) = ({n_items}, >= 1) "
                         f"array, got shape {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError("item_features hold NaN or infinite values: clean them first")
    return features


# ---------------------------------------------------------------------- training examples
def next_item_examples(histories: Sequence[np.ndarray],
                       max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(history prefix -> next item) at every position of every history.

    For a history ``s`` (item indices >= 1, oldest first) and every ``t`` from 1 to
    ``len(s) - 1``, the input is ``s[max(0, t - max_len):t]`` left-padded with 0 to
    ``max_len`` and the target ``s[t]``; histories shorter than 2 give none.

    Args:
        histories: one array of item indices (>= 1) per user.
        max_len: the input width (older items are dropped).

    Returns:
        ``(inputs, targets)``: (n_examples, max_len) and (n_examples,) int32 arrays, user
        by user, oldest position first.

    Raises:
        ArgumentError: ``max_len`` is not an integer >= 1.
        ValueError: an index below 1 in a history (0 is padding).

    Explained in notebook 14.
    """
    max_len = check_int("max_len", max_len)
    inputs, targets = [np.zeros((0, max_len), np.int32)], [np.zeros(0, np.int32)]
    for number, history in enumerate(histories):
        history = np.asarray(history, dtype=np.int64).ravel()
        if len(history) and history.min() < 1:
            raise ValueError(f"history {number} holds item index {history.min()}; indices "
                             "start at 1 (item position + 1, 0 is padding)")
        if len(history) < 2:
            continue
        padded = np.concatenate([np.zeros(max_len, np.int64), history])
        windows = np.lib.stride_tricks.sliding_window_view(padded, max_len)  # row t: s[<t]
        inputs.append(windows[1:len(history)].astype(np.int32))
        targets.append(history[1:].astype(np.int32))
    return np.concatenate(inputs), np.concatenate(targets)


# ---------------------------------------------------------------------- the recommender
class FusionRecommender(SequenceRecommender):
    """Next-item recommender with id, content or fused item vectors (:func:`pooled_history_model`).

    Training: :func:`next_item_examples` of every user's time-ordered history, full softmax
    over the catalogue, Adam, the course's loop with validation early stopping. Scoring
    reads each user's last ``max_len`` items. Catalogue items with no training interaction
    (``fit(..., items=...)``) keep an id part of exactly zero: in ``"id"`` mode they score 0
    for everyone; in ``"content"`` and ``"fused"`` mode their content places them.

    Args:
        item_features: content features indexed by item_id (e.g.
            :func:`item_content_features`), with a row for every catalogue item; required
            for ``"content"`` and ``"fused"``, not used for ``"id"``.
        mode: ``"id"``, ``"content"`` or ``"fused"``.
        d_model: width of the item and user vectors.
        max_len: history items the model reads (the most recent ones).
        id_dropout: fused mode: probability that an item's id part is zeroed in a training
            step.
        epochs, batch_size, learning_rate, patience, eval_every, progress, seed: as for
            every Keras recommender (:class:`~recsys_lib.training.KerasRecommender`).
        jit_compile: compile the training step with XLA.

    Attributes set by ``fit`` (besides the base class's):
        model_: the Keras model; histories_: user_id -> item indices (1-based);
        known_items_: (n_items,) booleans, True for items with training interactions;
        cold_items_: ids of the catalogue items without any.

    Raises:
        ValueError: an unknown mode, content modes without features, features that are not
            a numeric, finite DataFrame with one row per item id.
        ArgumentError: a bad size, rate or count.

    Explained in notebook 14.
    """

    name = "fusion"
    label = "fusion model"

    def __init__(self, item_features: pd.DataFrame | None = None, mode: str = "fused",
                 d_model: int = 32, max_len: int = 50, id_dropout: float = 0.3,
                 epochs: int = 20, batch_size: int = 512, learning_rate: float = 5e-3,
                 patience: int | None = 3, eval_every: int = 1, progress: bool = True,
                 seed: int = DEFAULT_SEED, jit_compile: bool = False) -> None:
        super().__init__(epochs, batch_size, learning_rate, patience, eval_every, progress,
                         seed)
        self.mode = check_choice("mode", mode, MODES)
        self.d_model, self.max_len = check_int("d_model", d_model), check_int("max_len", max_len)
        self.id_dropout = check_float("id_dropout", id_dropout, strict=False, maximum=1.0)
        self.jit_compile = bool(jit_compile)
        self.item_features = None if mode == "id" else _checked_frame(item_features, mode)
        self.name = f"fusion-{mode}"

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.known_items_ = np.bincount(matrix.indices, minlength=matrix.shape[1]) > 0
        self.cold_items_ = self.items_.ids_[~self.known_items_]
        self._features = None if self.item_features is None else self._aligned_features()
        super()._fit(matrix)

    def _aligned_features(self) -> np.ndarray:
        """The feature rows of the catalogue, in ``items_.ids_`` order."""
        missing = pd.Index(self.items_.ids_).difference(self.item_features.index)
        if len(missing):
            raise ValueError(f"item_features has no row for {len(missing)} catalogue item(s), "
                             f"e.g. {missing[:5].tolist()}: build the features from an item "
                             "table that holds every training item and every item passed "
                             "with items=")
        return self.item_features.loc[self.items_.ids_].to_numpy(np.float64)

    def _training_windows(self, histories: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return next_item_examples(histories, self.max_len)

    def _build_model(self) -> PooledHistory:
        return pooled_history_model(len(self.items_), self.d_model, self.max_len,
                                    self._features, self.mode, self.id_dropout,
                                    known_items=self.known_items_, seed=self.seed)

    def _epoch_data(self, epoch: int):
        """The next-item examples (Keras shuffles them every epoch)."""
        return self.windows_

    def score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        """Scores over the catalogue (columns in ``items_.ids_`` order) after each history.

        Args:
            histories: item-index arrays (index = catalogue position + 1), oldest first; the
                last ``max_len`` items are read. An empty history gets the scores of the
                zero user vector through the Dense layer (prefer a popularity fallback).

        Returns:
            (len(histories), n_items) float array.

        Raises:
            ValueError: an index outside 1..n_items.

        Explained in notebook 14.
        """
        batch = left_pad(histories, self.max_len)
        if batch.size and (batch.min() < 0 or batch.max() > len(self.items_)):
            raise ValueError(f"history item indices must be in 1..{len(self.items_)} (catalogue "
                             f"position + 1), got {batch.min()}..{batch.max()}")
        out = [np.zeros((0, len(self.items_)))]
        for start in range(0, len(batch), 512):
            logits = self.model_(batch[start:start + 512], training=False)
            out.append(ops.convert_to_numpy(logits)[:, 1:])
        return np.concatenate(out)


def _checked_frame(item_features, mode: str) -> pd.DataFrame:
    if item_features is None:
        raise ValueError(f"mode {mode!r} needs item_features (e.g. "
                         "item_content_features(items)); use mode='id' without them")
    if not isinstance(item_features, pd.DataFrame) or item_features.empty:
        raise ValueError("item_features must be a non-empty DataFrame indexed by item_id, "
                         f"got {type(item_features).__name__}")
    if not item_features.index.is_unique:
        raise ValueError("item_features repeats an item id in its index: keep one row per item")
    try:
        values = item_features.to_numpy(np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"item_features must hold numbers only ({err})") from None
    if not np.isfinite(values).all():
        raise ValueError("item_features hold NaN or infinite values: clean them first")
    return item_features
