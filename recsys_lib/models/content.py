"""Content-based filtering: TF-IDF item profiles, user profiles, cosine scores (notebook 02)."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_lib.models.base import Recommender

_WORD = re.compile(r"[a-z0-9']+")
STOP_WORDS = frozenset({"the", "a", "an", "of", "and", "in", "on", "to", "for", "la", "le",
                        "les", "de", "il", "el", "with", "at", "is", "from", "by"})


def item_documents(items: pd.DataFrame, use_titles: bool = True) -> pd.Series:
    """One bag-of-words "document" per item: its genres (as ``genre:<name>`` tokens) and,
    optionally, the words of its title without the year.

    Args:
        items: table with ``item_id, title, genres`` (as from ``load_movielens``).
        use_titles: add title words.

    Returns:
        A Series of token lists indexed by item_id.

    Explained in notebook 02.
    """
    missing = {"item_id", "genres"} - set(items.columns)
    if missing:
        raise ValueError(f"items is missing column(s) {sorted(missing)}")
    genres = items["genres"].fillna("").astype(str).str.split("|")
    docs = genres.map(lambda gs: [f"genre:{g.lower()}" for g in gs
                                  if g and g != "(no genres listed)"])
    if use_titles and "title" in items:
        titles = items["title"].fillna("").astype(str).str.replace(
            r"\(\d{4}(?:\s*[-–]\s*\d{4})?\)\s*$", "", regex=True).str.lower()
        words = titles.map(lambda t: [w for w in _WORD.findall(t) if w not in STOP_WORDS])
        docs = docs + words
    return pd.Series(docs.to_numpy(), index=items["item_id"].to_numpy())


def tfidf_matrix(documents: Iterable[list[str]]) -> tuple[sp.csr_matrix, list[str]]:
    """TF-IDF weights with L2-normalised rows.

    tf = count of the term in the document; idf = log((1 + n_docs) / (1 + df)) + 1 (the
    smoothed form scikit-learn uses), so a term in every document still has weight > 0.

    Returns:
        ``(matrix, vocabulary)``: (n_docs, n_terms) CSR and the term of each column.

    Explained in notebook 02.
    """
    docs = list(documents)
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for r, doc in enumerate(docs):
        for term in doc:
            rows.append(r)
            cols.append(vocab.setdefault(term, len(vocab)))
    counts = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(docs), len(vocab)))
    counts.sum_duplicates()
    df = np.bincount(counts.indices, minlength=len(vocab))
    idf = np.log((1 + len(docs)) / (1 + df)) + 1
    tfidf = counts.multiply(idf).tocsr()
    norms = np.sqrt(np.asarray(tfidf.multiply(tfidf).sum(axis=1)).ravel())
    tfidf = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ tfidf
    return tfidf.tocsr(), sorted(vocab, key=vocab.get)


class ContentBasedRecommender(Recommender):
    """Score items by the cosine between their TF-IDF profile and the user's profile.

    The user profile is the sum of the profiles of the items the user interacted with
    (optionally weighted by the mean-centred rating, so disliked items push away).
    Every item in ``items`` is in the catalogue, rated or not: content models can
    recommend brand-new items, collaborative ones cannot.

    Args:
        items: the item table (``item_id, title, genres``).
        use_titles: include title words in the item documents.
        weight_by_rating: weight profiles by (rating - user mean) instead of 1.

    Explained in notebook 02.
    """

    name = "content"

    def __init__(self, items: pd.DataFrame, use_titles: bool = True,
                 weight_by_rating: bool = False) -> None:
        self.items = items
        self.use_titles = use_titles
        self.weight_by_rating = weight_by_rating
        self.uses_ratings = weight_by_rating

    def fit(self, train: pd.DataFrame, items: Iterable | None = None) -> ContentBasedRecommender:
        """Fit on ``train``; the catalogue is every item of the item table (and of ``items``)."""
        extra = self.items["item_id"].to_numpy()
        if items is not None:
            extra = np.concatenate([extra, np.asarray(list(items))])
        unknown = set(train["item_id"]) - set(self.items["item_id"])
        if unknown:
            raise ValueError(f"{len(unknown)} training item(s) have no row in the item table, "
                             f"e.g. {sorted(unknown)[:5]}")
        return super().fit(train, items=extra)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        docs = item_documents(self.items, self.use_titles)
        tfidf, self.vocabulary_ = tfidf_matrix(docs.loc[self.items_.ids_])
        self.item_profiles_ = tfidf
        weights = matrix.copy().astype(np.float64)
        if self.weight_by_rating:
            sums = np.asarray(weights.sum(axis=1)).ravel()
            counts = np.diff(weights.indptr)
            means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
            weights.data -= np.repeat(means, counts)
        self.user_profiles_ = (weights @ tfidf).tocsr()

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        profiles = self.user_profiles_[user_idx]
        norms = np.sqrt(np.asarray(profiles.multiply(profiles).sum(axis=1)).ravel())
        scores = (profiles @ self.item_profiles_.T).toarray()
        return scores / np.where(norms > 0, norms, 1.0)[:, None]

    def explain(self, user, item, liked_only: bool = False) -> tuple[object, float]:
        """"Because you liked X": the training item of ``user`` most similar to ``item``.

        Args:
            user, item: ids.
            liked_only: only consider items the user rated at or above their own mean
                rating (needs a ``rating`` column in training); notebook 02 shows why.

        Returns:
            ``(item_id, cosine similarity)``.

        Raises:
            ValueError: unknown user or item.
        """
        u = self._user_indices([user])[0]
        i = self.items_.transform([item])[0]
        seen = self.matrix_[u].indices
        if liked_only:
            seen = self._liked(user, seen)
        sims = (self.item_profiles_[seen] @ self.item_profiles_[i].T).toarray().ravel()
        best = int(np.argmax(sims))
        return self.items_.inverse_transform([seen[best]])[0].item(), float(sims[best])

    def _liked(self, user, seen: np.ndarray) -> np.ndarray:
        if "rating" not in self.train_:
            raise ValueError("liked_only needs a rating column in the training table")
        rows = self.train_[self.train_["user_id"] == user]
        liked = rows.loc[rows["rating"] >= rows["rating"].mean(), "item_id"]
        return np.intersect1d(seen, self.items_.transform(liked))
