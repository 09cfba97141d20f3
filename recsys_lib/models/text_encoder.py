"""Item texts, a small masked-token text Transformer, and a cold-start protocol (notebook 11).

The course's source article (section 4.3.2) pre-trains BERT on the texts users post. The text
of a film here is its title and genres (``"Toy Story (1995) | Adventure Animation ..."``):

* :func:`item_texts`, :func:`text_vectorizer` and :func:`tokenize` turn it into token ids with
  ``keras.layers.TextVectorization`` (id 0 = padding, 1 = out of vocabulary, 2.. = words);
* :func:`text_encoder` is the bidirectional Transformer of BERT4Rec
  (:class:`~recsys_lib.models.bert4rec.BERT4Rec`) with the *words* as its "items":
  ``n_items = vocab_size - 1`` and the [MASK] token ``vocab_size``;
* :func:`pretrain_text_encoder` trains it by masked-token prediction (BERT's masked language
  model, :func:`~recsys_lib.models.transformer.cloze_mask` with fresh masks every epoch)
  through the course's training loop; :func:`masked_token_loss` measures that task;
* :func:`text_embeddings`: one unit vector per text, the mean of the final hidden states over
  its real tokens.

The cold-start protocol: :func:`cold_start_split` holds out a random share of the items (with
enough ratings to evaluate) and *all* their interactions; the question is which of these new
items to show to whom. Scorers rank the cold items only: :func:`profile_scores` (the cosine
between a user's mean item vector and each candidate's vector, for TF-IDF rows or text
embeddings) and :func:`genre_share_scores` (popularity by genre); :func:`rank_candidates`
turns scores into top-k lists for :func:`recsys_lib.stats.per_user_metric`.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_lib.checks import check_float, check_int, check_k
from recsys_lib.models.bert4rec import BERT4Rec
from recsys_lib.models.sasrec import left_pad
from recsys_lib.models.transformer import cloze_mask
from recsys_lib.training import train_keras


# ---------------------------------------------------------------------- texts and tokens
def item_texts(items: pd.DataFrame) -> pd.Series:
    """One text per item: its title, ``" | "`` and its genres separated by spaces.

    ``"Toy Story (1995) | Adventure Animation Children Comedy Fantasy"``; MovieLens'
    ``"(no genres listed)"`` gives no genre words.

    Args:
        items: table with ``item_id, title, genres`` (as from ``load_movielens``).

    Returns:
        A Series of strings indexed by item_id.

    Raises:
        ValueError: an empty table or a missing column.

    Explained in notebook 11.
    """
    missing = {"item_id", "title", "genres"} - set(getattr(items, "columns", ()))
    if missing:
        raise ValueError(f"items needs the columns item_id, title, genres; missing "
                         f"{sorted(missing)}")
    if items.empty:
        raise ValueError("items is empty: there is no text to build")
    genres = items["genres"].fillna("").astype(str).str.replace("(no genres listed)", "",
                                                                regex=False)
    texts = items["title"].fillna("").astype(str) + " | " + genres.str.replace("|", " ")
    return pd.Series(texts.str.strip().to_numpy(), index=items["item_id"].to_numpy(),
                     name="text")


def text_vectorizer(texts, max_tokens: int = 2000,
                    max_len: int = 20) -> keras.layers.TextVectorization:
    """A ``TextVectorization`` layer adapted on ``texts`` (lower case, punctuation removed).

    Args:
        texts: the training texts (strings).
        max_tokens: vocabulary size, padding (id 0) and out-of-vocabulary (id 1) included;
            rarer words become id 1.
        max_len: tokens kept per text (the first ones).

    Returns:
        The adapted layer; ``vocabulary_size()`` is the ``vocab_size`` of the encoder.

    Raises:
        ValueError: no texts, or a size that is not an integer (``max_tokens >= 3``,
            ``max_len >= 1``).

    Explained in notebook 11.
    """
    texts = _strings(texts)
    layer = keras.layers.TextVectorization(
        max_tokens=check_int("max_tokens", max_tokens, minimum=3),
        output_sequence_length=check_int("max_len", max_len), output_mode="int")
    layer.adapt(texts)
    return layer


def tokenize(vectorizer: keras.layers.TextVectorization, texts) -> np.ndarray:
    """Token ids of ``texts``, padded on the *left* like the course's item sequences.

    A text with no word at all (an item without a title or genres) becomes one
    out-of-vocabulary token, so that every text has at least one token to embed.

    Returns:
        (len(texts), max_len) int32 array; 0 = padding, 1 = a word out of the vocabulary.

    Raises:
        ValueError: no texts.

    Explained in notebook 11.
    """
    ids = keras.ops.convert_to_numpy(vectorizer(_strings(texts)))  # (n, T), right-padded
    return left_pad([row[row > 0] if (row > 0).any() else [1] for row in ids], ids.shape[1])


def _strings(texts) -> np.ndarray:
    values = np.asarray(list(texts) if not isinstance(texts, np.ndarray) else texts, dtype=str)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"texts must be a non-empty list of strings, got {values.size} "
                         f"value(s) of shape {values.shape}")
    return values


# ---------------------------------------------------------------------- the text encoder
def text_encoder(vocab_size: int, max_len: int, d_model: int = 32, num_heads: int = 2,
                 num_blocks: int = 1, dropout: float = 0.1, seed: int = 0) -> BERT4Rec:
    """A small bidirectional Transformer over token ids, with random (seeded) weights.

    It is :class:`~recsys_lib.models.bert4rec.BERT4Rec` with the words as "items": token ids
    ``1..vocab_size - 1`` (the out-of-vocabulary id 1 included), 0 for padding and
    ``vocab_size`` for [MASK]. Untrained, it is the control of notebook 11.

    Args:
        vocab_size: ``vectorizer.vocabulary_size()`` (>= 3).
        max_len: tokens per text.
        d_model, num_heads, num_blocks, dropout: sizes, as for BERT4Rec.
        seed: seeds the initial weights (through ``keras.utils.set_random_seed``, which also
            seeds NumPy's and Python's global generators).

    Returns:
        A built :class:`BERT4Rec`.

    Raises:
        ArgumentError: a size that is not a positive integer, a dropout outside [0, 1).

    Explained in notebook 11.
    """
    vocab_size = check_int("vocab_size", vocab_size, minimum=3)
    max_len = check_int("max_len", max_len)
    dropout = check_float("dropout", dropout, strict=False, maximum=1.0)
    keras.utils.set_random_seed(check_int("seed", seed, minimum=0))
    model = BERT4Rec(vocab_size - 1, max_len, check_int("d_model", d_model),
                     check_int("num_heads", num_heads), check_int("num_blocks", num_blocks),
                     dropout=dropout, name="text_encoder")
    model.build((None, max_len))
    return model


def pretrain_text_encoder(encoder: BERT4Rec, tokens: np.ndarray, epochs: int,
                          batch_size: int = 128, learning_rate: float = 1e-3,
                          mask_rate: float = 0.15, seed: int = 0) -> list[dict]:
    """Train ``encoder`` in place by masked-token prediction (BERT's masked language model).

    Every epoch each text is corrupted afresh by :func:`cloze_mask` (a share ``mask_rate``
    of its tokens chosen; 80% of those become [MASK], 10% a random token, 10% stay), seeded
    by ``(seed, epoch)``, and the encoder learns to predict the original tokens at the chosen
    positions with a softmax over the vocabulary (the loss of BERT4Rec), through the course's
    loop :func:`recsys_lib.training.train_keras` (no validation: a fixed number of epochs).

    Args:
        encoder: from :func:`text_encoder`.
        tokens: (n_texts, max_len) token ids from :func:`tokenize`.
        epochs: passes over the texts.
        batch_size, learning_rate: Adam settings.
        mask_rate: share of the tokens of each text to predict, in (0, 1].
        seed: seeds the masks and, through ``keras.utils.set_random_seed``, the shuffling.

    Returns:
        The history: one dict per epoch (``epoch``, ``loss`` in Keras' scaling, ``seconds``).

    Raises:
        ValueError: tokens of the wrong shape or outside the vocabulary, bad settings.

    Explained in notebook 11.
    """
    tokens = _checked_tokens(encoder, tokens)
    mask_rate = check_float("mask_rate", mask_rate, maximum=1.0, strict_maximum=False)
    seed = check_int("seed", seed, minimum=0)
    keras.utils.set_random_seed(seed)
    encoder.compile(optimizer=keras.optimizers.Adam(check_float("learning_rate", learning_rate)),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    jit_compile=False)

    def epoch_data(epoch: int):
        rng = np.random.default_rng([seed, epoch])
        inputs, targets = cloze_mask(tokens, encoder.n_items, rng, mask_rate)
        return inputs, targets, (targets > 0).astype("float32")

    return train_keras(encoder, epoch_data, epochs=epochs, batch_size=batch_size,
                       shuffle=True, name="text encoder").history


def masked_token_loss(encoder: BERT4Rec, tokens: np.ndarray, mask_rate: float = 0.15,
                      seed: int = 0, batch_size: int = 512) -> float:
    """The masked-token cross-entropy (nats per predicted token) of ``encoder`` on ``tokens``.

    The tokens are corrupted once with :func:`cloze_mask` (seeded) and the loss is averaged
    over the chosen positions only. A model that knows nothing scores about
    ``log(vocab_size - 1)``.

    Raises:
        ValueError: tokens of the wrong shape or outside the vocabulary, a bad rate.

    Explained in notebook 11.
    """
    tokens = _checked_tokens(encoder, tokens)
    rate = check_float("mask_rate", mask_rate, maximum=1.0, strict_maximum=False)
    inputs, targets = cloze_mask(tokens, encoder.n_items, np.random.default_rng(seed), rate)
    total, count = 0.0, 0
    for start in range(0, len(inputs), batch_size):
        x, y = inputs[start:start + batch_size], targets[start:start + batch_size]
        nll = keras.losses.sparse_categorical_crossentropy(y, encoder(x, training=False),
                                                           from_logits=True)  # (batch, T)
        chosen = y > 0
        total += float(keras.ops.convert_to_numpy(nll)[chosen].sum())
        count += int(chosen.sum())
    return total / count


def text_embeddings(encoder: BERT4Rec, tokens: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """One unit vector per text: the mean of the final hidden states over its real tokens.

    Args:
        encoder: from :func:`text_encoder` (pre-trained or not).
        tokens: (n_texts, max_len) token ids from :func:`tokenize`.
        batch_size: texts per forward pass.

    Returns:
        (n_texts, d_model) float32 array with rows of L2 norm 1.

    Raises:
        ValueError: tokens of the wrong shape or outside the vocabulary, or a text with no
            token (an empty string).

    Explained in notebook 11.
    """
    tokens = _checked_tokens(encoder, tokens)
    empty = np.flatnonzero(~(tokens > 0).any(axis=1))
    if empty.size:
        raise ValueError(f"{empty.size} text(s) have no token, e.g. row(s) "
                         f"{empty[:5].tolist()}: give every item a title")
    out = []
    for start in range(0, len(tokens), batch_size):
        batch = tokens[start:start + batch_size]
        hidden = keras.ops.convert_to_numpy(encoder.hidden(batch, training=False))  # (b, T, d)
        real = (batch > 0)[..., None]  # (b, T, 1)
        out.append((hidden * real).sum(axis=1) / real.sum(axis=1))  # (b, d): mean over tokens
    vectors = np.concatenate(out).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _checked_tokens(encoder: BERT4Rec, tokens) -> np.ndarray:
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] != encoder.max_len:
        raise ValueError(f"tokens must be a non-empty (n_texts, {encoder.max_len}) array from "
                         f"tokenize(), got shape {tokens.shape}")
    if tokens.min() < 0 or tokens.max() > encoder.n_items:
        raise ValueError(f"token ids must be in 0..{encoder.n_items} (the encoder's "
                         f"vocabulary), got {tokens.min()}..{tokens.max()}")
    return tokens.astype(np.int32)


# ---------------------------------------------------------------------- cold start
class ColdStartSplit(NamedTuple):
    """What :func:`cold_start_split` returns.

    Attributes:
        train: every interaction with a warm item.
        test: every interaction with a cold item (the relevant items of the evaluation).
        cold_items: the sorted ids of the cold items.

    Explained in notebook 11.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    cold_items: np.ndarray


def cold_start_split(ratings: pd.DataFrame, share: float = 0.1, min_ratings: int = 5,
                     seed: int = 0) -> ColdStartSplit:
    """Hold out a random share of the items, with all their interactions, as new items.

    Among the items with at least ``min_ratings`` interactions (enough to evaluate), a share
    ``share`` is drawn at random; every interaction with them goes to ``test`` and none stays
    in ``train``, so a model trained on ``train`` has never seen them used.

    Args:
        ratings: interactions with ``user_id, item_id``.
        share: share of the eligible items to hold out, in (0, 1).
        min_ratings: interactions an item needs to be eligible (>= 1).
        seed: seeds the draw.

    Returns:
        A :class:`ColdStartSplit`.

    Raises:
        ValueError: an empty table, missing columns, a bad ``share`` / ``min_ratings`` /
            ``seed``, or a share so small that no item is drawn.

    Explained in notebook 11.
    """
    missing = {"user_id", "item_id"} - set(getattr(ratings, "columns", ()))
    if missing or ratings.empty:
        raise ValueError("ratings must be a non-empty DataFrame with user_id and item_id "
                         f"columns (missing: {sorted(missing)})")
    share = check_float("share", share, maximum=1.0)
    min_ratings = check_int("min_ratings", min_ratings)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    counts = ratings["item_id"].value_counts()
    eligible = np.sort(counts.index[counts >= min_ratings].to_numpy())
    n_cold = int(round(share * len(eligible)))
    if n_cold == 0:
        raise ValueError(f"share={share} of the {len(eligible)} items with >= {min_ratings} "
                         "ratings is no item: raise share or lower min_ratings")
    cold = np.sort(rng.choice(eligible, n_cold, replace=False))
    is_cold = ratings["item_id"].isin(cold).to_numpy()
    return ColdStartSplit(ratings[~is_cold], ratings[is_cold], cold)


def _user_item_matrix(train: pd.DataFrame, users, item_ids) -> sp.csr_matrix:
    """(users, items) 0/1 matrix of the users' training interactions; columns = item_ids."""
    users = pd.Index(list(users))
    rows = train[train["user_id"].isin(users)]
    lacking = users.difference(rows["user_id"].unique())
    if len(lacking):
        raise ValueError(f"{len(lacking)} user(s) have no training interaction, e.g. "
                         f"{lacking[:5].tolist()}: a profile needs at least one item")
    matrix = sp.csr_matrix((np.ones(len(rows)), (users.get_indexer(rows["user_id"]),
                                                 _positions(item_ids, rows["item_id"]))),
                           shape=(len(users), len(item_ids)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _positions(item_ids, wanted) -> np.ndarray:
    """Row of each wanted id in ``item_ids``; raises for ids that have no row."""
    index = pd.Index(np.asarray(item_ids))
    if not index.is_unique:
        raise ValueError("item_ids must not repeat an id")
    rows = index.get_indexer(np.asarray(wanted))
    if (rows < 0).any():
        unknown = pd.unique(np.asarray(wanted)[rows < 0])
        raise ValueError(f"{len(unknown)} unknown item id(s), e.g. {unknown[:5].tolist()}: "
                         "they have no row in item_ids")
    return rows


def profile_scores(item_vectors, item_ids, train: pd.DataFrame, users,
                   candidates) -> np.ndarray:
    """Cosine between each user's profile and each candidate item's vector.

    The profile of a user is the mean of the vectors of the items they interacted with in
    ``train`` (the content-based user profile of notebook 02).

    Args:
        item_vectors: (n_items, d) array or sparse matrix, one row per id of ``item_ids``
            (text embeddings, TF-IDF rows ...).
        item_ids: the item id of each row.
        train: interactions with ``user_id, item_id`` (the users' histories).
        users: the users to score; each needs an interaction in ``train``.
        candidates: the item ids to score (e.g. the cold items).

    Returns:
        (len(users), len(candidates)) float array; 0 where a vector is all zeros.

    Raises:
        ValueError: repeated or unknown item ids, a user without training interactions.

    Explained in notebook 11.
    """
    if item_vectors.shape[0] != len(item_ids):
        raise ValueError(f"item_vectors has {item_vectors.shape[0]} rows for "
                         f"{len(item_ids)} item_ids")
    history = _user_item_matrix(train, users, item_ids)  # (users, n_items)
    counts = np.asarray(history.sum(axis=1))  # (users, 1)
    profiles = _dense(history @ item_vectors) / counts  # (users, d): mean vector
    vectors = _dense(item_vectors[_positions(item_ids, candidates)])  # (candidates, d)
    dots = profiles @ vectors.T  # (users, candidates)
    norms = np.outer(np.linalg.norm(profiles, axis=1), np.linalg.norm(vectors, axis=1))
    return np.divide(dots, norms, out=np.zeros_like(dots, dtype=float), where=norms > 0)


def _dense(matrix) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix, dtype=float)


def genre_share_scores(items: pd.DataFrame, train: pd.DataFrame, users,
                       candidates) -> np.ndarray:
    """Popularity by genre: how much of each user's history is in a candidate's genres.

    For user u and genre g, share(u, g) is the share of u's training interactions whose item
    has genre g; a candidate scores the mean of share(u, g) over its genres (0 without one).

    Args:
        items: the item table (``item_id, genres``, genres separated by ``|``).
        train: interactions with ``user_id, item_id``.
        users: the users to score; each needs an interaction in ``train``.
        candidates: the item ids to score.

    Returns:
        (len(users), len(candidates)) float array.

    Raises:
        ValueError: unknown item ids, a user without training interactions.

    Explained in notebook 11.
    """
    genres = items.set_index("item_id")["genres"].fillna("").str.get_dummies("|")
    genres = genres.drop(columns="(no genres listed)", errors="ignore")  # (items, genres)
    item_ids = genres.index.to_numpy()
    history = _user_item_matrix(train, users, item_ids)  # (users, items)
    share = _dense(history @ genres.to_numpy(float)) / np.asarray(history.sum(axis=1))
    wanted = genres.to_numpy(float)[_positions(item_ids, candidates)]  # (candidates, genres)
    per_item = np.maximum(wanted.sum(axis=1, keepdims=True), 1)  # genres of each candidate
    return share @ (wanted / per_item).T  # (users, candidates): mean share over its genres


def rank_candidates(scores: np.ndarray, users, candidates, k: int = 10,
                    seed: int = 0) -> dict:
    """Top-k candidate ids per user, best first; equal scores in a random (seeded) order.

    Args:
        scores: (len(users), len(candidates)) from a scorer.
        users: user ids, one per row.
        candidates: item ids, one per column.
        k: list length (>= 1).
        seed: seeds the order of ties (e.g. items with the same genres).

    Returns:
        ``{user_id: [item_id, ...]}``, for :func:`recsys_lib.stats.per_user_metric`.

    Raises:
        ValueError: a shape that does not match users and candidates, or NaN scores.

    Explained in notebook 11.
    """
    k = check_k(k)
    users, candidates = list(users), np.asarray(candidates)
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (len(users), len(candidates)):
        raise ValueError(f"scores has shape {scores.shape}, expected (users, candidates) = "
                         f"({len(users)}, {len(candidates)})")
    if np.isnan(scores).any():
        raise ValueError("scores hold NaN: a ranking with NaN in it is meaningless")
    ties = np.random.default_rng(check_int("seed", seed, minimum=0)).random(scores.shape)
    order = np.lexsort((ties, -scores), axis=-1)[:, :k]  # by score, then the random key
    return {user: candidates[row].tolist() for user, row in zip(users, order, strict=True)}
