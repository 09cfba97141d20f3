"""Generative retrieval with semantic IDs, after TIGER (Rajput et al., 2023).

Instead of scoring every catalogue item, the model *writes* the next item's name: each item
is a short sequence of tokens (its semantic ID, :mod:`recsys_lib.semantic_ids`), and a
Transformer predicts the next item token by token.

1. Semantic IDs. The catalogue's item vectors (content features or learned embeddings) are
   quantised by residual k-means into ``levels`` codes, plus TIGER's disambiguation code, so
   item = ``L = levels + 1`` tokens. Tokens are level-specific:
   ``token = offset[level] + code + 1`` with 0 as padding, so "code 5 at level 1" and
   "code 5 at level 2" are different tokens.
2. Model. A user's last ``max_len`` items become ``max_len * L`` tokens; a decoder-only
   causal Transformer (the blocks of notebooks 09 and 10) is trained by next-token
   prediction at every position with a softmax over the token vocabulary, padding masked
   out of the loss. TIGER is an encoder-decoder (T5-like) model; this decoder-only version
   is a simplification that keeps the idea: items are generated, not looked up.
3. Recommendation. Beam search of width ``beam_size`` over the ``L`` token steps, constrained
   to the trie of the catalogue's semantic IDs (a token that leads to no item gets
   log-probability -inf), and with the user's seen items excluded at the last step. An
   item's score is the log-probability of its whole token sequence; only the items the
   beam found are ranked (every other item scores -inf). Items without interactions
   (``fit(train, items=...)``) get semantic IDs from their vectors and can be generated.

Beam search reuses the history's keys and values (a KV cache): the history is run through
the network once per user, and each step computes only the new token of every beam, so
recommending for all users of MovieLens takes seconds.

Explained in notebook 14.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp
from keras import ops

from recsys_lib.checks import ArgumentError, check_float, check_int, check_k
from recsys_lib.config import DEFAULT_SEED, set_seed
from recsys_lib.models.base import top_k_indices
from recsys_lib.models.sasrec import SASRec, SequenceRecommender, left_pad
from recsys_lib.semantic_ids import ResidualKMeans, collision_rate, semantic_ids
from recsys_lib.training import VALIDATION_K


def token_vocabulary(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Level-specific tokens of semantic IDs: ``token = offset[level] + code + 1``.

    Args:
        ids: (n_items, L) non-negative integer semantic IDs (e.g. :func:`semantic_ids`).

    Returns:
        ``(tokens, offsets)``: (n_items, L) int32 tokens in ``1..n_tokens`` (0 is padding),
        and the (L + 1,) offsets: level ``l`` owns tokens ``offsets[l] + 1 .. offsets[l + 1]``,
        so ``offsets[-1]`` is the number of real tokens.

    Raises:
        ValueError: not a 2-D array of non-negative integers.

    Explained in notebook 14.
    """
    ids = np.asarray(ids)
    if ids.ndim != 2 or not ids.size or not np.issubdtype(ids.dtype, np.integer) \
            or ids.min() < 0:
        raise ValueError("semantic ids must be a non-empty (n_items, L) array of integers >= 0")
    sizes = ids.max(axis=0) + 1
    offsets = np.r_[0, np.cumsum(sizes)]
    return (ids + offsets[:-1] + 1).astype(np.int32), offsets.astype(np.int64)


def build_trie(tokens: np.ndarray, offsets: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The prefix tree of the items' token sequences, as one lookup table per step.

    Nodes at depth ``s`` are the distinct prefixes of length ``s`` (depth 0: the root
    alone). ``children[s][node, j]`` is the node reached from ``node`` with the ``j``-th
    token of level ``s`` (token ``offsets[s] + 1 + j``), or -1 when no item continues that
    way. At depth ``L`` each node is one item: ``leaf_items[node]`` is its index.

    Args:
        tokens: (n_items, L) token sequences with unique rows (see :func:`token_vocabulary`).
        offsets: the (L + 1,) level offsets.

    Returns:
        ``(children, leaf_items)``.

    Raises:
        ValueError: two items with the same token sequence.

    Explained in notebook 14.
    """
    n, length = tokens.shape
    parent = np.zeros(n, dtype=np.int64)
    children = []
    for step in range(length):
        _, node = np.unique(tokens[:, :step + 1], axis=0, return_inverse=True)
        node = node.ravel()
        table = np.full((parent.max() + 1, offsets[step + 1] - offsets[step]), -1, np.int64)
        table[parent, tokens[:, step] - offsets[step] - 1] = node
        children.append(table)
        parent = node
    if parent.max() + 1 != n:
        raise ValueError("two items have the same semantic id; append the disambiguation "
                         "code (recsys_lib.semantic_ids.semantic_ids) first")
    leaf_items = np.empty(n, dtype=np.int64)
    leaf_items[parent] = np.arange(n)
    return children, leaf_items


def token_windows(histories: list[np.ndarray], item_tokens: np.ndarray,
                  max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Next-token inputs and targets of item histories written as semantic-ID tokens.

    Each history (1-based item indices) is cut from the end into windows of up to
    ``max_len + 1`` items (consecutive windows share one item, as in
    :func:`recsys_lib.models.sasrec.training_windows`, so every item is a target once); a
    window's ``L`` tokens per item are flattened, the input is the sequence without its last
    token, the target the sequence without its first. Windows are left-padded to
    ``(max_len + 1) * L - 1`` tokens so that item boundaries always fall on multiples of
    ``L``, as at recommendation time.

    Args:
        histories: item index arrays (1..n_items, 0 unused), oldest first.
        item_tokens: (n_items + 1, L) tokens of each item index; row 0 (padding) is zeros.
        max_len: history items read before the predicted one.

    Returns:
        ``(inputs, targets)``, both (n_windows, (max_len + 1) * L - 1) int32, 0 = padding.
        Histories of one item give no window.

    Explained in notebook 14.
    """
    length = item_tokens.shape[1]
    width = (max_len + 1) * length - 1
    inputs, targets = [], []
    for seq in histories:
        end = len(seq)
        while end >= 2:
            flat = item_tokens[np.asarray(seq[max(0, end - max_len - 1):end])].ravel()
            inputs.append(flat[:-1])
            targets.append(flat[1:])
            end -= max_len
    return left_pad(inputs, width), left_pad(targets, width)


@keras.saving.register_keras_serializable(package="recsys_lib")
class SemanticIdDecoder(SASRec):
    """Decoder-only causal Transformer over semantic-ID tokens: (batch, T) -> logits
    (batch, T, n_tokens + 1), with tied token embeddings and column 0 (padding) forced to a
    large negative number.

    Positions are absolute: inputs are always ``length`` tokens wide, the history in the
    first ``max_len * L`` positions and the generated tokens after it.

    Args:
        n_tokens: real tokens (1..n_tokens; 0 is padding).
        length: positions, ``(max_len + 1) * L - 1``.
        d_model, num_heads, num_blocks, d_ff, dropout: as :class:`recsys_lib.models.sasrec.SASRec`.

    Explained in notebook 14.
    """

    def __init__(self, n_tokens: int, length: int, d_model: int = 64, num_heads: int = 2,
                 num_blocks: int = 2, d_ff: int | None = None, dropout: float = 0.2,
                 **kwargs) -> None:
        # SASRec's network with tokens as its "items": the same embedding, causal blocks,
        # final norm, tied logits and forward pass (hidden, logits, call are SASRec's).
        super().__init__(n_tokens, length, d_model, num_heads, num_blocks, d_ff, dropout,
                         **kwargs)
        self.n_tokens, self.length = n_tokens, length

    # ------------------------------------------------------------ cached decoding
    def history_cache(self, contexts: np.ndarray) -> tuple[dict, np.ndarray]:
        """Run the histories once; keep every block's keys and values for beam search.

        Args:
            contexts: (users, P) tokens of the histories, P = ``max_len * L``.

        Returns:
            ``(cache, logits)``: the keys, values and real-token mask of the history
            positions, and the (users, 1, n_tokens + 1) logits (a tensor) of the first token
            to generate (read at the last history position).

        Explained in notebook 14.
        """
        users, width = contexts.shape
        seq = np.zeros((users, self.length), dtype=np.int32)
        seq[:, :width] = contexts  # causal: the empty positions after it change nothing
        real = ops.not_equal(seq, 0)
        x = self.embed(seq, training=False)
        keys, values = [], []
        for block in self.blocks:
            z = block.norm_attention(x[:, :width])
            # kept as (users, heads, d_head, P) and (users, heads, P, d_head) for matmul
            keys.append(ops.transpose(block.attention.key_dense(z), (0, 2, 3, 1)))
            values.append(ops.transpose(block.attention.value_dense(z), (0, 2, 1, 3)))
            x = block(x, real, training=False)
        logits = self.logits(self.final_norm(x[:, width - 1]))
        cache = {"keys": keys, "values": values, "width": width,
                 "bias": ops.where(real[:, None, None, :width], 0.0, -1e9)}  # (users, 1, 1, P)
        return cache, logits[:, None, :]

    def next_token(self, cache: dict, generated: list, tokens: np.ndarray,
                   position: int) -> tuple[list, np.ndarray]:
        """One decoding step for every beam: the logits of the token after ``tokens``.

        Computes only the new position; it attends to the cached history (shared by a
        user's beams) and to the beam's earlier generated tokens. The same arithmetic as
        :meth:`call` with pre-LN blocks, in another order.

        Args:
            cache: from :meth:`history_cache` (users first).
            generated: per block ``(keys, values)`` of the beams' earlier generated tokens,
                (users * beams, steps, heads, d_head), or None at the first step; already
                reordered to the beams of ``tokens``.
            tokens: (users, beams) the token each beam generated last.
            position: its position, ``P + steps``.

        Returns:
            ``(generated, logits)``: the caches with this token appended, and the
            (users, beams, n_tokens + 1) logits (a tensor) of the next token.

        Explained in notebook 14.
        """
        users, beams = tokens.shape
        rows, heads = users * beams, self.num_heads
        d_head = self.d_model // heads
        x = self.embed.item_embedding(ops.convert_to_tensor(tokens.reshape(rows, 1)))
        x = x * math.sqrt(self.d_model) + self.embed.position_embedding(
            ops.convert_to_tensor([position]))[None]
        out = []
        for b, block in enumerate(self.blocks):
            attention = block.attention
            z = block.norm_attention(x)
            query = attention.query_dense(z) * (1.0 / math.sqrt(d_head))  # (rows, 1, h, dh)
            key, value = attention.key_dense(z), attention.value_dense(z)
            if generated is not None:
                key = ops.concatenate([generated[b][0], key], axis=1)
                value = ops.concatenate([generated[b][1], value], axis=1)
            out.append((key, value))
            # (users, heads, beams, ...): one matmul per user and head against the history
            q_user = ops.transpose(ops.reshape(query, (users, beams, heads, d_head)),
                                   (0, 2, 1, 3))
            on_history = ops.matmul(q_user, cache["keys"][b]) + cache["bias"]
            on_new = ops.einsum("nhd,nshd->nhs", query[:, 0], key)
            on_new = ops.transpose(ops.reshape(on_new, (users, beams, heads, -1)), (0, 2, 1, 3))
            weights = ops.softmax(ops.concatenate([on_history, on_new], axis=-1), axis=-1)
            width = cache["width"]
            mixed = ops.matmul(weights[..., :width], cache["values"][b])  # (u, h, beams, dh)
            mixed = ops.reshape(ops.transpose(mixed, (0, 2, 1, 3)), (rows, heads, d_head))
            new_weights = ops.reshape(ops.transpose(weights[..., width:], (0, 2, 1, 3)),
                                      (rows, heads, -1))
            mixed = mixed + ops.einsum("nhs,nshd->nhd", new_weights, value)
            h = x + attention.output_dense(ops.reshape(mixed, (rows, 1, heads, d_head)))
            x = h + block.ffn_out(block.ffn_in(block.norm_ffn(h)))
        logits = self.logits(self.final_norm(x[:, 0]))
        return out, ops.reshape(logits, (users, beams, -1))

    def get_config(self) -> dict:
        return {"n_tokens": self.n_tokens, "length": self.length, "d_model": self.d_model,
                "num_heads": self.num_heads, "num_blocks": self.num_blocks, "d_ff": self.d_ff,
                "dropout": self.dropout_rate, "name": self.name}


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities along the last axis, in float64.

    Explained in notebook 14.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def level_log_probs(logits, low: int, high: int) -> np.ndarray:
    """Log-probabilities of tokens ``low .. high - 1`` (one level's tokens) under the softmax
    over the whole vocabulary, as float64 NumPy; only that slice leaves the tensor.

    Explained in notebook 14.
    """
    normaliser = ops.logsumexp(logits, axis=-1, keepdims=True)
    return ops.convert_to_numpy(logits[..., low:high] - normaliser).astype(np.float64)


class GenerativeRecommender(SequenceRecommender):
    """TIGER-style generative retrieval behind the course's recommender interface.

    Args:
        item_vectors: one row per item (index = item_id), float columns, e.g. content
            features or learned item embeddings. Must cover every catalogue item (train
            items and ``items`` passed to ``fit``); extra rows are ignored. Scale the
            columns yourself: k-means uses plain Euclidean distances.
        levels, codes: residual k-means levels and codes per level (semantic ID =
            ``levels`` codes + 1 disambiguation code). ``codes`` must not exceed the
            catalogue size.
        max_len: history items the model reads (older ones are dropped).
        d_model, num_heads, num_blocks, d_ff, dropout: Transformer size, as SASRec's.
        epochs, batch_size, learning_rate, patience, eval_every, progress, seed: training
            (see :class:`recsys_lib.training.KerasRecommender`); validation runs beam search.
        beam_size: beams kept per step; also the most items a user can be recommended.
        kmeans_iterations: Lloyd steps per residual k-means level.
        jit_compile: compile the training step with XLA (off by default: on 2 CPU cores
            its one-off compilation took longer than the few epochs it could save).

    Attributes set by ``fit``:
        quantiser_: the fitted :class:`recsys_lib.semantic_ids.ResidualKMeans`.
        semantic_ids_: DataFrame indexed by item_id: ``semantic_id`` (tuple of codes, the
            last one the disambiguation code) and ``tokens`` (tuple of token ids).
        collision_rate_: share of items that needed a non-zero disambiguation code.
        n_tokens_: size of the token vocabulary without padding.
        histories_, model_, history_ (one dict per epoch), best_epoch_: as SASRec's.

    Raises:
        ArgumentError: a size or count that is not a positive integer, a dropout outside
            [0, 1), a learning rate that is not positive.
        ValueError: ``item_vectors`` that is not a DataFrame of finite numbers with unique
            item ids.

    Explained in notebook 14.
    """

    name = "tiger"
    label = "generative retrieval"

    def __init__(self, item_vectors: pd.DataFrame, levels: int = 3, codes: int = 32,
                 max_len: int = 20, d_model: int = 64, num_heads: int = 2,
                 num_blocks: int = 2, d_ff: int | None = None, dropout: float = 0.2,
                 epochs: int = 30, batch_size: int = 128, learning_rate: float = 1e-3,
                 patience: int = 3, eval_every: int = 1, progress: bool = True,
                 seed: int = DEFAULT_SEED, beam_size: int = 30, kmeans_iterations: int = 25,
                 jit_compile: bool = False) -> None:
        super().__init__(epochs, batch_size, learning_rate, patience, eval_every, progress,
                         seed)
        self.item_vectors = check_item_vectors(item_vectors)
        self.levels, self.codes = check_int("levels", levels), check_int("codes", codes)
        self.max_len, self.d_model = check_int("max_len", max_len), check_int("d_model", d_model)
        self.num_heads = check_int("num_heads", num_heads)
        self.num_blocks = check_int("num_blocks", num_blocks)
        self.d_ff = None if d_ff is None else check_int("d_ff", d_ff)
        self.dropout = check_float("dropout", dropout, strict=False, maximum=1.0)
        self.beam_size = check_int("beam_size", beam_size)
        self.kmeans_iterations = check_int("kmeans_iterations", kmeans_iterations)
        self.jit_compile = bool(jit_compile)
        self._exclude_seen = True

    # ------------------------------------------------------------------ fitting
    def _fit(self, matrix: sp.csr_matrix) -> None:
        if self._validation is not None and self.beam_size < VALIDATION_K:
            raise ValueError(f"validation ranks the top {VALIDATION_K} items, but beam search "
                             f"finds at most beam_size={self.beam_size}; use beam_size >= "
                             f"{VALIDATION_K}")
        set_seed(self.seed)
        vectors = self._catalogue_vectors()
        self.quantiser_ = ResidualKMeans(self.levels, self.codes, self.kmeans_iterations,
                                         self.seed).fit(vectors)
        codes = self.quantiser_.encode(vectors)
        # the disambiguation code ranks the items of a shared code tuple by training
        # popularity (0 = most popular, cold items last), so that the last token means the
        # same thing in every cell
        popularity = np.asarray(matrix.sum(axis=0)).ravel()
        order = np.argsort(-popularity, kind="stable")
        ids = np.empty((len(codes), self.token_length), dtype=np.int64)
        ids[order] = semantic_ids(codes[order])
        self.collision_rate_ = collision_rate(codes)
        tokens, self.offsets_ = token_vocabulary(ids)
        self.n_tokens_ = int(self.offsets_[-1])
        self._tokens = np.vstack([np.zeros((1, tokens.shape[1]), np.int32), tokens])
        self._children, self._leaf_items = build_trie(tokens, self.offsets_)
        self.semantic_ids_ = pd.DataFrame(
            {"semantic_id": list(map(tuple, ids.tolist())),
             "tokens": list(map(tuple, tokens.tolist()))},
            index=pd.Index(self.items_.ids_, name="item_id"))
        self.histories_ = self._histories(self.train_)
        self.windows_ = token_windows(list(self.histories_.values()), self._tokens,
                                      self.max_len)
        if not len(self.windows_[0]):
            raise ValueError("no user has two or more training interactions, so there is no "
                             f"next item to learn from; {self.label} needs histories of length "
                             ">= 2")
        self.model_ = self._build_model()
        self.model_.build((None, self.model_.length))
        self._train(self._training_model(), self._epoch_data, shuffle=True)

    def _catalogue_vectors(self) -> np.ndarray:
        """The item vectors of the catalogue, in ``items_`` order; ValueError naming the
        catalogue items that have none."""
        ids = self.items_.ids_
        present = np.asarray(pd.Index(ids).isin(self.item_vectors.index))
        if not present.all():
            missing = ids[~present]
            raise ValueError(f"item_vectors has no row for {len(missing)} catalogue item(s), "
                             f"e.g. {missing[:5].tolist()}; give every item of train (and of "
                             "items=) a vector, indexed by item_id")
        return self.item_vectors.loc[ids].to_numpy(dtype=np.float64)

    @property
    def token_length(self) -> int:
        """Tokens per item, ``levels + 1``."""
        return self.levels + 1

    def _build_model(self) -> SemanticIdDecoder:
        length = (self.max_len + 1) * self.token_length - 1
        return SemanticIdDecoder(self.n_tokens_, length, self.d_model, self.num_heads,
                                 self.num_blocks, self.d_ff, self.dropout)

    # ------------------------------------------------------------------ generating
    def _contexts(self, histories: list[np.ndarray]) -> np.ndarray:
        """(users, max_len * L) tokens of the last ``max_len`` items of each history."""
        if any(len(h) == 0 for h in histories):
            raise ValueError("every history needs at least one item; recommend popular "
                             "items to users without a history")
        items = left_pad(histories, self.max_len)
        return self._tokens[items].reshape(len(histories), -1)

    def beam_search(self, histories: list[np.ndarray],
                    exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Constrained beam search for a batch of item-index histories (1-based, oldest first).

        Vectorised over users and beams: ``L`` steps, each one network call for all beams.
        Tokens that lead to no catalogue item (outside the trie) get -inf; with
        ``exclude_seen`` each history's items get -inf at the last step.

        Returns:
            ``(items, log_probs)``, both (users, beams): 0-based item indices (-1 where a
            beam died) and their log-probabilities (-inf for dead beams), best first.

        Raises:
            ValueError: an empty history.

        Explained in notebook 14.
        """
        users = len(histories)
        cache, logits = self.model_.history_cache(self._contexts(histories))
        scores = np.zeros((users, 1))
        nodes = np.zeros((users, 1), dtype=np.int64)
        generated, tokens = None, None
        seen = self._seen_mask(histories) if exclude_seen else None
        rows = np.arange(users)[:, None, None]
        for step in range(self.token_length):
            if step > 0:
                generated, logits = self.model_.next_token(
                    cache, generated, tokens, self.model_.length - self.token_length + step)
            low, high = self.offsets_[step] + 1, self.offsets_[step + 1] + 1
            options = high - low
            candidates = scores[:, :, None] + level_log_probs(logits, low, high)
            children = self._children[step][nodes]  # (users, beams, options)
            candidates[children < 0] = -np.inf
            if seen is not None and step == self.token_length - 1:
                items = self._leaf_items[np.maximum(children, 0)]
                candidates[(children >= 0) & seen[rows, items]] = -np.inf
            flat = candidates.reshape(users, -1)
            top = top_k_indices(flat, min(self.beam_size, flat.shape[1]))
            parent, choice = top // options, top % options
            scores = np.take_along_axis(flat, top, axis=1)
            nodes = np.take_along_axis(children.reshape(users, -1), top, axis=1)
            nodes[~np.isfinite(scores)] = 0  # a dead beam: any node, its score stays -inf
            tokens = (choice + low).astype(np.int32)
            if generated is not None and step < self.token_length - 1:
                # the beams' caches follow their parents (rows are user-major)
                take = (np.arange(users)[:, None] * candidates.shape[1] + parent).ravel()
                generated = [(ops.take(k, take, axis=0), ops.take(v, take, axis=0))
                             for k, v in generated]
        items = np.where(np.isfinite(scores), self._leaf_items[nodes], -1)
        return items, scores

    def _seen_mask(self, histories: list[np.ndarray]) -> np.ndarray:
        """(users, n_items) booleans: True for each history's items."""
        seen = np.zeros((len(histories), len(self.items_)), dtype=bool)
        for row, history in enumerate(histories):
            seen[row, np.asarray(history) - 1] = True
        return seen

    def score_histories(self, histories: list[np.ndarray],
                        exclude_seen: bool = True) -> np.ndarray:
        """Beam-search scores over the catalogue for item-index histories (1-based).

        Only the items the beam found are ranked: their sequence log-probabilities; every
        other item (and, with ``exclude_seen``, every history item) scores -inf.

        Returns:
            (len(histories), n_items) float64 array, columns in ``items_.ids_`` order.

        Raises:
            ValueError: an empty history.

        Explained in notebook 14.
        """
        out = np.full((len(histories), len(self.items_)), -np.inf)
        for start in range(0, len(histories), 512):
            items, scores = self.beam_search(histories[start:start + 512], exclude_seen)
            row, col = np.nonzero(items >= 0)
            out[start + row, items[row, col]] = scores[row, col]
        return out

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        users = self.users_.inverse_transform(user_idx)
        return self.score_histories([self.histories_[u] for u in users], self._exclude_seen)

    def _check_beam(self, k: int) -> int:
        k = check_k(k)
        if k > self.beam_size:
            raise ArgumentError(f"k={k} is more than beam_size={self.beam_size}: beam search "
                                "finds at most beam_size items per user; ask for fewer or "
                                "use a larger beam_size")
        return k

    def recommend(self, users: Iterable, k: int = 10, exclude_seen: bool = True) -> dict:
        """Top-k items per user by constrained beam search (see the base class).

        Raises:
            ArgumentError: k < 1 or k > ``beam_size``.
            ValueError: an unknown user id.

        Explained in notebook 14.
        """
        k = self._check_beam(k)
        self._exclude_seen = bool(exclude_seen)
        try:
            return super().recommend(users, k, exclude_seen)
        finally:
            self._exclude_seen = True

    def recommend_for_history(self, item_ids: list, k: int = 10,
                              exclude_seen: bool = True) -> list:
        """Top-k item ids after a history of catalogue item ids (oldest first).

        Raises:
            ArgumentError: k < 1 or k > ``beam_size``.
            ValueError: an empty history or item ids outside the catalogue.

        Explained in notebook 14.
        """
        k = self._check_beam(k)
        history = self.items_.transform(list(item_ids)) + 1
        items, scores = self.beam_search([history], exclude_seen)
        found = items[0][np.isfinite(scores[0])][:k]
        return self.items_.inverse_transform(found).tolist()

    def exhaustive_scores(self, item_ids: list) -> np.ndarray:
        """Log-probability of every catalogue item's semantic ID after a history, by teacher
        forcing (one full network pass per item, no beam, nothing excluded): what beam search
        approximates. Slow for a large catalogue; for checks and small examples.

        Returns:
            (n_items,) float64 array, columns in ``items_.ids_`` order.

        Raises:
            ValueError: an empty history or item ids outside the catalogue.

        Explained in notebook 14.
        """
        history = self.items_.transform(list(item_ids)) + 1
        context = self._contexts([history])[0]
        length, width = self.token_length, len(context)
        tokens = self._tokens[1:]
        seq = np.zeros((len(tokens), self.model_.length), dtype=np.int32)
        seq[:, :width] = context
        seq[:, width:width + length - 1] = tokens[:, :-1]
        out = np.empty(len(tokens))
        for start in range(0, len(tokens), 256):
            chunk = slice(start, start + 256)
            logits = ops.convert_to_numpy(self.model_(seq[chunk], training=False))
            logp = log_softmax(logits[:, width - 1:width + length - 1])
            picked = np.take_along_axis(logp, tokens[chunk][:, :, None], axis=2)
            out[chunk] = picked[:, :, 0].sum(axis=1)
        return out

    def save(self, path: str) -> None:
        """Not supported: the semantic IDs and the trie are not part of a Keras file.

        Raises:
            NotImplementedError: always.

        Explained in notebook 14.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot be saved yet; refit it "
                                  "(the quantiser and semantic ids are not in a .keras file)")


def check_item_vectors(item_vectors: object) -> pd.DataFrame:
    """Check item vectors: a non-empty DataFrame of finite numbers with unique item ids.

    Returns:
        The DataFrame as float64.

    Raises:
        ValueError: what is wrong, and what to do.

    Explained in notebook 14.
    """
    if not isinstance(item_vectors, pd.DataFrame) or item_vectors.empty:
        raise ValueError("item_vectors must be a non-empty DataFrame: one row per item "
                         "(index = item_id), one float column per feature")
    if item_vectors.index.has_duplicates:
        dup = item_vectors.index[item_vectors.index.duplicated()].unique()[:5].tolist()
        raise ValueError(f"item_vectors has duplicate item ids, e.g. {dup}; keep one row each")
    try:
        values = item_vectors.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"item_vectors must hold numbers only ({err}); encode text columns "
                         "first") from None
    bad = ~np.isfinite(values.to_numpy()).all(axis=1)
    if bad.any():
        raise ValueError(f"item_vectors has NaN or infinite values for {int(bad.sum())} "
                         f"item(s), e.g. {values.index[bad][:5].tolist()}; fill them first")
    return values
